import type { TimerHandle, TimerWheel } from '../../util/timer-wheel.js';
import type { TransactionState } from './types.js';

/** A finished transaction waiting out Timer J, L, M or D. */
export interface Lingering {
  readonly state: TransactionState;
  terminate(): void;
}

/**
 * Transactions waiting out Timers J, L, M and D. They all wait the same time (the layer's
 * linger), so they end in the order they entered: one queue, with one wheel timer for its head,
 * replaces a timer object per transaction. A finished call has three such transactions, and each
 * timer object was one more thing every full collection traced for 32 s.
 *
 * A transaction that ended before its turn (closed, a transport error) is skipped when reached.
 */
export class LingerQueue {
  readonly #wheel: TimerWheel;
  readonly #ms: number;
  readonly #onError: (err: unknown) => void;
  #txs: (Lingering | undefined)[] = [];
  /** When each transaction's linger ends (wheel time, ms); never decreasing. */
  #due: number[] = [];
  #head = 0;
  #timer: TimerHandle | undefined;
  /** While draining, the drain sets the next timer (for the head, not for what a listener adds). */
  #draining = false;

  constructor(wheel: TimerWheel, ms: number, onError: (err: unknown) => void) {
    this.#wheel = wheel;
    this.#ms = ms;
    this.#onError = onError;
  }

  /** Transactions waiting (ended ones included until their turn). */
  get size(): number {
    return this.#txs.length - this.#head;
  }

  /** Ends `tx` (its `terminate()`) the linger time from now, unless it has ended by then. */
  add(tx: Lingering): void {
    this.#txs.push(tx);
    this.#due.push(this.#wheel.now() + this.#ms);
    if (!this.#draining) this.#timer ??= this.#wheel.schedule(this.#ms, LingerQueue.#fire, this);
  }

  static #fire(q: LingerQueue): void {
    q.#timer = undefined;
    q.#draining = true;
    try {
      q.#drain();
    } finally {
      q.#draining = false;
    }
  }

  #drain(): void {
    const now = this.#wheel.now();
    const txs = this.#txs;
    const due = this.#due;
    let h = this.#head;
    while (h < txs.length && due[h]! <= now) {
      const tx = txs[h]!;
      txs[h] = undefined;
      h++;
      if (tx.state === 'Terminated') continue;
      try {
        tx.terminate();
      } catch (err) {
        this.#onError(err);
      }
    }
    if (h === txs.length) {
      txs.length = 0;
      due.length = 0;
      h = 0;
    } else if (h >= 1024 && h * 2 >= txs.length) {
      // Drop the consumed front now and then: amortized O(1) per transaction.
      this.#txs = txs.slice(h);
      this.#due = due.slice(h);
      h = 0;
    }
    this.#head = h;
    if (h < this.#txs.length) this.#timer = this.#wheel.schedule(this.#due[h]! - now, LingerQueue.#fire, this);
  }

  /** Forgets every waiting transaction without ending it (the layer is closing them itself). */
  clear(): void {
    this.#wheel.cancel(this.#timer);
    this.#timer = undefined;
    this.#txs = [];
    this.#due = [];
    this.#head = 0;
  }
}
