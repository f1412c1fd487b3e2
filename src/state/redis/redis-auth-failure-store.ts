/**
 * Failed-authentication counts and source blocks shared through Redis.
 *
 * - `tandem:<cluster>:authfail:<source>`: sorted set of failures (member `node:seq`, score: when),
 *   a sliding window of `windowSec`; the key expires with the window.
 * - `tandem:<cluster>:block:<source>`: hash `until`, `_v`, `_owner`; expires when the block ends.
 * - `tandem:<cluster>:blocks`: sorted set source -> until, so a node (re)connecting learns every
 *   block at once.
 *
 * A failure is counted here at once (this node's own window, as `AuthFailureTracker` does) and in
 * Redis through the outbox; the Lua script that adds it blocks the source when the cluster-wide
 * count reaches `maxFailures` and announces the block, so a scanner spreading its guesses over
 * the nodes is blocked everywhere. `isBlocked` answers from this node's view at once. Failure
 * members are unique, so a replayed write does not count twice.
 */
import { AuthFailureTracker } from '../../sip/auth/digest-server.js';
import type { AuthFailureStore } from '../store.js';
import type { RedisScript } from './redis-connection.js';
import type { RedisState } from './redis-state.js';

export interface RedisAuthFailureStoreOptions {
  state: RedisState;
  /**
   * Failed authentications from one source within `windowSec` (across the cluster) before it is
   * blocked.
   * @default 10
   */
  maxFailures?: number;
  /** @default 60 */
  windowSec?: number;
  /**
   * How long a blocked source is ignored.
   * @default 300
   */
  blockSec?: number;
  now?: () => number;
}

/**
 * KEYS: failures, block, blocks index. ARGV: now ms, window ms, member, max, block ms, owner,
 * channel, message prefix, source. Returns the block end when this failure blocked, else 0.
 */
const FAIL_LUA = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[2], 'until'))
if cur and cur > now then return 0 end
local untilMs = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[2], 'until', untilMs, '_v', untilMs, '_owner', ARGV[6])
redis.call('PEXPIREAT', KEYS[2], untilMs)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], untilMs, ARGV[9])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[7], ARGV[8] .. untilMs .. '\\n' .. ARGV[9])
return untilMs
`;

/** KEYS: block, blocks index. ARGV: until ms, owner, block ms, channel, message, source. */
const BLOCK_LUA = `
local untilMs = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'until'))
if cur and cur >= untilMs then return 0 end
redis.call('HSET', KEYS[1], 'until', untilMs, '_v', untilMs, '_owner', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], untilMs)
redis.call('ZADD', KEYS[2], untilMs, ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`;

const KIND = 'block';

export class RedisAuthFailureStore implements AuthFailureStore {
  #state: RedisState;
  #local: AuthFailureTracker;
  #blocked = new Map<string, number>();
  #failScript: RedisScript;
  #blockScript: RedisScript;
  #max: number;
  #windowMs: number;
  #blockMs: number;
  #now: () => number;
  #seq = 0;

  constructor(opts: RedisAuthFailureStoreOptions) {
    this.#state = opts.state;
    this.#max = opts.maxFailures ?? 10;
    this.#windowMs = (opts.windowSec ?? 60) * 1000;
    this.#blockMs = (opts.blockSec ?? 300) * 1000;
    this.#now = opts.now ?? Date.now;
    this.#local = new AuthFailureTracker({ maxFailures: this.#max, windowSec: this.#windowMs / 1000, blockSec: this.#blockMs / 1000, now: this.#now });
    this.#failScript = opts.state.script('auth-failure', FAIL_LUA);
    this.#blockScript = opts.state.script('auth-block', BLOCK_LUA);
    // The invalidation's version carries the block's end.
    opts.state.onInvalidate(KIND, (source, _from, untilMs) => this.#learn(source, untilMs));
    opts.state.commands.on('ready', () => void this.#loadBlocks());
    opts.state.onResync(() => this.#loadBlocks(true));
  }

  isBlocked(source: string): boolean {
    const until = this.#blocked.get(source);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#blocked.delete(source);
    return false;
  }

  recordFailure(source: string): boolean {
    const state = this.#state;
    const now = this.#now();
    const blockedHere = this.#local.recordFailure(source) && !this.isBlocked(source);
    const keys = [state.key('authfail', source), state.key('block', source), state.key('blocks', 'index')];
    state.outbox.push({
      commands: [
        ['evalsha', this.#failScript.sha, keys.length, ...keys, now, this.#windowMs, `${state.nodeId}:${this.#seq++}`, this.#max, this.#blockMs, state.nodeId, state.channel, `${KIND}\n${state.nodeId}\n`, source],
      ],
      onApplied: (results) => {
        const untilMs = Number(results[0]?.[1] ?? 0);
        if (untilMs > 0) this.#learn(source, untilMs);
      },
    });
    if (!blockedHere) return false;
    const untilMs = now + this.#blockMs;
    this.#learn(source, untilMs);
    const bkeys = [state.key('block', source), state.key('blocks', 'index')];
    state.outbox.push({
      commands: [['evalsha', this.#blockScript.sha, bkeys.length, ...bkeys, untilMs, state.nodeId, this.#blockMs, state.channel, state.message(KIND, source, untilMs), source]],
    });
    return true;
  }

  recordSuccess(source: string): void {
    this.#local.recordSuccess(source);
    this.#state.outbox.push({ key: `authok:${source}`, commands: [['del', this.#state.key('authfail', source)]] });
  }

  get blockedCount(): number {
    const now = this.#now();
    let n = 0;
    for (const [source, until] of this.#blocked) {
      if (until > now) n++;
      else this.#blocked.delete(source);
    }
    return n;
  }

  async close(): Promise<void> {
    this.#blocked.clear();
  }

  #learn(source: string, untilMs: number): void {
    if (untilMs <= this.#now()) return;
    const cur = this.#blocked.get(source);
    if (cur === undefined || cur < untilMs) this.#blocked.set(source, untilMs);
  }

  /** Every block still running, from the index. */
  async #loadBlocks(mustSucceed = false): Promise<void> {
    try {
      const now = this.#now();
      const reply = await this.#state.commands.call('ZRANGEBYSCORE', this.#state.key('blocks', 'index'), `(${now}`, '+inf', 'WITHSCORES');
      if (!Array.isArray(reply)) return;
      for (let i = 0; i + 1 < reply.length; i += 2) this.#learn(String(reply[i]), Number(reply[i + 1]));
    } catch (err) {
      if (mustSucceed) throw err;
    }
  }
}
