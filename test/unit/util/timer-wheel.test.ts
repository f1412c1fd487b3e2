import { describe, expect, it } from 'vitest';
import { TimerWheel } from '../../../src/util/timer-wheel.js';

describe('TimerWheel (fake clock)', () => {
  it('fires timers in deadline order, never early', () => {
    const w = new TimerWheel({ manual: true, tickMs: 10 });
    const fired: string[] = [];
    w.schedule(500, () => fired.push(`a@${w.now()}`));
    w.schedule(15, () => fired.push(`b@${w.now()}`));
    w.schedule(0, () => fired.push(`c@${w.now()}`));
    w.advance(9);
    expect(fired).toEqual([]);
    w.advance(1);
    expect(fired).toEqual(['c@10']);
    w.advance(10);
    expect(fired).toEqual(['c@10', 'b@20']);
    w.advance(479);
    expect(fired.length).toBe(2);
    w.advance(1);
    expect(fired).toEqual(['c@10', 'b@20', 'a@500']);
    expect(w.size).toBe(0);
  });

  it('cancel is O(1) and idempotent, including from a callback of the same tick', () => {
    const w = new TimerWheel({ manual: true, tickMs: 10 });
    let fired = 0;
    const h1 = w.schedule(100, () => fired++);
    const h2 = w.schedule(100, () => fired++);
    w.schedule(100, () => w.cancel(h2));
    // h2 may be collected before or after the canceller; either way it must not fire after cancel
    w.cancel(h1);
    w.cancel(h1);
    expect(h1.active).toBe(false);
    w.advance(100);
    expect(fired).toBeLessThanOrEqual(1);
    expect(w.size).toBe(0);
  });

  it('handles timers beyond one wheel round and timers scheduled from callbacks', () => {
    const w = new TimerWheel({ manual: true, tickMs: 10, slots: 16 });
    const at: number[] = [];
    w.schedule(1000, () => at.push(w.now())); // 100 ticks, 6 rounds of 16 slots
    const retransmit = (interval: number) => {
      at.push(w.now());
      if (interval < 4000) w.schedule(interval * 2, () => retransmit(interval * 2));
    };
    w.schedule(500, () => retransmit(500));
    w.advance(10_000);
    expect(at).toEqual([500, 1000, 1500, 3500, 7500]);
  });

  it('a throwing callback does not stop the wheel', () => {
    const errors: unknown[] = [];
    const w = new TimerWheel({ manual: true, onError: (e) => errors.push(e) });
    let ok = false;
    w.schedule(10, () => {
      throw new Error('boom');
    });
    w.schedule(10, () => (ok = true));
    w.advance(10);
    expect(ok).toBe(true);
    expect(errors.length).toBe(1);
  });

  it('100,000 timers schedule, cancel and fire cheaply', () => {
    const w = new TimerWheel({ manual: true });
    let fired = 0;
    const handles = [];
    for (let i = 0; i < 100_000; i++) handles.push(w.schedule((i % 3000) + 1, () => fired++));
    for (let i = 0; i < 100_000; i += 2) w.cancel(handles[i]);
    expect(w.size).toBe(50_000);
    w.advance(3000);
    expect(fired).toBe(50_000);
    expect(w.size).toBe(0);
  });
});

describe('TimerWheel (real clock)', () => {
  it('fires on the real clock without keeping the process alive', async () => {
    const w = new TimerWheel({ tickMs: 5 });
    const start = performance.now();
    const elapsed = await new Promise<number>((resolve) => w.schedule(30, () => resolve(performance.now() - start)));
    expect(elapsed).toBeGreaterThanOrEqual(29);
    w.stop();
  });
});

describe('TimerWheel schedule with an argument', () => {
  it('passes the argument to a shared callback and drops it on cancel', () => {
    const w = new TimerWheel({ manual: true, tickMs: 10 });
    const got: number[] = [];
    const cb = (o: { n: number }) => got.push(o.n);
    w.schedule(20, cb, { n: 1 });
    const h = w.schedule(20, cb, { n: 2 });
    w.schedule(30, cb, { n: 3 });
    w.cancel(h);
    expect(h.active).toBe(false);
    w.advance(30);
    expect(got).toEqual([1, 3]);
    expect(w.size).toBe(0);
  });
});
