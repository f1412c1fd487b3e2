/**
 * Active/active: two `tandem media` nodes, each serving its own VIP and standing by for the
 * other's (`--vip own --standby-vip other`). Calls run on both VIPs; each node mirrors the other's
 * calls (sessionsforeign); when one is SIGKILLed the survivor serves both VIPs and every call's
 * RTP continues.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { SingleRedis, freePort, waitFor } from '../state/redis-harness.js';
import { randomRtpRange, sleep, type SpawnedMediaNode } from '../media/media-harness.js';
import { clusterStatus, leaseHolder, setUpCall, spawnClusterNode } from '../media/media-cluster-harness.js';
import { RtpCalls } from '../media/rtp-calls.js';

const VIP1 = '127.0.0.26';
const VIP2 = '127.0.0.27';
const CALLS = 20;
const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('media cluster active/active', () => {
  it('each node serves its own VIP and mirrors the other\'s; the survivor of a SIGKILL serves both', async () => {
    const redis = await SingleRedis.start();
    cleanups.push(() => redis.stop());
    const ngPort = await freePort();
    const rtpPorts = randomRtpRange(CALLS * 4 + 100);
    const nodes: Record<string, SpawnedMediaNode> = {};
    // Both start together: the grace before contesting a standby VIP lets each take its own.
    const [n1, n2] = await Promise.all([
      spawnClusterNode({ name: 'm1', vip: VIP1, ngPort, redisUrl: redis.url, rtpPorts, extra: ['--standby-vip', VIP2] }),
      spawnClusterNode({ name: 'm2', vip: VIP2, ngPort, redisUrl: redis.url, rtpPorts, extra: ['--standby-vip', VIP1] }),
    ]);
    nodes['m1'] = n1;
    nodes['m2'] = n2;
    for (const n of [n1, n2]) cleanups.push(() => n.stop());
    await waitFor('each node to hold its own VIP', async () => ((await leaseHolder(redis.port, VIP1)) === 'm1' && (await leaseHolder(redis.port, VIP2)) === 'm2') || undefined, 5000);
    await sleep(2000); // past the grace: each now contests the other's VIP
    expect(await leaseHolder(redis.port, VIP1)).toBe('m1');
    expect(await leaseHolder(redis.port, VIP2)).toBe('m2');

    const rtp1 = new RtpCalls(VIP1);
    const rtp2 = new RtpCalls(VIP2);
    const ng1 = new NgClient({ host: VIP1, port: ngPort, timeoutMs: 3000, retransmitIntervalMs: 250 });
    const ng2 = new NgClient({ host: VIP2, port: ngPort, timeoutMs: 3000, retransmitIntervalMs: 250 });
    cleanups.push(() => rtp1.close(), () => rtp2.close(), () => ng1.close(), () => ng2.close());
    for (let i = 0; i < CALLS; i++) {
      await setUpCall(ng1, rtp1, i, `one-${i}`);
      await setUpCall(ng2, rtp2, i, `two-${i}`);
    }
    rtp1.start(20);
    rtp2.start(20);
    await waitFor('RTP on every call of both VIPs', async () => [...rtp1.all(), ...rtp2.all()].every((s) => s.received > 5) || undefined, 5000);
    // ng statistics on each VIP: own calls, and the other node's as foreign.
    await waitFor('each node to mirror the other\'s calls', async () => {
      const s1 = await ng1.statistics();
      const cur = s1.ok ? (s1.value['statistics'] as { currentstatistics: Record<string, number> }).currentstatistics : undefined;
      return (cur?.['sessionsown'] === CALLS && cur['sessionsforeign'] === CALLS) || undefined;
    }, 5000);
    const list = await ng2.list(100);
    expect(list.ok && (list.value['calls'] as string[]).length).toBe(2 * CALLS);

    n1.proc.kill('SIGKILL');
    await waitFor('m2 to serve both VIPs', async () => {
      const st = await clusterStatus(n2);
      return (st?.vips.every((v) => v.held) && st.vips.reduce((n, v) => n + v.own, 0) === 2 * CALLS) || undefined;
    }, 5000);
    rtp1.openWindow();
    rtp2.openWindow();
    await sleep(1000);
    expect([...rtp1.all(), ...rtp2.all()].every((s) => s.receivedInWindow > 10)).toBe(true);
    expect((await ng1.query({ callId: 'one-3' })).ok).toBe(true);
  }, 60_000);
});
