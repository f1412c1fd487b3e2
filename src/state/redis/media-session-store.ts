/**
 * Media session records in Redis, per virtual address (VIP), for hot-standby takeover of calls.
 *
 * Layout (`<c>` is the cluster name, `<vip>` the address the calls' ports live on):
 *
 * | key | type | content | TTL |
 * | --- | --- | --- | --- |
 * | `tandem:<c>:msess:<vip>:<call-id>` | hash | `rec` (the record, opaque here), `_v`, `_owner`, `_epoch`; a removed call: `_del`, `_v`, `_owner`, `_epoch` | `ttlMs` from the last write; tombstone `tombstoneMs` |
 * | `tandem:<c>:msess-index:<vip>` | sorted set | call-id -> version of its newest write | `ttlMs` from the last write |
 * | channel `tandem:<c>:msess` | pub/sub | every applied write, with the record itself (JSON envelope, {@link MediaRecordMessage}) | |
 *
 * A write is one Lua script (through the outbox, so it never blocks the caller): it applies only
 * when Redis holds no higher lease epoch (a fenced-off old holder cannot overwrite the calls the
 * new one took over) and, under the same epoch, no newer version (a late replay cannot overwrite a
 * newer write); a higher epoch wins whatever the versions, so a new holder whose clock is behind
 * the old one's is not refused. Then it updates the index and publishes the record.
 * Pub/sub is fire-and-forget, so it is only the fast path: a standby that was disconnected (or
 * just started) replays from the index with {@link MediaSessionStore.scan}, which lists every
 * call of a VIP with its version, and fetches the records whose version it does not hold. Calls
 * missing from the index are gone. The store does not interpret records (media decodes them).
 */
import { createLogger } from '../../util/logger.js';
import type { RedisScript } from './redis-connection.js';
import type { RedisState } from './redis-state.js';

const log = createLogger('state/media-sessions');

/** What the channel carries for each applied write. */
export interface MediaRecordMessage {
  vip: string;
  callId: string;
  version: number;
  owner: string;
  epoch: number;
  /** The record; undefined for a removal. */
  rec?: string;
}

/** A record as read from Redis by {@link MediaSessionStore.scan} or {@link MediaSessionStore.fetch}. */
export interface StoredMediaRecord {
  callId: string;
  version: number;
  owner: string;
  epoch: number;
  /** undefined: removed (tombstone) or the hash has no `rec`. */
  rec: string | undefined;
  /** A tombstone: the call was removed. */
  deleted: boolean;
}

export interface MediaSessionStoreOptions {
  state: RedisState;
  /**
   * Lifetime of a record after its last write; the owner rewrites every record with fresh counters
   * every few seconds, so only the calls of a node that died with no standby lapse.
   * @default 600000
   */
  ttlMs?: number;
  /** How long a removed call's tombstone stays (a late replayed write cannot bring it back). @default 60000 */
  tombstoneMs?: number;
}

/** KEYS: record, index. ARGV: version, owner, epoch, ttlMs, channel, message, call-id, rec. */
const PUT_LUA = `
local ep = tonumber(redis.call('HGET', KEYS[1], '_epoch'))
if ep and ep > tonumber(ARGV[3]) then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[1], '_v'))
if cur and ep == tonumber(ARGV[3]) and cur > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_v', ARGV[1], '_owner', ARGV[2], '_epoch', ARGV[3], 'rec', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`;

/** KEYS: record, index. ARGV: version, owner, epoch, tombstoneMs, channel, message, call-id. */
const DEL_LUA = `
local ep = tonumber(redis.call('HGET', KEYS[1], '_epoch'))
if ep and ep > tonumber(ARGV[3]) then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[1], '_v'))
if cur and ep == tonumber(ARGV[3]) and cur > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_del', '1', '_v', ARGV[1], '_owner', ARGV[2], '_epoch', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`;

const SCAN_CHUNK = 500;

export class MediaSessionStore {
  readonly #state: RedisState;
  readonly #put: RedisScript;
  readonly #del: RedisScript;
  readonly #ttlMs: number;
  readonly #tombstoneMs: number;
  readonly channel: string;
  #handlers: Array<(m: MediaRecordMessage | undefined, raw: string) => void> = [];
  /** Writes Redis refused as stale (a newer version or epoch held), for tests and the admin API. */
  readonly stats = { written: 0, stale: 0 };

  constructor(opts: MediaSessionStoreOptions) {
    this.#state = opts.state;
    this.#ttlMs = opts.ttlMs ?? 600_000;
    this.#tombstoneMs = opts.tombstoneMs ?? 60_000;
    this.channel = `tandem:${opts.state.cluster}:msess`;
    this.#put = opts.state.script('msess-put', PUT_LUA);
    this.#del = opts.state.script('msess-del', DEL_LUA);
    opts.state.subscriber.subscribe(this.channel);
    opts.state.subscriber.on('message', (channel, message) => {
      if (channel !== this.channel) return;
      const m = parseMessage(message);
      for (const h of this.#handlers) {
        try {
          h(m, message);
        } catch (err) {
          log.error({ err }, 'media record handler threw');
        }
      }
    });
  }

