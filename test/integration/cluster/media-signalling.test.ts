/**
 * The signalling side of a media takeover: `tandem start --media-ng <VIP>:<port>` (no change for
 * HA) sets calls up through two `tandem media` nodes sharing the VIP; the media holder is
 * SIGKILLed mid-call; the phones' RTP keeps flowing through the standby, and every BYE ends its
 * call's media on the node that took it over (its ng `delete`, sent to the VIP).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { SingleRedis, freePort, respCommand, waitFor } from '../state/redis-harness.js';
import { randomRtpRange, sdpMedia, sleep, type SpawnedMediaNode } from '../media/media-harness.js';
import { clusterStatus, leaseHolder, spawnClusterNode } from '../media/media-cluster-harness.js';
import { RtpCalls, quantile } from '../media/rtp-calls.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import type { SipRequest, SipResponse } from '../../../src/sip/message/sip-message.js';

const DOMAIN = 'media.test';
const VIP = '127.0.0.24';
const CALLS = 100;
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\n');
const sdp = (port: number): string => `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;

let redis: SingleRedis;
let ngPort: number;
let sipPort: number;
const media = new Map<string, SpawnedMediaNode>();
let tandem: TandemProcess;
const uas: TestUa[] = [];
const rtp = new RtpCalls(VIP);

beforeAll(async () => {
  redis = await SingleRedis.start();
  ngPort = await freePort();
  sipPort = await freePort();
  const rtpPorts = randomRtpRange(CALLS * 4 + 100);
  const spec = (name: string) => ({ name, vip: VIP, ngPort, redisUrl: redis.url, rtpPorts, leasePollMs: 25 });
  media.set('m1', await spawnClusterNode(spec('m1')));
  await waitFor('m1 to hold the VIP', async () => (await leaseHolder(redis.port, VIP)) === 'm1' || undefined, 5000);
  media.set('m2', await spawnClusterNode(spec('m2')));
  tandem = await startTandem(['--sip', `udp:127.0.0.1:${sipPort}`, '--domain', DOMAIN, '--users', users, '--media-ng', `${VIP}:${ngPort}`]);
}, 60_000);

afterAll(async () => {
  rtp.close();
  for (const u of uas) u.close();
  await tandem?.stop('SIGKILL');
  for (const m of media.values()) await m.stop();
  await redis?.stop();
});

describe('tandem start --media-ng <VIP>: calls survive the death of the media node holding the VIP', () => {
  it(`${CALLS} calls: RTP continues through the standby, every BYE deletes its media there`, async () => {
    const bob = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: sipPort }, user: 'bob', password: 'bob-secret', domain: DOMAIN });
    const alice = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: sipPort }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    uas.push(bob, alice);
    expect((await bob.register()).status).toBe(200);
    // bob answers each INVITE from the socket of that call, and learns the relay port it must send to.
    const byCallId = new Map<string, number>();
    const toB = new Map<string, number>();
    void (async () => {
      for (;;) {
        let req: SipRequest;
        try {
          req = (await bob.waitFor((m) => m.isRequest() && ['INVITE', 'BYE'].includes((m as SipRequest).method), 60_000)) as SipRequest;
        } catch {
          return;
        }
        const i = byCallId.get(req.callId);
        if (req.method === 'INVITE' && i !== undefined) {
          toB.set(req.callId, sdpMedia(req.body.toString('latin1')).port);
          bob.send(bob.response(req, 200, 'OK', { toTag: `b${i}`, body: sdp(rtp.calls[i]!.bPort) }));
        } else if (req.method === 'BYE') bob.send(bob.response(req, 200, 'OK'));
      }
    })();

    const calls: TestCall[] = [];
    for (let i = 0; i < CALLS; i++) {
      const c = await rtp.add();
      const call = new TestCall(alice, 'bob');
      byCallId.set(call.callId, i);
      let res: SipResponse = await call.invite({ sdp: sdp(c.aPort) });
      if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200);
      expect(res.status).toBe(200);
      call.learn(res);
      call.ack2xx();
      const answer = sdpMedia(res.body.toString('latin1'));
      expect(answer.address).toBe(VIP);
      rtp.connect(i, answer.port, toB.get(call.callId)!);
      calls.push(call);
    }
    rtp.start(20);
    await waitFor('RTP both ways on every call', async () => rtp.all().every((s) => s.received > 5) || undefined, 10_000);
    await waitFor('m2 to mirror every call', async () => (await clusterStatus(media.get('m2')!))?.vips[0]?.foreign === CALLS || undefined, 10_000);

    rtp.openWindow();
    media.get('m1')!.proc.kill('SIGKILL');
    await waitFor('m2 to serve the calls', async () => {
      const v = (await clusterStatus(media.get('m2')!))?.vips[0];
      return (v?.held && v.own === CALLS) || undefined;
    }, 5000);
    await sleep(1000);
    const streams = rtp.all();
    const gaps = streams.map((s) => s.maxGapMs);
    console.log(`signalling-driven takeover: per-stream worst gap p50 ${quantile(gaps, 0.5)} / max ${Math.max(...gaps)} ms over ${streams.length} streams`);
    expect(streams.every((s) => Date.now() - s.lastArrivalMs < 200 && s.receivedInWindow > 20)).toBe(true);

    // Every BYE is answered and deletes the call's media on m2, which took it over.
    rtp.stop();
    for (const c of calls) expect((await c.bye()).status).toBe(200);
    await waitFor('m2 to end every call', async () => (await clusterStatus(media.get('m2')!))?.vips[0]?.own === 0 || undefined, 5000);
    const ng = new NgClient({ host: VIP, port: ngPort, timeoutMs: 2000 });
    try {
      const st = await ng.statistics();
      const total = (st.ok ? (st.value['statistics'] as { totalstatistics: Record<string, number> }).totalstatistics : {}) as Record<string, number>;
      expect(total['regularterminatedsessions']).toBe(CALLS);
      expect(total['portsinuse']).toBe(0);
    } finally {
      ng.close();
    }
    await waitFor('the index to empty', async () => (await respCommand(redis.port, ['ZCARD', `tandem:tandem:msess-index:${VIP}`])) === 0 || undefined, 5000);
  }, 90_000);
});
