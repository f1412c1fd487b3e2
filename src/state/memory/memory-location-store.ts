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
export class MemoryLocationStore implements SyncLocationStore {
  #aors = new Map<string, Binding[]>();
  /** AORs by the second they are due to be visited (an AOR rescheduled earlier leaves a stale entry). */
  #buckets = new Map<number, string[]>();
  /** The second each AOR is due to be visited. */
  #due = new Map<string, number>();
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
    const list = this.#aors.get(aor);
    if (!list) return [];
    const now = this.#now();
    return list.filter((b) => b.expiresAtMs > now);
  }

  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    this.setBindingsSync(aor, bindings);
  }

  setBindingsSync(aor: string, bindings: Binding[]): void {
    const old = this.#aors.get(aor);
    if (old) this.#count -= old.length;
    if (bindings.length === 0) {
      this.#aors.delete(aor);
      return;
    }
    this.#aors.set(aor, bindings);
    this.#count += bindings.length;
    let first = Infinity;
    for (const b of bindings) if (b.expiresAtMs < first) first = b.expiresAtMs;
    const due = this.#due.get(aor);
    const sec = Math.ceil(first / 1000);
    // An earlier visit already due finds nothing to purge and enters the AOR again.
    if (due === undefined || due > sec) this.#schedule(aor, sec);
  }

  #schedule(aor: string, sec: number): void {
    // A second already swept would never be visited again.
    const at = Math.max(sec, this.#lastSweepSec + 1);
    this.#due.set(aor, at);
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
        if (this.#due.get(aor) !== sec) continue; // rescheduled earlier, visited then
        this.#due.delete(aor);
        this.#purgeAor(aor, nowMs);
      }
    }
    this.#lastSweepSec = nowSec;
  }

  #purgeAor(aor: string, nowMs: number): void {
    const list = this.#aors.get(aor);
    if (!list) return;
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
    if (keep.length !== list.length) {
      this.#count -= list.length - keep.length;
      if (keep.length) this.#aors.set(aor, keep);
      else this.#aors.delete(aor);
    }
    let first = Infinity;
    for (const b of keep) if (b.expiresAtMs < first) first = b.expiresAtMs;
    if (keep.length) this.#schedule(aor, Math.ceil(first / 1000));
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