  /** The node's shared state (connections, outbox, version clock). */
  get state(): RedisState {
    return this.#state;
  }

  recordKey(vip: string, callId: string): string {
    return this.#state.key('msess', `${vip}:${callId}`);
  }

  indexKey(vip: string): string {
    return this.#state.key('msess-index', vip);
  }

  /**
   * Every write applied by any node, this one's included (the caller skips its own).
   * `m` is undefined for a message that is not a well-formed envelope; `raw` is the message.
   */
  onMessage(handler: (m: MediaRecordMessage | undefined, raw: string) => void): void {
    this.#handlers.push(handler);
  }

  /** Writes a call's record (never waits; a newer write for the same call replaces it while queued). Returns its version. */
  put(vip: string, callId: string, rec: string, epoch: number): number {
    const s = this.#state;
    const version = s.nextVersion();
    const message = JSON.stringify({ vip, callId, version, owner: s.nodeId, epoch, rec } satisfies MediaRecordMessage);
    s.outbox.push({
      key: `msess:${vip}:${callId}`,
      commands: [['evalsha', this.#put.sha, 2, this.recordKey(vip, callId), this.indexKey(vip), version, s.nodeId, epoch, this.#ttlMs, this.channel, message, callId, rec]],
      onApplied: (r) => this.#count(r),
    });
    return version;
  }

  /** Removes a call's record (never waits). */
  remove(vip: string, callId: string, epoch: number): number {
    const s = this.#state;
    const version = s.nextVersion();
    const message = JSON.stringify({ vip, callId, version, owner: s.nodeId, epoch } satisfies MediaRecordMessage);
    s.outbox.push({
      key: `msess:${vip}:${callId}`,
      commands: [['evalsha', this.#del.sha, 2, this.recordKey(vip, callId), this.indexKey(vip), version, s.nodeId, epoch, this.#tombstoneMs, this.channel, message, callId]],
      onApplied: (r) => this.#count(r),
    });
    return version;
  }

  #count(results: Array<[Error | null, unknown]>): void {
    const [err, v] = results[0] ?? [null, null];
    if (err) return;
    if (v === 0) this.stats.stale++;
    else this.stats.written++;
  }

  /**
   * The calls of `vip` Redis holds, with their versions (one ZRANGE). Rejects when Redis cannot
   * be asked; the caller tries again later.
   */
  async index(vip: string): Promise<Map<string, number>> {
    const r = await this.#state.commands.call('ZRANGE', this.indexKey(vip), 0, -1, 'WITHSCORES');
    const out = new Map<string, number>();
    if (Array.isArray(r)) for (let i = 0; i + 1 < r.length; i += 2) out.set(String(r[i]), Number(r[i + 1]));
    return out;
  }

  /**
   * Reads the records of `callIds` (pipelined, 500 per round trip). A call whose hash is gone
   * (lapsed) comes back with version 0 and is taken out of the index. Rejects when Redis fails.
   */
  async fetch(vip: string, callIds: string[]): Promise<StoredMediaRecord[]> {
    const out: StoredMediaRecord[] = [];
    const gone: string[] = [];
    for (let i = 0; i < callIds.length; i += SCAN_CHUNK) {
      const chunk = callIds.slice(i, i + SCAN_CHUNK);
      const results = await this.#state.commands.exec(chunk.map((id) => ['hgetall', this.recordKey(vip, id)]));
      chunk.forEach((callId, k) => {
        const [err, reply] = results[k] ?? [null, null];
        if (err) throw err;
        const f = new Map<string, string>();
        if (Array.isArray(reply)) for (let j = 0; j + 1 < reply.length; j += 2) f.set(String(reply[j]), String(reply[j + 1]));
        else if (reply && typeof reply === 'object') for (const [key, val] of Object.entries(reply)) f.set(key, String(val));
        const version = Number(f.get('_v') ?? 0) || 0;
        if (version === 0) gone.push(callId);
        out.push({ callId, version, owner: f.get('_owner') ?? '', epoch: Number(f.get('_epoch') ?? 0) || 0, rec: f.has('_del') ? undefined : f.get('rec'), deleted: f.has('_del') });
      });
    }
    if (gone.length) await this.#state.commands.call('ZREM', this.indexKey(vip), ...gone).catch(() => undefined);
    return out;
  }
}

function parseMessage(raw: string): MediaRecordMessage | undefined {
  try {
    const m = JSON.parse(raw) as Partial<MediaRecordMessage> | null;
    if (!m || typeof m !== 'object') return undefined;
    if (typeof m.vip !== 'string' || typeof m.callId !== 'string' || typeof m.version !== 'number' || typeof m.owner !== 'string' || typeof m.epoch !== 'number') return undefined;
    if (m.rec !== undefined && typeof m.rec !== 'string') return undefined;
    return { vip: m.vip, callId: m.callId, version: m.version, owner: m.owner, epoch: m.epoch, ...(m.rec !== undefined ? { rec: m.rec } : {}) };
  } catch {
    return undefined;
  }
}
