/**
 * Node liveness in Redis.
 *
 * - `tandem:<cluster>:node:<id>`: hash `started`, `hb` (last heartbeat, Redis clock), `meta`
 *   (JSON), `_v` (heartbeat count of this process), `_owner` (the node); expires `ttlMs` after the
 *   last heartbeat.
 * - `tandem:<cluster>:nodes`: sorted set id -> when its heartbeat lapses (Redis clock).
 *
 * Heartbeats use the Redis server's clock (TIME inside the script), so nodes with skewed clocks
 * agree on who is live. A heartbeat is a direct call with the command timeout, not an outbox
 * write: a heartbeat that could not be sent is simply missed, never replayed late.
 */
import type { NodeInfo, NodeRegistry } from '../store.js';
import type { RedisScript } from './redis-connection.js';
import type { RedisState } from './redis-state.js';

export interface RedisNodeRegistryOptions {
  state: RedisState;
  /**
   * Heartbeat period.
   * @default 1000
   */
  intervalMs?: number;
  /**
   * How long after its last heartbeat a node counts as live.
   * @default 3000
   */
  ttlMs?: number;
  /** Facts published with each heartbeat (addresses, roles). */
  meta?: Record<string, string>;
}

/** KEYS: node hash, nodes index. ARGV: node id, ttl ms, started ms, version, meta JSON. Returns the Redis time. */
const HEARTBEAT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'started', ARGV[3], 'hb', now, 'meta', ARGV[5], '_v', ARGV[4], '_owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[2]) * 10, 86400000))
return now
`;

/** KEYS: nodes index. Live ids (lapse time after the Redis clock's now). */
const LIVE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`;

export class RedisNodeRegistry implements NodeRegistry {
  readonly nodeId: string;
  #state: RedisState;
  #intervalMs: number;
  #ttlMs: number;
  #meta: Record<string, string>;
  #startedAtMs = Date.now();
  #version = 0;
  #timer: NodeJS.Timeout | undefined;
  #heartbeat: RedisScript;
  #live: RedisScript;
  #lastKnown: NodeInfo[] = [];
  #closed = false;

  constructor(opts: RedisNodeRegistryOptions) {
    this.#state = opts.state;
    this.nodeId = opts.state.nodeId;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#ttlMs = opts.ttlMs ?? 3000;
    this.#meta = { ...(opts.meta ?? {}) };
    this.#heartbeat = opts.state.script('node-heartbeat', HEARTBEAT_LUA);
    this.#live = opts.state.script('nodes-live', LIVE_LUA);
  }

  start(): void {
    if (this.#timer || this.#closed) return;
    void this.heartbeat();
    this.#timer = setInterval(() => void this.heartbeat(), this.#intervalMs);
    this.#timer.unref();
  }

  async heartbeat(): Promise<boolean> {
    const conn = this.#state.commands;
    if (!conn.ready || this.#closed) return false;
    try {
      const keys = [this.#state.key('node', this.nodeId), this.#state.key('nodes', 'index')];
      await conn.evalScript(this.#heartbeat, keys, [this.nodeId, this.#ttlMs, this.#startedAtMs, ++this.#version, JSON.stringify(this.#meta)]);
      return true;
    } catch {
      return false;
    }
  }

  async liveNodes(): Promise<NodeInfo[]> {
    const conn = this.#state.commands;
    if (!conn.ready) return this.#lastKnown;
    try {
      const ids = await conn.evalScript(this.#live, [this.#state.key('nodes', 'index')], []);
      if (!Array.isArray(ids)) return this.#lastKnown;
      const results = ids.length ? await conn.exec(ids.map((id) => ['hgetall', this.#state.key('node', String(id))])) : [];
      const nodes: NodeInfo[] = [];
      results.forEach(([err, reply], i) => {
        // ioredis hands HGETALL in a pipeline back as an object.
        if (err || reply === null || typeof reply !== 'object') return;
        const f = new Map<string, string>(Object.entries(reply as Record<string, string>));
        if (!f.has('hb')) return;
        let meta: Record<string, string> = {};
        try {
          meta = JSON.parse(f.get('meta') ?? '{}') as Record<string, string>;
        } catch {
          /* unreadable meta: listed without it */
        }
        nodes.push({ nodeId: String(ids[i]), startedAtMs: Number(f.get('started')), heartbeatAtMs: Number(f.get('hb')), version: Number(f.get('_v')), meta });
      });
      this.#lastKnown = nodes;
      return nodes;
    } catch {
      return this.#lastKnown;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const conn = this.#state.commands;
    if (!conn.ready) return;
    try {
      await conn.exec([
        ['del', this.#state.key('node', this.nodeId)],
        ['zrem', this.#state.key('nodes', 'index'), this.nodeId],
      ]);
    } catch {
      // It lapses by itself within ttlMs.
    }
  }
}
