/**
 * Media session replication under failures, with real `tandem media` processes and a real
 * redis-server: a standby cut off from Redis while calls change catches up from the index; Redis
 * restarted empty under running calls (the owner writes its calls back, the standby resyncs, the
 * calls survive a takeover after it); garbled and stale records are skipped and counted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { SingleRedis, freePort, respCommand, waitFor } from '../state/redis-harness.js';
import { randomRtpRange, sleep, type SpawnedMediaNode } from '../media/media-harness.js';
import { clusterStatus, leaseHolder, setUpCall, spawnClusterNode, type ClusterNodeSpec } from '../media/media-cluster-harness.js';
import { RtpCalls } from '../media/rtp-calls.js';
import { TcpProxy } from '../media/tcp-proxy.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  redis: SingleRedis;
  vip: string;
  ngPort: number;
  spec: (name: string, redisUrl?: string) => ClusterNodeSpec;
  ng: NgClient;
  rtp: RtpCalls;
}

async function setup(vip: string): Promise<Setup> {
  const redis = await SingleRedis.start();
  cleanups.push(() => redis.stop());
  const ngPort = await freePort();
  const rtpPorts = randomRtpRange(600);
  const ng = new NgClient({ host: vip, port: ngPort, timeoutMs: 3000, retransmitIntervalMs: 250 });
  cleanups.push(() => ng.close());
  const rtp = new RtpCalls(vip);
  cleanups.push(() => rtp.close());
  return { redis, vip, ngPort, ng, rtp, spec: (name, redisUrl) => ({ name, vip, ngPort, redisUrl: redisUrl ?? redis.url, rtpPorts }) };
}

async function node(spec: ClusterNodeSpec): Promise<SpawnedMediaNode> {
  const n = await spawnClusterNode(spec);
  cleanups.push(async () => void (await n.stop()));
  return n;
}

const foreign = async (n: SpawnedMediaNode): Promise<number | undefined> => (await clusterStatus(n))?.vips[0]?.foreign;

describe('media session replication', () => {
  it('a standby cut off from Redis while calls come and go has every call after it reconnects (replay from the index)', async () => {
    const s = await setup('127.0.0.21');
    const m1 = await node(s.spec('m1'));
    await waitFor('m1 to hold the VIP', async () => (await leaseHolder(s.redis.port, s.vip)) === 'm1' || undefined, 5000);
    const proxy = await TcpProxy.start(s.redis.port);
    cleanups.push(() => proxy.close());
    const m2 = await node(s.spec('m2', proxy.url));
    for (let i = 0; i < 40; i++) await setUpCall(s.ng, s.rtp, i, `cut-${i}`);
    await waitFor('m2 to mirror 40 calls', async () => (await foreign(m2)) === 40 || undefined, 5000);

    await proxy.cut();
    // While m2 hears nothing: 40 new calls, 10 old ones deleted.
    for (let i = 40; i < 80; i++) await setUpCall(s.ng, s.rtp, i, `cut-${i}`);
    for (let i = 0; i < 10; i++) expect((await s.ng.delete({ callId: `cut-${i}`, fromTag: `a-cut-${i}` })).ok).toBe(true);
    await sleep(300);
    expect(await foreign(m2)).toBe(40);
    await proxy.restore();
    await waitFor('m2 to catch up to 70 calls', async () => (await foreign(m2)) === 70 || undefined, 10_000);
    await waitFor('m2 to count a resync', async () => ((await clusterStatus(m2))?.redis.resyncs ?? 0) >= 1 || undefined, 5000);

    // And takes exactly those over, with media, when m1 dies.
    s.rtp.start(20);
    await waitFor('RTP on every live call', async () => s.rtp.streams.slice(10).every((p) => p[0].received > 3 && p[1].received > 3) || undefined, 5000);
    m1.proc.kill('SIGKILL');
    await waitFor('m2 to serve 70 calls', async () => {
      const v = (await clusterStatus(m2))?.vips[0];
      return (v?.held && v.own === 70) || undefined;
    }, 5000);
    s.rtp.openWindow();
    await sleep(500);
    expect(s.rtp.streams.slice(10).every((p) => p[0].receivedInWindow > 5 && p[1].receivedInWindow > 5)).toBe(true);
    expect((await s.ng.query({ callId: 'cut-5' })).ok).toBe(false);
    expect((await s.ng.query({ callId: 'cut-79' })).ok).toBe(true);
  }, 60_000);

  it('Redis restarted empty while calls run: no call lost, replication resumes, a takeover afterwards keeps every call', async () => {
    const s = await setup('127.0.0.22');
    const m1 = await node(s.spec('m1'));
    await waitFor('m1 to hold the VIP', async () => (await leaseHolder(s.redis.port, s.vip)) === 'm1' || undefined, 5000);
    const m2 = await node(s.spec('m2'));
    for (let i = 0; i < 30; i++) await setUpCall(s.ng, s.rtp, i, `rr-${i}`);
    s.rtp.start(20);
    await waitFor('m2 to mirror 30 calls', async () => (await foreign(m2)) === 30 || undefined, 5000);

    await s.redis.restart();
    // Calls set up while Redis is back but before anyone resynced, and after.
    for (let i = 30; i < 40; i++) await setUpCall(s.ng, s.rtp, i, `rr-${i}`);
    // The holder writes its calls back into the emptied Redis; the index holds all 40 again.
    await waitFor('40 calls in the index again', async () => (await respCommand(s.redis.port, ['ZCARD', `tandem:tandem:msess-index:${s.vip}`])) === 40 || undefined, 10_000);
    // The lease key went with Redis' data: until the holder renews it, the standby may take it for
    // a moment (and give it back when it cannot bind the VIP's ports). The holder is the node that
    // serves, with the lease, twice in a row.
    const servingHolder = async (): Promise<string | undefined> => {
      const h = await leaseHolder(s.redis.port, s.vip);
      const n = h === 'm1' ? m1 : h === 'm2' ? m2 : undefined;
      return n && (await clusterStatus(n))?.vips[0]?.held ? h : undefined;
    };
    const holder = await waitFor('a stable holder', async () => {
      const h1 = await servingHolder();
      await sleep(300);
      return h1 && h1 === (await servingHolder()) ? h1 : undefined;
    }, 10_000);
    // The standby waits one lease TTL after Redis returns before contesting the lease, so the
    // holder's renewal gets it back and the calls do not move for nothing.
    expect(holder).toBe('m1');
    expect((await clusterStatus(m2))?.vips[0]?.lastTakeover).toBeUndefined();
    const [live, standby] = holder === 'm1' ? [m1, m2] : [m2, m1];
    await waitFor('the standby to mirror 40 calls', async () => (await foreign(standby)) === 40 || undefined, 10_000).catch(async (e) => {
      console.log(holder, JSON.stringify(await clusterStatus(m1)), JSON.stringify(await clusterStatus(m2)));
      throw e;
    });
    expect((await clusterStatus(live))?.vips[0]?.own).toBe(40);

    // Every call still flows, and still does after the holder dies.
    live.proc.kill('SIGKILL');
    await waitFor('the standby to serve 40 calls', async () => {
      const v = (await clusterStatus(standby))?.vips[0];
      return (v?.held && v.own === 40) || undefined;
    }, 5000).catch(async (e) => {
      console.log(holder, JSON.stringify(await clusterStatus(standby)), standby.stderr().slice(-3000));
      throw e;
    });
    s.rtp.openWindow();
    await sleep(500);
    const streams = s.rtp.all();
    expect(streams).toHaveLength(80);
    expect(streams.every((x) => x.receivedInWindow > 5)).toBe(true);
    // Redis' epoch count restarted with it: the new holder still writes its calls (above the
    // epochs of the records written back), so replication goes on.
    const standbyName = holder === 'm1' ? 'm2' : 'm1';
    await waitFor('the records to name the new holder', async () => (await respCommand(s.redis.port, ['HGET', `tandem:tandem:msess:${s.vip}:rr-0`, '_owner'])) === standbyName || undefined, 5000);
  }, 60_000);

  it('a lone node SIGKILLed and restarted under the same name takes its own calls back from Redis', async () => {
    const s = await setup('127.0.0.28');
    const m1 = await node(s.spec('m1'));
    await waitFor('m1 to hold the VIP', async () => (await leaseHolder(s.redis.port, s.vip)) === 'm1' || undefined, 5000);
    for (let i = 0; i < 10; i++) await setUpCall(s.ng, s.rtp, i, `own-${i}`);
    s.rtp.start(20);
    await waitFor('RTP on every call', async () => s.rtp.all().every((x) => x.received > 5) || undefined, 5000);
    await sleep(300);
    m1.proc.kill('SIGKILL');
    const again = await node(s.spec('m1'));
    await waitFor('m1 to serve its 10 calls again', async () => {
      const v = (await clusterStatus(again))?.vips[0];
      return (v?.held && v.own === 10) || undefined;
    }, 8000);
    s.rtp.openWindow();
    await sleep(500);
    expect(s.rtp.all().every((x) => x.receivedInWindow > 5)).toBe(true);
  }, 60_000);

  it('SIGTERM of the holder hands its calls over at once (lease given back, no TTL to wait)', async () => {
    const s = await setup('127.0.0.29');
    const m1 = await node(s.spec('m1'));
    await waitFor('m1 to hold the VIP', async () => (await leaseHolder(s.redis.port, s.vip)) === 'm1' || undefined, 5000);
    const m2 = await node(s.spec('m2'));
    for (let i = 0; i < 20; i++) await setUpCall(s.ng, s.rtp, i, `term-${i}`);
    s.rtp.start(20);
    await waitFor('m2 to mirror 20 calls', async () => (await foreign(m2)) === 20 || undefined, 5000);
    await waitFor('RTP on every call', async () => s.rtp.all().every((x) => x.received > 5) || undefined, 5000);
    s.rtp.openWindow();
    expect(await m1.stop()).toBe(0);
    await waitFor('m2 to serve 20 calls', async () => {
      const v = (await clusterStatus(m2))?.vips[0];
      return (v?.held && v.own === 20) || undefined;
    }, 5000);
    await sleep(500);
    const gaps = s.rtp.all().map((x) => x.maxGapMs);
    console.log(`graceful handover (SIGTERM): per-stream worst gap max ${Math.max(...gaps)} ms`);
    expect(s.rtp.all().every((x) => x.receivedInWindow > 5)).toBe(true);
    expect(Math.max(...gaps)).toBeLessThan(400);
  }, 60_000);

  it('garbled and stale records in Redis or on the channel are skipped and counted, never a crash', async () => {
    const s = await setup('127.0.0.23');
    const m1 = await node(s.spec('m1'));
    await waitFor('m1 to hold the VIP', async () => (await leaseHolder(s.redis.port, s.vip)) === 'm1' || undefined, 5000);
    for (let i = 0; i < 5; i++) await setUpCall(s.ng, s.rtp, i, `ok-${i}`);
    await sleep(200);
    // Bad records in the index: not JSON, another schema, missing fields, a record naming another
    // call, a hash with no record at all, ports out of range.
    const index = `tandem:tandem:msess-index:${s.vip}`;
    const valid = String(await respCommand(s.redis.port, ['HGET', `tandem:tandem:msess:${s.vip}:ok-0`, 'rec']));
    const bad: Record<string, string | undefined> = {
      'bad-json': '{not json',
      'bad-schema': JSON.stringify({ ...JSON.parse(valid), schema: 99, callId: 'bad-schema' }),
      'bad-fields': JSON.stringify({ schema: 1, callId: 'bad-fields' }),
      'bad-callid': valid,
      'bad-empty': undefined,
      'bad-ports': valid.replace(/"rtpPort":\d+/, '"rtpPort":70000').replace('"callId":"ok-0"', '"callId":"bad-ports"'),
    };
    for (const [id, rec] of Object.entries(bad)) {
      const key = `tandem:tandem:msess:${s.vip}:${id}`;
      await respCommand(s.redis.port, ['HSET', key, '_v', Date.now(), '_owner', 'm1', '_epoch', 1, ...(rec !== undefined ? ['rec', rec] : ['x', '1'])]);
      await respCommand(s.redis.port, ['ZADD', index, Date.now(), id]);
    }
    // A version field that is not a number: read as no record.
    await respCommand(s.redis.port, ['HSET', `tandem:tandem:msess:${s.vip}:bad-version`, '_v', 'abc', 'rec', valid]);
    await respCommand(s.redis.port, ['ZADD', index, Date.now(), 'bad-version']);

    const m2 = await node(s.spec('m2'));
    await waitFor('m2 to mirror the 5 good calls', async () => (await foreign(m2)) === 5 || undefined, 5000);
    // Each of the six bad records is skipped and counted by the replay at start.
    await waitFor('m2 to count the bad records', async () => ((await clusterStatus(m2))?.replication.garbled ?? 0) >= 6 || undefined, 5000);
    const before = (await clusterStatus(m2))!.replication.garbled;
    expect(await foreign(m2)).toBe(5);

    // Garbage on the channel: not JSON, an envelope without fields, a good envelope with a bad
    // record, and a stale (older) version of a good call, which must not replace the newer one.
    const channel = 'tandem:tandem:msess';
    await respCommand(s.redis.port, ['PUBLISH', channel, '\u0000\u00ff garbage']);
    await respCommand(s.redis.port, ['PUBLISH', channel, JSON.stringify({ vip: s.vip })]);
    await respCommand(s.redis.port, ['PUBLISH', channel, JSON.stringify({ vip: s.vip, callId: 'ok-1', version: Date.now() + 10_000, owner: 'm9', epoch: 99, rec: '[]' })]);
    await respCommand(s.redis.port, ['PUBLISH', channel, JSON.stringify({ vip: s.vip, callId: 'ok-2', version: 1, owner: 'm1', epoch: 1 })]);
    await waitFor('m2 to count the bad messages', async () => ((await clusterStatus(m2))?.replication.garbled ?? 0) >= before + 3 || undefined, 5000);
    expect(await foreign(m2)).toBe(5);
    expect(m2.proc.exitCode).toBeNull();

    // m2 still takes the 5 good calls over.
    s.rtp.start(20);
    await waitFor('RTP on every call', async () => s.rtp.all().every((x) => x.received > 3) || undefined, 5000);
    m1.proc.kill('SIGKILL');
    await waitFor('m2 to serve the 5 calls', async () => {
      const v = (await clusterStatus(m2))?.vips[0];
      return (v?.held && v.own === 5) || undefined;
    }, 5000);
    s.rtp.openWindow();
    await sleep(400);
    expect(s.rtp.all().every((x) => x.receivedInWindow > 5)).toBe(true);
  }, 60_000);
});
