/**
 * Nonce-count replay state in Redis (RFC 7616 §3.4): `tandem:<cluster>:nc:<nonce>`, a hash with
 * the highest nc accepted (`nc`, also the record's `_v`) and `_owner` (node that accepted it),
 * expiring one nonce lifetime after the nonce's first use. "Accept if greater" is one Lua script,
 * so two nodes offered the same nc accept it once between them.
 *
 * Every answer is also kept locally (bounded): a replay this node has seen is refused without a
 * round trip. With Redis unreachable (down, or no answer within the command timeout) the local
 * answer stands: replays to the same node are still refused, replays to another node are not
 * (counted in `tandem_nonce_count_local_only_total`).
 */
import { counter } from '../../util/metrics.js';
import type { NonceCountStore } from '../store.js';
import type { RedisScript } from './redis-connection.js';
import type { RedisState } from './redis-state.js';

export interface RedisNonceCountStoreOptions {
  state: RedisState;
  /**
   * Most nonces remembered locally (oldest forgotten first).
   * @default 200000
   */
  maxLocalNonces?: number;
  now?: () => number;
}

/** KEYS[1] nonce; ARGV: nc, ttl ms, owner. 1: accepted, 0: replay. */
const ACCEPT_LUA = `
local last = tonumber(redis.call('HGET', KEYS[1], 'nc'))
local nc = tonumber(ARGV[1])
if last and nc <= last then return 0 end
redis.call('HSET', KEYS[1], 'nc', ARGV[1], '_v', ARGV[1], '_owner', ARGV[3])
if not last then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`;

const localOnly = counter('tandem_nonce_count_local_only_total', 'Nonce-count checks decided by this node alone because Redis could not be asked');

export class RedisNonceCountStore implements NonceCountStore {
  #state: RedisState;
  #script: RedisScript;
  #local = new Map<string, { nc: number; expiresAtMs: number }>();
  #max: number;
  #now: () => number;

  constructor(opts: RedisNonceCountStoreOptions) {
    this.#state = opts.state;
    this.#script = opts.state.script('nonce-accept', ACCEPT_LUA);
    this.#max = opts.maxLocalNonces ?? 200_000;
    this.#now = opts.now ?? Date.now;
  }

  async accept(nonce: string, nc: number, ttlSec: number): Promise<boolean> {
    const now = this.#now();
    const seen = this.#local.get(nonce);
    if (seen && seen.expiresAtMs > now && nc <= seen.nc) return false;
    this.#remember(nonce, nc, seen && seen.expiresAtMs > now ? seen.expiresAtMs : now + ttlSec * 1000);
    const conn = this.#state.commands;
    if (!conn.ready) {
      localOnly.inc();
      return true;
    }
    try {
      const r = await conn.evalScript(this.#script, [this.#state.key('nc', nonce)], [nc, ttlSec * 1000, this.#state.nodeId]);
      return Number(r) === 1;
    } catch {
      localOnly.inc();
      return true;
    }
  }

  async close(): Promise<void> {
    this.#local.clear();
  }

  #remember(nonce: string, nc: number, expiresAtMs: number): void {
    // Re-inserted so the Map's order stays oldest-used first.
    this.#local.delete(nonce);
    if (this.#local.size >= this.#max) {
      const oldest = this.#local.keys().next();
      if (!oldest.done) this.#local.delete(oldest.value);
    }
    this.#local.set(nonce, { nc, expiresAtMs });
  }
}
