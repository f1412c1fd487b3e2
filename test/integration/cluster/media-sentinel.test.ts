/**
 * Media replication through Redis Sentinel: the Redis primary is SIGKILLed while calls run; the
 * media holder keeps forwarding (nothing waits on Redis), keeps its lease, replication resumes on
 * the new primary (calls set up during and after the failover are mirrored), and a takeover
 * afterwards keeps every call.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { SentinelGroup, freePort, waitFor } from '../state/redis-harness.js';
import { randomRtpRange, sleep, type SpawnedMediaNode } from '../media/media-harness.js';
import { clusterStatus, setUpCall, spawnClusterNode } from '../media/media-cluster-harness.js';
import { RtpCalls } from '../media/rtp-calls.js';

const VIP = '127.0.0.31';
const cleanups: Array<() => Promise<unknown> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('media cluster on Redis Sentinel', () => {
  it('a Sentinel failover under running calls: media flows on, replication resumes, a later takeover keeps every call', async () => {
    const group = await SentinelGroup.start({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
    cleanups.push(() => group.stop());
    await group.waitHealthy(15_000);
    const ngPort = await freePort();
    const rtpPorts = randomRtpRange(400);
    const spec = (name: string) => ({ name, vip: VIP, ngPort, redisUrl: group.url, rtpPorts });
    const m1 = await spawnClusterNode(spec('s1'));
    cleanups.push(() => m1.stop());
    await waitFor('s1 to hold the VIP', async () => (await clusterStatus(m1))?.vips[0]?.held || undefined, 10_000);
    const m2 = await spawnClusterNode(spec('s2'));
    cleanups.push(() => m2.stop());
    const rtp = new RtpCalls(VIP);
    const ng = new NgClient({ host: VIP, port: ngPort, timeoutMs: 3000, retransmitIntervalMs: 250 });
    cleanups.push(() => rtp.close(), () => ng.close());
    for (let i = 0; i < 20; i++) await setUpCall(ng, rtp, i, `sn-${i}`);
    rtp.start(20);
    await waitFor('s2 to mirror 20 calls', async () => (await clusterStatus(m2))?.vips[0]?.foreign === 20 || undefined, 10_000);

    rtp.openWindow();
    await group.killPrimary();
    // During the failover (no Redis at all): ng still answers at once, media flows.
    const t0 = Date.now();
    for (let i = 20; i < 25; i++) await setUpCall(ng, rtp, i, `sn-${i}`);
    expect(Date.now() - t0).toBeLessThan(1000);
    await group.waitHealthy(20_000);
    for (let i = 25; i < 30; i++) await setUpCall(ng, rtp, i, `sn-${i}`);
    await waitFor('s2 to mirror all 30 calls', async () => (await clusterStatus(m2))?.vips[0]?.foreign === 30 || undefined, 15_000);
    const st1 = (await clusterStatus(m1))!.vips[0]!;
    expect(st1.held).toBe(true);
    expect(st1.own).toBe(30);
    expect(rtp.streams.slice(0, 20).every(([ab, ba]) => ab.maxGapMs < 200 && ba.maxGapMs < 200)).toBe(true);

    m1.proc.kill('SIGKILL');
    await waitFor('s2 to serve 30 calls', async () => {
      const v = (await clusterStatus(m2))?.vips[0];
      return (v?.held && v.own === 30) || undefined;
    }, 10_000);
    rtp.openWindow();
    await sleep(800);
    expect(rtp.all().every((s) => s.receivedInWindow > 10)).toBe(true);
  }, 90_000);
});
