/**
 * The queue that ends finished transactions when Timers J, L, M and D fire: each ends its linger
 * after it entered, not before, in order, once; one that ended early is skipped; a throwing one
 * does not hold up the rest.
 */
import { describe, expect, it } from 'vitest';
import { LingerQueue, type Lingering } from '../../../../src/sip/transaction/linger-queue.js';
import type { TransactionState } from '../../../../src/sip/transaction/types.js';
import { TimerWheel } from '../../../../src/util/timer-wheel.js';

const LINGER = 32_000;

class FakeTx implements Lingering {
  state: TransactionState = 'Completed';
  endedAt: number | undefined;
  ends = 0;
  constructor(
    readonly name: string,
    readonly wheel: TimerWheel,
    readonly onEnd?: () => void,
  ) {}
  terminate(): void {
    this.ends++;
    this.state = 'Terminated';
    this.endedAt = this.wheel.now();
    this.onEnd?.();
  }
}

function setup() {
  const wheel = new TimerWheel({ manual: true });
  const errors: unknown[] = [];
  const q = new LingerQueue(wheel, LINGER, (e) => errors.push(e));
  return { wheel, q, errors, tx: (name: string, onEnd?: () => void) => new FakeTx(name, wheel, onEnd) };
}

describe('LingerQueue', () => {
  it('ends each transaction its linger after it entered, in order, not before', () => {
    const { wheel, q, tx } = setup();
    const a = tx('a');
    const b = tx('b');
    q.add(a);
    wheel.advance(100);
    q.add(b);
    wheel.advance(LINGER - 101);
    expect([a.ends, b.ends]).toEqual([0, 0]);
    wheel.advance(20); // a's linger ends (within a tick)
    expect(a.ends).toBe(1);
    expect(a.endedAt! >= LINGER).toBe(true);
    expect(b.ends).toBe(0);
    wheel.advance(100);
    expect(b.ends).toBe(1);
    expect(b.endedAt! >= LINGER + 100).toBe(true);
    expect(q.size).toBe(0);
  });

  it('skips a transaction that ended before its turn, and ends each at most once', () => {
    const { wheel, q, tx } = setup();
    const early = tx('early');
    const late = tx('late');
    q.add(early);
    q.add(late);
    early.terminate(); // a transport error, close()
    wheel.advance(LINGER + 20);
    expect(early.ends).toBe(1);
    expect(late.ends).toBe(1);
    wheel.advance(LINGER);
    expect(late.ends).toBe(1);
  });

  it('a terminate that throws is reported and the others still end', () => {
    const { wheel, q, tx, errors } = setup();
    const bad = tx('bad', () => {
      throw new Error('listener threw');
    });
    const good = tx('good');
    q.add(bad);
    q.add(good);
    wheel.advance(LINGER + 20);
    expect(errors.length).toBe(1);
    expect(good.ends).toBe(1);
  });

  it('one added while others end (by a listener) waits its full linger, and the head is not delayed by it', () => {
    const { wheel, q, tx } = setup();
    let added: FakeTx | undefined;
    const first = tx('first', () => {
      added = tx('added');
      q.add(added);
    });
    const second = tx('second');
    q.add(first);
    wheel.advance(500);
    q.add(second);
    wheel.advance(LINGER - 500 + 20); // first ends, adds one
    expect(first.ends).toBe(1);
    expect(second.ends).toBe(0);
    wheel.advance(500); // second's turn comes 500 ms later, not a linger later
    expect(second.ends).toBe(1);
    expect(added!.ends).toBe(0);
    wheel.advance(LINGER - 500);
    expect(added!.ends).toBe(1);
    expect(added!.endedAt! >= first.endedAt! + LINGER).toBe(true);
  });

  it('many at once: all end, the queue empties (its front is dropped as it goes)', () => {
    const { wheel, q, tx } = setup();
    const all: FakeTx[] = [];
    for (let i = 0; i < 5000; i++) {
      const t = tx(`t${i}`);
      all.push(t);
      q.add(t);
      if (i % 10 === 0) wheel.advance(10);
    }
    wheel.advance(LINGER / 2);
    const half = all.filter((t) => t.ends === 1).length;
    expect(half).toBe(0);
    wheel.advance(LINGER);
    expect(all.every((t) => t.ends === 1)).toBe(true);
    expect(q.size).toBe(0);
  });

  it('clear() forgets the waiting transactions without ending them', () => {
    const { wheel, q, tx } = setup();
    const t = tx('t');
    q.add(t);
    q.clear();
    wheel.advance(2 * LINGER);
    expect(t.ends).toBe(0);
    expect(q.size).toBe(0);
  });
});
