import { describe, expect, it } from 'vitest';
import { PortAllocator } from '../../../../src/media/relay/port-allocator.js';

describe('PortAllocator', () => {
  it('hands out even RTP ports from the range, then reports exhaustion', () => {
    const p = new PortAllocator(30001, 30009, 1000); // even ports 30002..30008: 4 pairs
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push(p.portOf(p.takeAny(0)!));
    expect(got.sort()).toEqual([30002, 30004, 30006, 30008]);
    expect(p.takeAny(0)).toBeUndefined();
    expect(p.gauges(0)).toEqual({ total: 8, inUse: 8, quarantined: 0 });
  });

  it('keeps released ports out of use for the quarantine period', () => {
    const p = new PortAllocator(30000, 30003, 1000); // 2 pairs
    const a = p.takeAny(0)!;
    p.takeAny(0);
    p.release(a, undefined, 100);
    expect(p.gauges(100).quarantined).toBe(2);
    expect(p.takeAny(1099)).toBeUndefined();
    expect(p.takeAny(1100)).toBe(a);
  });

  it('reuses the least recently freed pair first', () => {
    const p = new PortAllocator(30000, 30007, 0);
    const a = p.takeAny(0)!;
    p.release(a, 0);
    expect(p.takeAny(0)).not.toBe(a);
  });

  it('take() claims a given port only when free', () => {
    const p = new PortAllocator(30000, 30007, 1000);
    const s = p.take(30004, 0)!;
    expect(p.portOf(s)).toBe(30004);
    expect(p.take(30004, 0)).toBeUndefined();
    expect(p.take(30005, 0)).toBeUndefined();
    expect(p.take(40000, 0)).toBeUndefined();
    const rest = [p.takeAny(0), p.takeAny(0), p.takeAny(0)].map((x) => p.portOf(x!));
    expect(rest).not.toContain(30004);
    expect(p.takeAny(0)).toBeUndefined();
    p.release(s, 0);
    expect(p.portOf(p.takeAny(0)!)).toBe(30004);
  });

  it('exact ports taken (a takeover) are never handed out by takeAny until released, and come back once', () => {
    const p = new PortAllocator(30000, 30019, 0); // 10 pairs
    for (const port of [30000, 30004, 30008, 30012, 30016]) expect(p.take(port, 0)).toBeDefined();
    expect(p.take(30004, 0)).toBeUndefined();
    const any: number[] = [];
    for (let s = p.takeAny(0); s !== undefined; s = p.takeAny(0)) any.push(p.portOf(s));
    expect(any.sort()).toEqual([30002, 30006, 30010, 30014, 30018]);
    // Released (with and without quarantine), each comes back exactly once.
    p.release((30004 - 30000) / 2, 0, 0);
    p.release((30008 - 30000) / 2, 0, 0);
    p.release((30008 - 30000) / 2, 0, 0);
    const again: number[] = [];
    for (let s = p.takeAny(0); s !== undefined; s = p.takeAny(0)) again.push(p.portOf(s));
    expect(again.sort()).toEqual([30004, 30008]);
    expect(p.gauges(0)).toEqual({ total: 20, inUse: 20, quarantined: 0 });
  });
});
