import type { Binding, SyncLocationStore } from '../store.js';

/**
 * In-process location store. Expiry purging uses one-second buckets keyed by expiry time
 * (a coarse timer wheel), and one interval per second visits only the AORs due in that second,
 * so 100,000 bindings cost nothing between expiries.
 *
 * Each AOR is in one bucket at a time: the one of its earliest expiry, or an earlier one it was
 * entered in before a refresh. A visit that finds nothing expired enters the AOR again for its
 * new earliest expiry. A refresh (the registrar's common write) therefore costs one map lookup;
 * entering the AOR in the bucket of every write's expiry cost a set insertion per REGISTER and
 * held an entry per REGISTER until its second came (at 4,000 REGISTER/s with one-hour expiries,
 * millions of entries).
 */
/** An AOR's bindings and the second it is due to be visited (-1: not scheduled). */
interface AorEntry {
  bindings: Binding[];
  due: number;
}

/** The second (rounded up) in which the first of `bindings` expires. */
function earliestExpirySecond(bindings: Binding[]): number {
  let first = Infinity;
  for (const b of bindings) if (b.expiresAtMs < first) first = b.expiresAtMs;
  return Math.ceil(first / 1000);
}

export class MemoryLocationStore implements SyncLocationStore {
  #aors = new Map<string, AorEntry>();
  /** AORs by the second they are due to be visited (an AOR rescheduled earlier leaves a stale entry). */
  #buckets = new Map<number, string[]>();
  #count = 0;
  #listeners: Array<(b: Binding) => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #lastSweepSec: number;
  #now: () => number;

  constructor(opts: { now?: () => number; sweepIntervalMs?: number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#lastSweepSec = Math.floor(this.#now() / 1000) - 1;
    this.#timer = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 1000);
    this.#timer.unref();
  }

  async getBindings(aor: string): Promise<Binding[]> {
    return this.getBindingsSync(aor);
  }

  /** Synchronous read for in-process callers on hot paths. */
  getBindingsSync(aor: string): Binding[] {
    const e = this.#aors.get(aor);
    if (!e) return [];
    const now = this.#now();
    return e.bindings.filter((b) => b.expiresAtMs > now);
  }

  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    this.setBindingsSync(aor, bindings);
  }

  setBindingsSync(aor: string, bindings: Binding[]): void {
    let e = this.#aors.get(aor);
    if (e) this.#count -= e.bindings.length;
    if (bindings.length === 0) {
      if (e) this.#aors.delete(aor);
      return;
    }
    if (e) e.bindings = bindings;
    else {
      e = { bindings, due: -1 };
      this.#aors.set(aor, e);
    }
    this.#count += bindings.length;
    const sec = earliestExpirySecond(bindings);
    // An earlier visit already due finds nothing to purge and enters the AOR again.
    if (e.due === -1 || e.due > sec) this.#schedule(aor, e, sec);
  }

  #schedule(aor: string, e: AorEntry, sec: number): void {
    // A second already swept would never be visited again.
    const at = Math.max(sec, this.#lastSweepSec + 1);
    e.due = at;
    const bucket = this.#buckets.get(at);
    if (bucket) bucket.push(aor);
    else this.#buckets.set(at, [aor]);
  }

  /** Removes expired bindings due up to now; called every second. */
  sweep(): void {
    const nowMs = this.#now();
    const nowSec = Math.floor(nowMs / 1000);
    for (let sec = this.#lastSweepSec + 1; sec <= nowSec; sec++) {
      const bucket = this.#buckets.get(sec);
      if (!bucket) continue;
      this.#buckets.delete(sec);
      for (const aor of bucket) {
        const e = this.#aors.get(aor);
        // gone, or rescheduled earlier and visited then
        if (e === undefined || e.due !== sec) continue;
        e.due = -1;
        this.#purgeAor(aor, e, nowMs);
      }
    }
    this.#lastSweepSec = nowSec;
  }

  #purgeAor(aor: string, e: AorEntry, nowMs: number): void {
    const list = e.bindings;
    const keep: Binding[] = [];
    for (const b of list) {
      if (b.expiresAtMs > nowMs) keep.push(b);
      else for (const l of this.#listeners) {
        try {
          l(b);
        } catch {
          /* listener errors never break the sweep */
        }
      }
    }
    if (keep.length === 0) {
      this.#count -= list.length;
      this.#aors.delete(aor);
      return;
    }
    if (keep.length !== list.length) {
      this.#count -= list.length - keep.length;
      e.bindings = keep;
    }
    this.#schedule(aor, e, earliestExpirySecond(keep));
  }

  size(): number {
    return this.#count;
  }

  aorCount(): number {
    return this.#aors.size;
  }

  onExpired(listener: (binding: Binding) => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
