/**
 * Hashed timer wheel: one periodic tick drives every timer, so 100,000 SIP transactions with
 * two or three timers each cost one `setInterval` rather than 300,000 `setTimeout`s.
 *
 * ```
 *   slots[0] slots[1] ... slots[n-1]        a timer due at absolute tick d lives in slot d % n;
 *     |        |                            each slot is a doubly linked list, so schedule and
 *    t1 <-> t7 t3                           cancel are O(1); a tick fires the entries of one
 *                                           slot whose deadline has come (others wait a round).
 * ```
 *
 * A timer never fires early: its deadline is rounded up to the next tick boundary. With the
 * default 10 ms tick it may fire up to one tick late.
 *
 * For tests, `new TimerWheel({ manual: true })` runs on a fake clock that only moves with
 * `advance(ms)`, so timer behaviour is exact and instant.
 */

/** Opaque handle returned by `schedule`; pass it to `cancel`. */
export interface TimerHandle {
  /** true while the timer is scheduled and has neither fired nor been cancelled. */
  readonly active: boolean;
}

export interface TimerWheelOptions {
  /**
   * Tick length in milliseconds.
   * @default 10
   */
  tickMs?: number;
  /**
   * Number of slots (rounded up to a power of two). Timers further out than slots*tickMs wait
   * whole rounds in their slot.
   * @default 4096
   */
  slots?: number;
  /**
   * Fake clock: no interval is started; time moves only with `advance(ms)`.
   * @default false
   */
  manual?: boolean;
  /** Called when a timer callback throws; the wheel keeps running. Default: rethrown async-free (logged to stderr). */
  onError?: (err: unknown) => void;
}

class Timer implements TimerHandle {
  deadline = 0;
  fn: ((arg: any) => void) | null;
  arg: unknown;
  prev: Timer | null = null;
  next: Timer | null = null;
  slot = -1;
  constructor(fn: (arg: any) => void, arg: unknown) {
    this.fn = fn;
    this.arg = arg;
  }
  get active(): boolean {
    return this.fn !== null;
  }
}

export class TimerWheel {
  readonly tickMs: number;
  readonly manual: boolean;
  #heads: (Timer | null)[];
  #mask: number;
  /** Last tick whose slot has been processed. */
  #tick = 0;
  /** Origin of the wheel's clock (performance.now() in real mode). */
  #origin: number;
  /** Fake clock position in ms (manual mode). */
  #fakeNow = 0;
  #count = 0;
  #interval: NodeJS.Timeout | undefined;
  #onError: (err: unknown) => void;
  #firing = false;
  #due: Timer[] = [];

  constructor(opts: TimerWheelOptions = {}) {
    this.tickMs = Math.max(1, opts.tickMs ?? 10);
    this.manual = opts.manual ?? false;
    let n = 1;
    const want = Math.max(16, opts.slots ?? 4096);
    while (n < want) n <<= 1;
    this.#heads = new Array<Timer | null>(n).fill(null);
    this.#mask = n - 1;
    this.#origin = this.manual ? 0 : performance.now();
    this.#onError =
      opts.onError ??
      ((err) => {
        process.emitWarning(`timer callback threw: ${err instanceof Error ? err.stack : String(err)}`);
      });
  }

  /** Milliseconds since the wheel was created (fake clock in manual mode). */
  now(): number {
    return this.manual ? this.#fakeNow : performance.now() - this.#origin;
  }

  /** Number of scheduled timers. */
  get size(): number {
    return this.#count;
  }

