import type { Binding, SyncLocationStore } from '../store.js';

/**
 * In-process location store. Expiry purging uses one-second buckets keyed by expiry time
 * (a coarse timer wheel): inserting and refreshing a binding is O(1), and one interval per second
 * visits only the bindings due in that second, so 100,000 bindings cost nothing between expiries.
 */
export class MemoryLocationStore implements SyncLocationStore {
  #aors = new Map<string, Binding[]>();
  #buckets = new Map<number, Set<string>>();
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
    // The AOR is entered in the bucket of each binding's expiry second; a stale entry (binding
    // refreshed since) just finds nothing to purge.
    for (const b of bindings) {
      const sec = Math.ceil(b.expiresAtMs / 1000);
      let set = this.#buckets.get(sec);
      if (!set) {
        set = new Set();
        this.#buckets.set(sec, set);
      }
      set.add(aor);
    }
  }

  /** Removes expired bindings due up to now; called every second. */
  sweep(): void {
    const nowMs = this.#now();
    const nowSec = Math.floor(nowMs / 1000);
    for (let sec = this.#lastSweepSec + 1; sec <= nowSec; sec++) {
      const set = this.#buckets.get(sec);
      if (!set) continue;
      this.#buckets.delete(sec);
      for (const aor of set) this.#purgeAor(aor, nowMs);
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
    if (keep.length === list.length) return;
    this.#count -= list.length - keep.length;
    if (keep.length) this.#aors.set(aor, keep);
    else this.#aors.delete(aor);
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
