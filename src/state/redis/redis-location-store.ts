/**
 * Location store shared through Redis: one hash per AOR, `tandem:<cluster>:loc:<aor>`, with one
 * field per binding (`b:<n>`: the binding as JSON, its expiry included) plus `_v`, `_owner`,
 * `_exp`; the key expires with the last binding.
 *
 * `setBindings` never waits on Redis (cache now, Redis through the outbox). `getBindings` answers
 * from the local cache and asks Redis on a miss; with Redis unreachable, a miss waits up to
 * `readWaitMs` for it (a failover) and then has no bindings. `size()` and `aorCount()` count what this node knows: the bindings it wrote
 * and those it read and still holds. `onExpired` reports expired bindings of AORs whose last
 * write was this node's, so one node reports each expiry, not every node that cached it.
 */
import type { Binding, LocationStore } from '../store.js';
import type { RedisState } from './redis-state.js';
import { SharedRecords, type CachedRecord, type RecordCodec } from './shared-records.js';

export interface RedisLocationStoreOptions {
  state: RedisState;
  /**
   * How long a removed AOR's tombstone stays in Redis.
   * @default 60
   */
  tombstoneSec?: number;
  /**
   * Most AORs cached by this node (its own and those read); the oldest are forgotten past it.
   * @default 500000
   */
  maxCachedAors?: number;
  /**
   * How long a lookup of an AOR this node has not cached waits for an unreachable Redis to come
   * back (a Sentinel failover takes about 2.3 s with down-after 1 s), ms. @default 4000
   */
  readWaitMs?: number;
  /**
   * How long "this AOR has no bindings", read from Redis, is cached.
   * @default 30
   */
  negativeCacheSec?: number;
  /** @default 1000 */
  sweepIntervalMs?: number;
  now?: () => number;
}

const codec: RecordCodec<Binding[]> = {
  encode(bindings) {
    const out: string[] = [];
    bindings.forEach((b, i) => out.push(`b:${i}`, JSON.stringify(b)));
    return out;
  },
  decode(fields) {
    const out: Array<[number, Binding]> = [];
    for (const [k, v] of fields) {
      if (!k.startsWith('b:')) continue;
      try {
        out.push([Number(k.slice(2)), JSON.parse(v) as Binding]);
      } catch {
        // A field another version wrote and this one cannot read: skipped.
      }
    }
    return out.sort((a, b) => a[0] - b[0]).map(([, b]) => b);
  },
};

export class RedisLocationStore implements LocationStore {
  readonly records: SharedRecords<Binding[]>;
  #state: RedisState;
  #tombstoneMs: number;
  #now: () => number;
  #count = 0;
  #aors = 0;
  #listeners: Array<(b: Binding) => void> = [];
  /** Per-binding expiry buckets: second -> AORs with a binding due then. */
  #buckets = new Map<number, Set<string>>();
  #lastSweepSec: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: RedisLocationStoreOptions) {
    this.#state = opts.state;
    this.#tombstoneMs = (opts.tombstoneSec ?? 60) * 1000;
    this.#now = opts.now ?? Date.now;
    this.#lastSweepSec = Math.floor(this.#now() / 1000) - 1;
    this.records = new SharedRecords<Binding[]>({
      state: opts.state,
      kind: 'loc',
      codec,
      maxCached: opts.maxCachedAors ?? 500_000,
      negativeTtlMs: (opts.negativeCacheSec ?? 30) * 1000,
      // A call to a user this node has not cached waits out a Redis failover instead of a false 480.
      readWaitMs: opts.readWaitMs ?? 4000,
      now: this.#now,
      onChange: (aor, before, after) => this.#onChange(aor, before, after),
    });
    this.#timer = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 1000);
    this.#timer.unref();
  }

  async getBindings(aor: string): Promise<Binding[]> {
    const rec = await this.records.read(aor);
    if (!rec?.value) return [];
    const now = this.#now();
    return rec.value.filter((b) => b.expiresAtMs > now);
  }

  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    const now = this.#now();
    if (bindings.length === 0) {
      this.records.write(aor, undefined, now + this.#tombstoneMs);
      return;
    }
    let last = 0;
    for (const b of bindings) if (b.expiresAtMs > last) last = b.expiresAtMs;
    this.records.write(aor, [...bindings], last);
  }

  size(): number {
    return this.#count;
  }

  aorCount(): number {
    return this.#aors;
  }

  onExpired(listener: (binding: Binding) => void): void {
    this.#listeners.push(listener);
  }

  /** Drops expired bindings from the cache and reports this node's; runs every second. */
  sweep(): void {
    const nowMs = this.#now();
    const nowSec = Math.floor(nowMs / 1000);
    for (let sec = this.#lastSweepSec + 1; sec <= nowSec; sec++) {
      const set = this.#buckets.get(sec);
      if (!set) continue;
      this.#buckets.delete(sec);
      for (const aor of set) this.#purge(aor, nowMs);
    }
    this.#lastSweepSec = nowSec;
    this.records.sweep(nowMs);
  }

  /** Stops the sweep. The RedisState is closed by its owner (it is shared by several stores). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #purge(aor: string, nowMs: number): void {
    const rec = this.records.peek(aor);
    if (!rec?.value) return;
    const keep: Binding[] = [];
    const gone: Binding[] = [];
    for (const b of rec.value) (b.expiresAtMs > nowMs ? keep : gone).push(b);
    if (!gone.length) return;
    this.records.updateLocal(aor, keep.length ? keep : undefined);
    if (!rec.own) return;
    for (const b of gone) {
      for (const l of this.#listeners) {
        try {
          l(b);
        } catch {
          /* listener errors never break the sweep */
        }
      }
    }
  }

  #onChange(aor: string, before: CachedRecord<Binding[]> | undefined, after: CachedRecord<Binding[]> | undefined): void {
    const was = before?.value?.length ?? 0;
    const is = after?.value?.length ?? 0;
    this.#count += is - was;
    this.#aors += (is > 0 ? 1 : 0) - (was > 0 ? 1 : 0);
    if (after?.value && after.value !== before?.value) {
      for (const b of after.value) {
        const sec = Math.max(Math.ceil(b.expiresAtMs / 1000), this.#lastSweepSec + 1);
        let set = this.#buckets.get(sec);
        if (!set) {
          set = new Set();
          this.#buckets.set(sec, set);
        }
        set.add(aor);
      }
    }
  }

  /** The RedisState this store writes through. */
  get state(): RedisState {
    return this.#state;
  }
}
