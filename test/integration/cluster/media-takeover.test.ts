/**
 * Published experiment B on one machine: two `tandem media` nodes share a VIP through a lease in
 * a real Redis; calls are set up on the VIP by independent ng clients (npm rtpengine-client and
 * Tandem's NgClient) and carry RTP both ways on real sockets; the holder is SIGKILLed; the
 * standby takes the VIP with every call at the same ports and forwards to the latched addresses.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { SingleRedis, freePort, respCommand, waitFor } from '../state/redis-harness.js';
import { audioSdp, randomRtpRange, sdpMedia, sleep, spawnMediaNode, type SpawnedMediaNode } from '../media/media-harness.js';
import { RtpCalls, quantile } from '../media/rtp-calls.js';

const require = createRequire(import.meta.url);
// rtpengine-client is CommonJS without types.
const { Client } = require('rtpengine-client') as { Client: new (opts: { timeout?: number }) => RtpengineClient };
type Reply = Record<string, unknown>;
interface RtpengineClient {
  offer(port: number, host: string, opts: Reply): Promise<Reply>;
  answer(port: number, host: string, opts: Reply): Promise<Reply>;
  close(): void;
}

const VIP = '127.0.0.20';
const CALLS = 200;
const LEASE_TTL_MS = 600;
const LEASE_POLL_MS = 25;

let redis: SingleRedis;
let ngPort: number;
let range: string;
const nodes = new Map<string, SpawnedMediaNode>();
let rtpengine: RtpengineClient;
let ng: NgClient;
const rtp = new RtpCalls(VIP);

async function startNode(name: string): Promise<SpawnedMediaNode> {
  const n = await spawnMediaNode([
    '--node-id', name, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url,
    '--ng', `${VIP}:${ngPort}`, '--interface', VIP, '--rtp-ports', range, '--workers', '1',
    '--lease-ttl', String(LEASE_TTL_MS), '--lease-poll', String(LEASE_POLL_MS), '--admin', '127.0.0.1:0',
  ]);
  nodes.set(name, n);
  return n;
}

interface VipStatus { vip: string; held: boolean; epoch: number; own: number; foreign: number; takenOver: number; lastTakeover?: { tookMs: number; adopted: number; failed: number } }
async function status(n: SpawnedMediaNode): Promise<{ vips: VipStatus[]; replication: Record<string, number> } | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${n.adminPort}/media/cluster`);
    return (await r.json()) as { vips: VipStatus[]; replication: Record<string, number> };
  } catch {
    return undefined;
  }
}

async function leaseHolder(): Promise<string | undefined> {
  const v = await respCommand(redis.port, ['GET', `tandem:tandem:lease:media-${VIP}`]);
  return typeof v === 'string' ? v.split('|')[0] : undefined;
}

beforeAll(async () => {
  redis = await SingleRedis.start();
  ngPort = await freePort();
  range = randomRtpRange(CALLS * 4 + 200);
  await startNode('media1');
  await waitFor('media1 to hold the VIP', async () => (await leaseHolder()) === 'media1' || undefined, 5000);
  await startNode('media2');
  rtpengine = new Client({ timeout: 3000 });
  ng = new NgClient({ host: VIP, port: ngPort, timeoutMs: 3000, retransmitIntervalMs: 250 });
}, 60_000);

afterAll(async () => {
  rtp.close();
  rtpengine?.close();
  ng?.close();
  for (const n of nodes.values()) await n.stop();
  await redis?.stop();
});

describe('media cluster: hot standby takes over the calls of a SIGKILLed relay', () => {
  it(`${CALLS} calls with RTP both ways keep flowing through the standby after the SIGKILL of the holder`, async () => {
    // Set-up on the VIP: the first half by rtpengine-client, the second by NgClient.
    for (let i = 0; i < CALLS; i++) {
      const c = await rtp.add();
      const callId = `takeover-${i}`;
      let offerSdp: string;
      let answerSdp: string;
      if (i < CALLS / 2) {
        const o = await rtpengine.offer(ngPort, VIP, { 'call-id': callId, 'from-tag': `a${i}`, sdp: audioSdp(c.aPort), flags: ['trust-address'] });
        expect(o['result']).toBe('ok');
        const a = await rtpengine.answer(ngPort, VIP, { 'call-id': callId, 'from-tag': `a${i}`, 'to-tag': `b${i}`, sdp: audioSdp(c.bPort), flags: ['trust-address'] });
        expect(a['result']).toBe('ok');
        offerSdp = o['sdp'] as string;
        answerSdp = a['sdp'] as string;
      } else {
        const o = await ng.offer({ callId, fromTag: `a${i}`, sdp: audioSdp(c.aPort), flags: ['trust-address'] });
        expect(o.ok).toBe(true);
        const a = await ng.answer({ callId, fromTag: `a${i}`, toTag: `b${i}`, sdp: audioSdp(c.bPort), flags: ['trust-address'] });
        expect(a.ok).toBe(true);
        offerSdp = o.ok ? o.value.sdp : '';
        answerSdp = a.ok ? a.value.sdp : '';
      }
      expect(sdpMedia(offerSdp).address).toBe(VIP);
      rtp.connect(i, sdpMedia(answerSdp).port, sdpMedia(offerSdp).port);
    }
    rtp.start(20);
    // Media flows both ways through media1; media2 mirrors every call with its latched addresses
    // and a counters snapshot (every 2 s).
    await waitFor('RTP both ways on every call', async () => rtp.all().every((s) => s.received > 5) || undefined, 10_000);
    await waitFor('media2 to mirror every call', async () => (await status(nodes.get('media2')!))?.vips[0]?.foreign === CALLS || undefined, 10_000);
    await sleep(2500);
    const before = await ng.query({ callId: 'takeover-0' });
    expect(before.ok).toBe(true);
    const packetsBefore = (before.ok ? (before.value['totals'] as { RTP: { packets: number } }).RTP.packets : 0);
    expect(packetsBefore).toBeGreaterThan(100);

    rtp.openWindow();
    const killedAt = Date.now();
    nodes.get('media1')!.proc.kill('SIGKILL');
    const movedIn = await waitFor('media2 to hold the VIP', async () => ((await leaseHolder()) === 'media2' ? Date.now() - killedAt : undefined), 5000, 5);
    const st = await waitFor('media2 to serve the calls', async () => {
      const s = await status(nodes.get('media2')!);
      return s?.vips[0]?.held && s.vips[0].own === CALLS ? s : undefined;
    }, 5000);
    // Let media flow through media2 for a while.
    await sleep(1500);
    const streams = rtp.all();
    const gaps = streams.map((s) => s.maxGapMs);
    const dead = streams.filter((s) => Date.now() - s.lastArrivalMs > 200).length;
    const lostPackets = streams.reduce((n, s) => n + s.seqLost, 0);
    const summary = `takeover: lease moved ${movedIn} ms after the SIGKILL; calls bound in ${JSON.stringify(st.vips[0]!.lastTakeover)} ms; per-stream worst gap p50 ${quantile(gaps, 0.5)} / p99 ${quantile(gaps, 0.99)} / max ${Math.max(...gaps)} ms over ${streams.length} streams; streams without media now ${dead}; packets lost ${lostPackets}`;
    console.log(summary);
    expect(st.vips[0]!.lastTakeover?.failed).toBe(0);
    expect(st.vips[0]!.lastTakeover?.adopted).toBe(CALLS);
    // Every call's RTP continues, both ways, at the same relay ports, to the latched addresses.
    expect(dead).toBe(0);
    for (const s of streams) expect(s.receivedInWindow).toBeGreaterThan(20);
    expect(streams.every((s) => s.foreignSsrc === 0)).toBe(true);
    // The goal is a worst gap under lease TTL + 100 ms (printed above: met on a quiet
    // machine, see src/media/README.md); asserted with room for a 2-core box other tests load.
    expect(Math.max(...gaps)).toBeLessThan(LEASE_TTL_MS + 1000);

    // ng on the VIP answers for the taken-over calls; counters continue from the snapshot.
    const after = await ng.query({ callId: 'takeover-0' });
    expect(after.ok).toBe(true);
    const packetsAfter = after.ok ? (after.value['totals'] as { RTP: { packets: number } }).RTP.packets : 0;
    // Counters continue from the last snapshot (every 2 s): what the dead node counted after it is
    // lost, at most 2 s of this call's 2 x 50 packets/s.
    expect(packetsAfter).toBeGreaterThan(packetsBefore - 200);
    expect(packetsAfter).toBeGreaterThan(100);
    const stats = await ng.statistics();
    expect(stats.ok).toBe(true);
    const cur = (stats.ok ? (stats.value['statistics'] as { currentstatistics: Record<string, number> }).currentstatistics : {}) as Record<string, number>;
    expect(cur['sessionsown']).toBe(CALLS);
    expect(cur['sessionstakenover']).toBe(CALLS);
    expect(cur['sessionsforeign']).toBe(0);

    // A re-offer (re-INVITE) of a taken-over call is served at its ports.
    const c0 = rtp.calls[0]!;
    const re = await ng.offer({ callId: 'takeover-0', fromTag: 'a0', toTag: 'b0', sdp: audioSdp(c0.aPort), flags: ['trust-address'] });
    expect(re.ok).toBe(true);
    expect(sdpMedia(re.ok ? re.value.sdp : '').port).toBe(rtp.streams[0]![1].toPort);

    expect((stats.ok ? (stats.value['statistics'] as { totalstatistics: Record<string, number> }).totalstatistics : {})['portsinuse']).toBe(CALLS * 4);

    // The old node comes back as a standby: it resyncs and takes nothing back.
    await startNode('media1');
    await waitFor('media1 to mirror the calls', async () => (await status(nodes.get('media1')!))?.vips[0]?.foreign === CALLS || undefined, 10_000);
    expect(await leaseHolder()).toBe('media2');
    expect((await status(nodes.get('media1')!))?.vips[0]?.held).toBe(false);

    // Fail-back: media2 dies too; media1 takes every call back, counters continue from media2's
    // snapshot (taken every 2 s), the ports in use are exactly the calls'.
    await sleep(2500);
    rtp.openWindow();
    nodes.get('media2')!.proc.kill('SIGKILL');
    await waitFor('media1 to serve the calls again', async () => {
      const s1 = await status(nodes.get('media1')!);
      return (s1?.vips[0]?.held && s1.vips[0].own === CALLS) || undefined;
    }, 5000);
    await sleep(1000);
    const back = rtp.all();
    console.log(`fail-back: per-stream worst gap max ${Math.max(...back.map((x) => x.maxGapMs))} ms; streams without media ${back.filter((x) => Date.now() - x.lastArrivalMs > 200).length}`);
    expect(back.every((x) => Date.now() - x.lastArrivalMs < 200 && x.receivedInWindow > 20)).toBe(true);
    const again = await ng.query({ callId: 'takeover-0' });
    expect(again.ok).toBe(true);
    expect(again.ok ? (again.value['totals'] as { RTP: { packets: number } }).RTP.packets : 0).toBeGreaterThan(packetsAfter);
    const stats2 = await ng.statistics();
    const total2 = (stats2.ok ? (stats2.value['statistics'] as { totalstatistics: Record<string, number> }).totalstatistics : {}) as Record<string, number>;
    expect(total2['portsinuse']).toBe(CALLS * 4);
    expect(total2['takenoversessions']).toBe(CALLS);

    // delete from the controller returns each call's statistics; the standby forgets the calls.
    rtp.stop();
    for (let i = 0; i < CALLS; i++) {
      const d = await ng.delete({ callId: `takeover-${i}`, fromTag: `a${i}` });
      expect(d.ok).toBe(true);
      const totals = d.ok ? (d.value['totals'] as { RTP: { packets: number } }) : undefined;
      expect(totals?.RTP.packets).toBeGreaterThan(0);
    }
    expect((await status(nodes.get('media1')!))?.vips[0]?.own).toBe(0);
    await waitFor('the index to empty', async () => (await respCommand(redis.port, ['ZCARD', `tandem:tandem:msess-index:${VIP}`])) === 0 || undefined, 5000);
  }, 120_000);
});
