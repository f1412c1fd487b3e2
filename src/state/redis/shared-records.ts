/**
 * Records of one kind (location bindings of an AOR, a dialog) shared through Redis, with a local
 * cache kept coherent by invalidation (redis-state.ts). The stores build on this.
 *
 * A record is a hash `tandem:<cluster>:<kind>:<id>` holding the record's fields plus
 * `_v` (version), `_owner` (node that wrote it), `_exp` (when it lapses, ms) and, for a removed
 * record, `_del` (a tombstone, kept `tombstoneMs` so a late replay of an older write cannot bring
 * it back). The key expires at `_exp`.
 *
 * Writes go to the cache at once and to Redis through the outbox, as one Lua script: applied only
 * when no newer version is stored, then announced on the invalidation channel. Reads come from the
 * cache; a miss asks Redis (one HGETALL, concurrent misses for one id share it) and caches the
 * answer, an absent record included, while invalidations are being received.
 */
import type { RedisScript } from './redis-connection.js';
import type { RedisState } from './redis-state.js';

/** How a record maps to hash fields. */
export interface RecordCodec<T> {
  /** Field, value pairs; field names never start with `_`. */
  encode(value: T): string[];
  /** The record from its fields (meta fields removed); undefined when unusable. */
  decode(fields: Map<string, string>): T | undefined;
}

/** What the node knows of one record. */
export interface CachedRecord<T> {
  /** undefined: known to be absent (never written, removed, or lapsed). */
  value: T | undefined;
  /** Version as stored in Redis; 0 when Redis holds nothing. */
  version: number;
  /** This node wrote the version held. */
  own: boolean;
  /** When the record lapses, ms since the epoch. */
  expiresAtMs: number;
  /** Owner node named in Redis. */
  owner?: string;
}

export interface SharedRecordsOptions<T> {
  state: RedisState;
  /** Key segment: `tandem:<cluster>:<kind>:<id>`. */
  kind: string;
  codec: RecordCodec<T>;
  /** Most records cached; past it the oldest cached is forgotten (it stays in Redis). */
  maxCached: number;
  /** How long an absent record read from Redis stays cached (invalidation keeps it right meanwhile). */
  negativeTtlMs: number;
  /** Called on every change of the cache (for counts and expiry bookkeeping). */
  onChange?: (id: string, before: CachedRecord<T> | undefined, after: CachedRecord<T> | undefined) => void;
  now?: () => number;
  /**
   * A read that finds Redis unreachable waits for it to come back until Redis has been away this
   * long (a Sentinel failover takes about 2.3 s), then answers "not known"; past that (an outage)
   * reads answer at once. ms; 0: never wait. @default 0
   */
  readWaitMs?: number;
}

/**
 * KEYS[1] record; ARGV: version, owner, expire-at ms, channel, message, field, value, ...
 * Returns 1 when written, 0 when Redis holds a newer version (nothing changed, nothing published).
 */
const PUT_LUA = `
local cur = tonumber(redis.call('HGET', KEYS[1], '_v'))
if cur and cur > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_v', ARGV[1], '_owner', ARGV[2], '_exp', ARGV[3], unpack(ARGV, 6))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`;

const RESYNC_CHUNK = 500;

export class SharedRecords<T> {
  readonly kind: string;
  #state: RedisState;
  #codec: RecordCodec<T>;
  #script: RedisScript;
  #cache = new Map<string, CachedRecord<T>>();
  #reads = new Map<string, Promise<CachedRecord<T> | undefined>>();
  /** Expiry buckets: second -> ids due then. */
  #buckets = new Map<number, Set<string>>();
  #lastSweepSec: number;
  /** Invalidations that arrived while a read of the id was in flight: id -> highest version (0: unknown). */
  #crossed = new Map<string, number>();
  #maxCached: number;
  #negativeTtlMs: number;
  #onChange: SharedRecordsOptions<T>['onChange'];
  #now: () => number;