  /**
   * Runs `fn(arg)` once, no earlier than `delayMs` from now. O(1). Hot paths pass a function
   * shared by all callers plus the object it acts on as `arg`, so scheduling allocates no
   * closure (only the timer itself).
   */
  schedule(delayMs: number, fn: () => void): TimerHandle;
  schedule<A>(delayMs: number, fn: (arg: A) => void, arg: A): TimerHandle;
  schedule(delayMs: number, fn: (arg: any) => void, arg?: unknown): TimerHandle {
    const t = new Timer(fn, arg);
    const now = this.now();
    if (!this.manual && this.#interval === undefined) this.#tick = Math.floor(now / this.tickMs);
    const due = now + (delayMs > 0 ? delayMs : 0);
    let d = Math.ceil(due / this.tickMs);
    if (d <= this.#tick) d = this.#tick + 1;
    t.deadline = d;
    const slot = d & this.#mask;
    t.slot = slot;
    const head = this.#heads[slot]!;
    t.next = head;
    if (head) head.prev = t;
    this.#heads[slot] = t;
    this.#count++;
    if (!this.manual && this.#interval === undefined) this.#start();
    return t;
  }

  /** Cancels a timer; a no-op if it already fired or was cancelled. O(1). */
  cancel(handle: TimerHandle | undefined | null): void {
    if (!handle) return;
    const t = handle as Timer;
    t.fn = null;
    t.arg = undefined;
    if (t.slot >= 0) this.#unlink(t);
  }

  /** Manual mode: moves the fake clock forward, firing every timer that comes due, in order. */
  advance(ms: number): void {
    if (!this.manual) throw new Error('advance() needs a manual TimerWheel');
    const target = this.#fakeNow + ms;
    // Step tick by tick so timers scheduled by callbacks fire in the same advance when due.
    while (true) {
      const nextTickTime = (this.#tick + 1) * this.tickMs;
      if (nextTickTime > target) break;
      this.#fakeNow = nextTickTime;
      this.#runTick(this.#tick + 1);
    }
    this.#fakeNow = target;
  }

  /** Stops the interval and drops every timer. */
  stop(): void {
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = undefined;
    this.#heads.fill(null);
    this.#count = 0;
  }

  #start(): void {
    this.#interval = setInterval(() => this.#onInterval(), this.tickMs);
    this.#interval.unref();
  }

  #onInterval(): void {
    if (this.#firing) return;
    const current = Math.floor(this.now() / this.tickMs);
    // Catch up on ticks missed while the event loop was busy; bounded by one round when idle.
    let from = this.#tick + 1;
    if (this.#count === 0) {
      this.#tick = current;
    } else {
      if (current - from > this.#mask) {
        // Far behind (process was stalled): every slot will be visited once anyway.
        from = current - this.#mask;
        this.#tick = from - 1;
      }
      for (let k = from; k <= current; k++) this.#runTick(k);
    }
    if (this.#count === 0 && this.#interval) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
  }

  #runTick(k: number): void {
    this.#tick = k;
    if (this.#count === 0) return;
    const slot = k & this.#mask;
    // Collect first, fire after: callbacks may schedule or cancel freely.
    const due = this.#due;
    let t = this.#heads[slot] ?? null;
    while (t) {
      const next: Timer | null = t.next;
      if (t.deadline <= k) {
        this.#unlink(t);
        due.push(t);
      }
      t = next;
    }
    if (due.length === 0) return;
    this.#firing = true;
    try {
      for (let i = 0; i < due.length; i++) {
        const timer = due[i]!;
        const fn = timer.fn;
        const arg = timer.arg;
        timer.fn = null;
        timer.arg = undefined;
        if (fn) {
          try {
            fn(arg);
          } catch (err) {
            this.#onError(err);
          }
        }
      }
    } finally {
      due.length = 0;
      this.#firing = false;
    }
  }

  #unlink(t: Timer): void {
    const slot = t.slot;
    if (t.prev) t.prev.next = t.next;
    else this.#heads[slot] = t.next;
    if (t.next) t.next.prev = t.prev;
    t.prev = t.next = null;
    t.slot = -1;
    this.#count--;
  }
}

let shared: TimerWheel | undefined;

/** The process-wide real-time wheel (10 ms tick). */
export function sharedTimerWheel(): TimerWheel {
  shared ??= new TimerWheel();
  return shared;
}
