import { describe, expect, it } from 'vitest';
import { MemoryLocationStore } from '../../../src/state/memory/memory-location-store.js';
import type { Binding } from '../../../src/state/store.js';

const b = (aor: string, contact: string, expiresAtMs: number): Binding => ({ aor, contact, q: 1, expiresAtMs, callId: 'c', cseq: 1, updatedAtMs: 0 });

describe('MemoryLocationStore', () => {
  it('purges expired bindings and reports them, at 100,000 bindings', async () => {
    let now = 1_000_000;
    const s = new MemoryLocationStore({ now: () => now, sweepIntervalMs: 3_600_000 });
    const expired: Binding[] = [];
    s.onExpired((x) => expired.push(x));
    const t0 = performance.now();
    for (let i = 0; i < 100_000; i++) await s.setBindings(`sip:u${i}@d`, [b(`sip:u${i}@d`, `sip:u${i}@h`, now + (i % 2 ? 10_000 : 20_000))]);
    expect(s.size()).toBe(100_000);
    now += 10_500;
    s.sweep();
    expect(s.size()).toBe(50_000);
    expect(expired.length).toBe(50_000);
    expect(await s.getBindings('sip:u1@d')).toEqual([]);
    expect((await s.getBindings('sip:u2@d')).length).toBe(1);
    now += 10_000;
    s.sweep();
    expect(s.size()).toBe(0);
    expect(s.aorCount()).toBe(0);
    expect(performance.now() - t0).toBeGreaterThan(0);
    await s.close();
  });

  it('a refreshed binding survives the old expiry bucket', async () => {
    let now = 0;
    const s = new MemoryLocationStore({ now: () => now, sweepIntervalMs: 3_600_000 });
    await s.setBindings('a', [b('a', 'sip:x', 5_000)]);
    await s.setBindings('a', [b('a', 'sip:x', 60_000)]);
    now = 6_000;
    s.sweep();
    expect(s.size()).toBe(1);
    await s.close();
  });

  it('a refresh with a shorter expiry is purged at the shorter one, and each expiry is reported once', async () => {
    let now = 0;
    const s = new MemoryLocationStore({ now: () => now, sweepIntervalMs: 3_600_000 });
    const expired: Binding[] = [];
    s.onExpired((x) => expired.push(x));
    await s.setBindings('a', [b('a', 'sip:x', 60_000)]);
    await s.setBindings('a', [b('a', 'sip:x', 5_000)]);
    now = 6_000;
    s.sweep();
    expect(s.size()).toBe(0);
    expect(expired.map((x) => x.expiresAtMs)).toEqual([5_000]);
    now = 61_000;
    s.sweep();
    expect(expired.length).toBe(1);
    await s.close();
  });

  it('an AOR refreshed many times is purged after its last expiry, with two contacts expiring apart', async () => {
    let now = 0;
    const s = new MemoryLocationStore({ now: () => now, sweepIntervalMs: 3_600_000 });
    const expired: string[] = [];
    s.onExpired((x) => expired.push(x.contact));
    for (let i = 0; i < 50; i++) {
      now = i * 1_000;
      s.sweep();
      await s.setBindings('a', [b('a', 'sip:x', now + 10_000), b('a', 'sip:y', now + 30_000)]);
    }
    // last write at 49 s: x expires at 59 s, y at 79 s
    now = 58_000;
    s.sweep();
    expect(s.size()).toBe(2);
    now = 60_000;
    s.sweep();
    expect(expired).toEqual(['sip:x']);
    expect((await s.getBindings('a')).map((x) => x.contact)).toEqual(['sip:y']);
    now = 80_000;
    s.sweep();
    expect(expired).toEqual(['sip:x', 'sip:y']);
    expect(s.aorCount()).toBe(0);
    await s.close();
  });

  it('a binding written with an expiry in a second already swept is purged at the next sweep', async () => {
    let now = 10_000;
    const s = new MemoryLocationStore({ now: () => now, sweepIntervalMs: 3_600_000 });
    s.sweep();
    await s.setBindings('a', [b('a', 'sip:x', 9_500)]);
    now = 11_000;
    s.sweep();
    expect(s.size()).toBe(0);
    await s.close();
  });
});
