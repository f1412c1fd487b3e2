/**
 * LeaseStore on Redis: `tandem:<cluster>:lease:<name>` holds `owner|epoch` with a PX TTL;
 * `...:epoch` counts acquisitions. Each operation is one Lua script, so check-and-set is atomic.
 */
import type { RedisConnection, RedisScript } from '../state/redis/redis-connection.js';
import type { LeaseGrant, LeaseStore } from './lease-store.js';

const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if not v then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
  return epoch
end
local sep = string.find(v, '|', 1, true)
if sep and string.sub(v, 1, sep - 1) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(v, sep + 1))
end
return false`;

const RENEW = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`;

export class RedisLeaseStore implements LeaseStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #acquire: RedisScript;
  readonly #renew: RedisScript;
  readonly #release: RedisScript;

  constructor(redis: RedisConnection, cluster: string) {
    this.#redis = redis;
    this.#prefix = `tandem:${cluster}:lease:`;
    this.#acquire = redis.defineScript('lease_acquire', ACQUIRE);
    this.#renew = redis.defineScript('lease_renew', RENEW);
    this.#release = redis.defineScript('lease_release', RELEASE);
  }

  async acquire(name: string, owner: string, ttlMs: number): Promise<LeaseGrant | undefined> {
    const key = this.#prefix + name;
    const r = await this.#redis.evalScript(this.#acquire, [key, `${key}:epoch`], [owner, ttlMs]);
    return typeof r === 'number' ? { owner, epoch: r } : undefined;
  }

  async renew(name: string, grant: LeaseGrant, ttlMs: number): Promise<boolean> {
    const r = await this.#redis.evalScript(this.#renew, [this.#prefix + name], [`${grant.owner}|${grant.epoch}`, ttlMs]);
    return r === 1;
  }

  async release(name: string, grant: LeaseGrant): Promise<void> {
    await this.#redis.evalScript(this.#release, [this.#prefix + name], [`${grant.owner}|${grant.epoch}`]);
  }

  async holder(name: string): Promise<LeaseGrant | undefined> {
    const v = await this.#redis.call('GET', this.#prefix + name);
    if (typeof v !== 'string') return undefined;
    const i = v.lastIndexOf('|');
    return { owner: v.slice(0, i), epoch: Number(v.slice(i + 1)) };
  }
}