  constructor(opts: SharedRecordsOptions<T>) {
    this.kind = opts.kind;
    this.#state = opts.state;
    this.#codec = opts.codec;
    this.#maxCached = opts.maxCached;
    this.#negativeTtlMs = opts.negativeTtlMs;
    this.#onChange = opts.onChange;
    this.#now = opts.now ?? Date.now;
    this.#readWaitMs = opts.readWaitMs ?? 0;
    this.#downSinceMs = opts.state.commands.ready ? undefined : this.#now();
    if (this.#readWaitMs > 0) {
      opts.state.commands.on('down', () => (this.#downSinceMs ??= this.#now()));
      opts.state.commands.on('ready', () => (this.#downSinceMs = undefined));
    }
    this.#lastSweepSec = Math.floor(this.#now() / 1000) - 1;
    this.#script = opts.state.script('put-record', PUT_LUA);
    opts.state.onInvalidate(this.kind, (id, _from, version) => this.#invalidate(id, version));
    opts.state.onResync((lost) => this.#resync(lost));
  }

  /** Cached records (known absent ones included). */
  get cachedCount(): number {
    return this.#cache.size;
  }

  /** The cached record, without asking Redis. */
  peek(id: string): CachedRecord<T> | undefined {
    return this.#cache.get(id);
  }

  entries(): IterableIterator<[string, CachedRecord<T>]> {
    return this.#cache.entries();
  }

  /**
   * The record as this node knows it, else as Redis has it. undefined when Redis cannot be asked
   * (down, timeout): the caller treats the record as unknown. Never rejects.
   */
  async read(id: string): Promise<CachedRecord<T> | undefined> {
    const hit = this.#cache.get(id);
    if (hit) {
      if (hit.expiresAtMs > this.#now()) return hit;
      this.#delete(id);
    }
    if (!this.#state.commands.ready && !(await this.#whenReady())) return undefined;
    let pending = this.#reads.get(id);
    if (!pending) {
      pending = this.#fetch(id).finally(() => this.#reads.delete(id));
      this.#reads.set(id, pending);
    }
    return pending;
  }

  /** Writes `value` (undefined: remove) now to the cache and through the outbox to Redis. */
  write(id: string, value: T | undefined, expiresAtMs: number, onDurable?: () => void): void {
    const state = this.#state;
    const version = state.nextVersion();
    const entry: CachedRecord<T> = { value, version, own: true, expiresAtMs, owner: state.nodeId };
    this.#set(id, entry);
    if (onDurable) {
      // A later write of the same record replaces this one in the outbox: its answer covers both.
      const list = this.#durableWaiters.get(id);
      if (list) list.push(onDurable);
      else this.#durableWaiters.set(id, [onDurable]);
    }
    this.#push(id, entry);
  }

  readonly #readWaitMs: number;
  #downSinceMs: number | undefined;

  /**
   * Resolves true once the command connection is up; false at once when Redis has been away
   * longer than `readWaitMs` (an outage, not a failover: nothing waits), else when it runs out.
   */
  #whenReady(): Promise<boolean> {
    const conn = this.#state.commands;
    if (conn.ready) return Promise.resolve(true);
    const leftMs = this.#readWaitMs - (this.#now() - (this.#downSinceMs ?? this.#now()));
    if (leftMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onReady = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        conn.off('ready', onReady);
        resolve(false);
      }, leftMs);
      conn.once('ready', onReady);
    });
  }

  /** Callers waiting for a record's write to reach Redis (`write(..., onDurable)`). */
  #durableWaiters = new Map<string, Array<() => void>>();

  #durable(id: string): void {
    const list = this.#durableWaiters.get(id);
    if (!list) return;
    this.#durableWaiters.delete(id);
    for (const fn of list) {
      try {
        fn();
      } catch {
        /* a waiter's fault is its own */
      }
    }
  }

  /** Changes the cached record only (e.g. drops lapsed parts that Redis filters on read anyway). */
  updateLocal(id: string, value: T | undefined): void {
    const cur = this.#cache.get(id);
    if (cur) this.#set(id, { ...cur, value });
  }

  /**
   * Forgets records whose time is up (due by `nowMs`); `onChange` sees each with `after`
   * undefined. The owning store calls this from its sweep timer.
   */
  sweep(nowMs: number): void {
    const nowSec = Math.floor(nowMs / 1000);
    for (let sec = this.#lastSweepSec + 1; sec <= nowSec; sec++) {
      const ids = this.#buckets.get(sec);
      if (!ids) continue;
      this.#buckets.delete(sec);
      for (const id of ids) {
        const e = this.#cache.get(id);
        if (e && e.expiresAtMs <= nowMs) this.#delete(id);
        else if (e) this.#bucket(id, e.expiresAtMs);
      }
    }
    this.#lastSweepSec = nowSec;
  }

  clear(): void {
    for (const id of [...this.#cache.keys()]) this.#delete(id);
    this.#buckets.clear();
  }

  #push(id: string, entry: CachedRecord<T>): void {
    const state = this.#state;
    const fields = entry.value === undefined ? ['_del', '1'] : this.#codec.encode(entry.value);
    state.outbox.push({
      key: `${this.kind}:${id}`,
      commands: [
        ['evalsha', this.#script.sha, 1, state.key(this.kind, id), entry.version, state.nodeId, entry.expiresAtMs, state.channel, state.message(this.kind, id, entry.version), ...fields],
      ],
      onApplied: (results) => {
        this.#durable(id);
        const [err, written] = results[0] ?? [null, null];
        if (err) return;
        const cur = this.#cache.get(id);
        if (written === 0) {
          // Redis holds a newer version (another node's): ours is not the record any more.
          if (cur && cur.version === entry.version) this.#delete(id);
        } else if (cur && cur !== entry && cur.version < entry.version) {
          // An older version was read in while this write waited: ours is the one Redis holds now.
          this.#set(id, entry);
        }
      },
    });
  }

  async #fetch(id: string): Promise<CachedRecord<T> | undefined> {
    const state = this.#state;
    const cacheable = state.coherent;
    let reply: unknown;
    try {
      reply = await state.commands.call('HGETALL', state.key(this.kind, id));
    } catch {
      // The primary died under the read: once, wait for the new one (Sentinel) and ask it.
      if (!(this.#readWaitMs > 0 && !state.commands.ready && (await this.#whenReady()))) {
        this.#crossed.delete(id);
        return undefined;
      }
      try {
        reply = await state.commands.call('HGETALL', state.key(this.kind, id));
      } catch {
        this.#crossed.delete(id);
        return undefined;
      }
    }
    const entry = this.#decode(reply);
    const crossed = this.#crossed.get(id);
    this.#crossed.delete(id);
    // Cached only when no invalidation of a newer version crossed the read (the reply and the
    // message come on different connections), and no own write happened meanwhile.
    const stale = crossed !== undefined && (crossed === 0 || crossed > entry.version);
    if (cacheable && state.coherent && !stale && !this.#cache.has(id)) this.#set(id, entry);
    return entry;
  }

  #decode(reply: unknown): CachedRecord<T> {
    const now = this.#now();
    const fields = new Map<string, string>();
    if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), String(reply[i + 1]));
    const version = Number(fields.get('_v') ?? 0) || 0;
    const owner = fields.get('_owner');
    const expiresAtMs = Number(fields.get('_exp') ?? 0) || 0;
    const deleted = fields.has('_del');
    for (const k of ['_v', '_owner', '_exp', '_del']) fields.delete(k);
    if (version === 0 || expiresAtMs <= now) return { value: undefined, version: 0, own: false, expiresAtMs: now + this.#negativeTtlMs };
    const value = deleted ? undefined : this.#codec.decode(fields);
    return { value, version, own: owner === this.#state.nodeId, expiresAtMs, ...(owner !== undefined ? { owner } : {}) };
  }

  #invalidate(id: string, version: number): void {
    if (this.#reads.has(id)) {
      const prev = this.#crossed.get(id);
      this.#crossed.set(id, prev === 0 || version === 0 ? 0 : Math.max(prev ?? 0, version));
    }
    const cur = this.#cache.get(id);
    // A message about an older version than the one held (ours, still in flight) changes nothing.
    if (cur && !(version > 0 && cur.version >= version)) this.#delete(id);
  }

  #set(id: string, entry: CachedRecord<T>): void {
    const before = this.#cache.get(id);
    if (!before && this.#cache.size >= this.#maxCached) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#delete(oldest.value);
    }
    this.#cache.set(id, entry);
    if (!before || before.expiresAtMs !== entry.expiresAtMs) this.#bucket(id, entry.expiresAtMs);
    this.#onChange?.(id, before, entry);
  }

  #delete(id: string): void {
    // Nobody waits on a record that is gone (its write may have been dropped: Redis down).
    this.#durableWaiters.delete(id);
    const before = this.#cache.get(id);
    if (!before) return;
    this.#cache.delete(id);
    this.#onChange?.(id, before, undefined);
  }

  #bucket(id: string, expiresAtMs: number): void {
    if (!Number.isFinite(expiresAtMs)) return;
    const sec = Math.max(Math.ceil(expiresAtMs / 1000), this.#lastSweepSec + 1);
    let set = this.#buckets.get(sec);
    if (!set) {
      set = new Set();
      this.#buckets.set(sec, set);
    }
    set.add(id);
  }

  /**
   * Checks every cached record's version against Redis and drops those that differ. After Redis
   * lost its data, records this node owns and Redis lacks are written back (same version).
   * Rejects when Redis fails midway (RedisState tries again).
   */
  async #resync(redisLost: boolean): Promise<void> {
    const state = this.#state;
    const ids = [...this.#cache.keys()];
    for (let i = 0; i < ids.length; i += RESYNC_CHUNK) {
      const chunk = ids.slice(i, i + RESYNC_CHUNK);
      const results = await state.commands.exec(chunk.map((id) => ['hget', state.key(this.kind, id), '_v']));
      const now = this.#now();
      chunk.forEach((id, k) => {
        const [err, v] = results[k]!;
        const cur = this.#cache.get(id);
        if (err || !cur) return;
        const stored = v === null || v === undefined ? 0 : Number(v);
        if (stored === cur.version) return;
        if (stored === 0 && redisLost && cur.own && cur.expiresAtMs > now) this.#push(id, cur);
        else this.#delete(id);
      });
    }
  }
}
