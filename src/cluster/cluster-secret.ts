/**
 * The cluster secret (HMAC key of nonces, flow tokens and route tokens) when none is configured:
 * the first node to start writes a random one into Redis, every later node reads it, so that any
 * node accepts the in-dialog requests of calls another node set up.
 */
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from '../state/redis/redis-connection.js';

/** Reads or creates `tandem:<cluster>:secret`, retrying while Redis is unreachable (up to `waitMs`). */
export async function sharedClusterSecret(redis: RedisConnection, cluster: string, waitMs = 15_000): Promise<string> {
  const key = `tandem:${cluster}:secret`;
  const until = Date.now() + waitMs;
  let lastErr: unknown;
  for (;;) {
    try {
      await redis.call('SET', key, randomBytes(32).toString('base64url'), 'NX');
      const v = await redis.call('GET', key);
      if (typeof v === 'string' && v.length >= 16) return v;
      lastErr = new Error('cluster secret missing after SET NX');
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > until) {
      throw new Error(`cannot read the cluster secret from Redis (${lastErr instanceof Error ? lastErr.message : String(lastErr)}); set signalling.auth.secret to start without Redis`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
