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
});
