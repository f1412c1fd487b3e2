/**
 * What the operations API says about Redis on a real server: under Sentinel, the mode, the
 * Sentinels, the primary and its replica with its lag, then the failover on the timeline when the
 * primary is SIGKILLed; on a single Redis, redis-down and redis-up when it is killed and restarted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterSnapshot } from '../../../src/admin/cluster-monitor.js';
import type { ClusterEvent } from '../../../src/admin/event-log.js';
import { startTandem, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { SentinelGroup, SingleRedis, waitFor } from '../state/redis-harness.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(url: string): Promise<{ t: TandemProcess; admin: string }> {
  const t = await startTandem(['--node-id', 'r1', '--sip', 'udp:127.0.0.1:0', '--no-auth', '--no-media', '--redis', url, '--admin', '127.0.0.1:0']);
  cleanups.push(() => t.stop('SIGKILL'));
  return { t, admin: /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''))![1]! };
}

async function events(admin: string): Promise<ClusterEvent[]> {
  return ((await (await fetch(`${admin}/api/events?limit=100`)).json()) as { events: ClusterEvent[] }).events;
}

describe('Redis in the operations API', () => {
  it('Sentinel: mode, Sentinels, primary, replica lag; the primary SIGKILLed shows as a failover on the timeline', async () => {
    const group = await SentinelGroup.start({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
    cleanups.push(() => group.stop());
    const first = await group.waitHealthy(15_000);
    const { admin } = await node(group.url);
    const snap = await waitFor('replicas known', async () => {
      const s = (await (await fetch(`${admin}/api/cluster`)).json()) as ClusterSnapshot;
      return s.redis.replicas.length === 1 ? s : undefined;
    }, 10_000, 200);
    expect(snap.redis).toMatchObject({ configured: true, mode: 'sentinel', connected: true, address: `127.0.0.1:${first}`, role: 'master' });
    expect(snap.redis.sentinels).toEqual(group.sentinelPorts.map((p) => `127.0.0.1:${p}`));
    expect(snap.redis.replicas[0]!.state).toBe('online');
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/^tandem_redis_replica_lag_seconds\{replica="127\.0\.0\.1:\d+"\} \d+$/m);

    const killedAt = Date.now();
    await group.killPrimary();
    await waitFor('Sentinel to name a new primary', async () => group.switchedAt(killedAt), 30_000, 100);
    const failover = await waitFor('redis-failover event', async () => (await events(admin)).find((e) => e.kind === 'redis-failover'), 15_000, 200);
    expect(failover.text).toMatch(new RegExp(`^Redis primary moved from 127\\.0\\.0\\.1:${first} to 127\\.0\\.0\\.1:\\d+$`));
    const after = (await (await fetch(`${admin}/api/cluster`)).json()) as ClusterSnapshot;
    expect(after.redis.connected).toBe(true);
    expect(after.redis.address).not.toBe(`127.0.0.1:${first}`);
  }, 75_000);

  it('single Redis killed and restarted: redis-down, then redis-up; the API answers throughout', async () => {
    const redis = await SingleRedis.start();
    cleanups.push(() => redis.stop());
    const { admin } = await node(redis.url);
    await waitFor('connected', async () => ((await (await fetch(`${admin}/api/cluster`)).json()) as ClusterSnapshot).redis.connected || undefined, 10_000, 100);
    await redis.kill();
    await waitFor('redis-down', async () => (await events(admin)).some((e) => e.kind === 'redis-down') || undefined, 10_000, 100);
    const down = (await (await fetch(`${admin}/api/cluster`)).json()) as ClusterSnapshot;
    expect(down.redis.connected).toBe(false);
    expect(down.nodes.find((n) => n.self)?.live).toBe(true);
    // Listing needs Redis: 503, not a hang.
    expect((await fetch(`${admin}/api/dialogs`)).status).toBe(503);
    await redis.restart();
    await waitFor('redis-up', async () => (await events(admin)).some((e) => e.kind === 'redis-up') || undefined, 15_000, 100);
  }, 45_000);
});
