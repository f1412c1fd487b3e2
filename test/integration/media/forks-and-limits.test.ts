import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { audioSdp, randomRtpRange, rtpPacket, sdpMedia, sendTo, sleep, spawnMediaNode, udpPeer, waitFor, type SpawnedMediaNode } from './media-harness.js';

// A `tandem media` process driven by an independent ng client (rtpengine-client) over UDP, with
// RTP on real sockets: several from-tags on one Call-ID (forks) and the session limit.

const require = createRequire(import.meta.url);
// rtpengine-client is CommonJS without types.
const { Client } = require('rtpengine-client') as { Client: new (opts: { timeout?: number }) => NgClientLike };
type Reply = Record<string, unknown>;
interface NgClientLike {
  offer(port: number, host: string, opts: Reply): Promise<Reply>;
  answer(port: number, host: string, opts: Reply): Promise<Reply>;
  query(port: number, host: string, opts: Reply): Promise<Reply>;
  delete(port: number, host: string, opts: Reply): Promise<Reply>;
  list(port: number, host: string, opts?: Reply): Promise<Reply>;
  close(): void;
}
type Peer = Awaited<ReturnType<typeof udpPeer>>;

const H = '127.0.0.1';
let client: NgClientLike;

beforeAll(() => {
  client = new Client({ timeout: 3000 });
});
afterAll(() => client?.close());

/** Sends `n` RTP packets from `from` to relay port `port` with SSRC `ssrc`. */
async function burst(from: Peer, port: number, ssrc: number, n = 5, seq0 = 0): Promise<void> {
  for (let i = 0; i < n; i++) await sendTo(from.sock, rtpPacket(seq0 + i, ssrc), port);
}

/** Packets `peer` received carrying SSRC `ssrc`. */
function countSsrc(peer: Peer, ssrc: number): number {
  return peer.received.filter((r) => r.msg.length >= 12 && r.msg.readUInt32BE(8) === ssrc).length;
}

describe('several from-tags on one Call-ID (rtpengine monologue rules)', () => {
  let node: SpawnedMediaNode;
  const peers: Peer[] = [];
  const peer = async (): Promise<Peer> => {
    const p = await udpPeer();
    peers.push(p);
    return p;
  };
  const ng = (cmd: 'offer' | 'answer' | 'query' | 'delete', opts: Reply): Promise<Reply> => client[cmd](node.ngPort, H, opts);

  /** An answered call A (tag `a`) <-> B (tag `b`); returns the relay ports each side sends to. */
  async function answeredCall(callId: string, a: Peer, b: Peer): Promise<{ toA: number; toB: number }> {
    const o = await ng('offer', { 'call-id': callId, 'from-tag': 'a', sdp: audioSdp(a.port), flags: ['trust-address'] });
    expect(o['result']).toBe('ok');
    const an = await ng('answer', { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'b', sdp: audioSdp(b.port), flags: ['trust-address'] });
    expect(an['result']).toBe('ok');
    // A sends to the port in the answer, B to the port in the offer.
    return { toA: sdpMedia(an['sdp'] as string).port, toB: sdpMedia(o['sdp'] as string).port };
  }

  /** B talks first, then A: each must hear the other (B first, so a re-pointed side A would show at once). */
  async function expectFlow(a: Peer, b: Peer, ports: { toA: number; toB: number }, ssrcA: number, ssrcB: number): Promise<void> {
    const heardA = countSsrc(a, ssrcB);
    const heardB = countSsrc(b, ssrcA);
    await burst(b, ports.toB, ssrcB);
    expect(await waitFor(() => countSsrc(a, ssrcB) >= heardA + 5)).toBe(true);
    await burst(a, ports.toA, ssrcA);
    expect(await waitFor(() => countSsrc(b, ssrcA) >= heardB + 5)).toBe(true);
  }

  beforeAll(async () => {
    node = await spawnMediaNode(['--ng', `${H}:0`, '--interface', H, '--rtp-ports', randomRtpRange(200), '--workers', '1']);
  });
  afterAll(async () => {
    for (const p of peers) p.close();
    expect(await node?.stop()).toBe(0);
  });

  it('offer-with-new-from-tag-on-answered-call-does-not-redirect-its-media', async () => {
    const [a, b, evil] = [await peer(), await peer(), await peer()];
    const callId = `hijack-${Date.now()}`;
    const ports = await answeredCall(callId, a, b);
    await expectFlow(a, b, ports, 0xa1, 0xb1);

    // An INVITE with the known Call-ID and a fresh From-tag, SDP pointing at the attacker.
    const fork = await ng('offer', { 'call-id': callId, 'from-tag': 'evil', sdp: audioSdp(evil.port), flags: ['trust-address'] });
    expect(fork['result']).toBe('ok');
    expect(sdpMedia(fork['sdp'] as string).port).not.toBe(ports.toB);
    expect(sdpMedia(fork['sdp'] as string).port).not.toBe(ports.toA);
    // Same with the callee's tag as to-tag, and an answer completing the attacker's own fork.
    const fork2 = await ng('offer', { 'call-id': callId, 'from-tag': 'evil2', 'to-tag': 'b', sdp: audioSdp(evil.port), flags: ['trust-address'] });
    expect(fork2['result']).toBe('ok');
    const forkAnswer = await ng('answer', { 'call-id': callId, 'from-tag': 'evil', 'to-tag': 'b', sdp: audioSdp(evil.port), flags: ['trust-address'] });
    expect(forkAnswer['result']).toBe('ok');

    await expectFlow(a, b, ports, 0xa2, 0xb2);
    await sleep(150);
    expect(evil.received).toEqual([]);

    // The call is listed once; its parties' query shows them only, the whole call shows the forks too.
    expect(((await client.list(node.ngPort, H))['calls'] as string[]).filter((c) => c === callId)).toHaveLength(1);
    const mine = await ng('query', { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'b' });
    expect(Object.keys(mine['tags'] as object).sort()).toEqual(['a', 'b']);
    expect((mine['tags'] as Record<string, { 'in dialogue with': string }>)['b']!['in dialogue with']).toBe('a');
    const all = await ng('query', { 'call-id': callId });
    expect(Object.keys(all['tags'] as object).sort()).toEqual(['a', 'b', 'evil', 'evil2']);
    const theirs = await ng('query', { 'call-id': callId, 'from-tag': 'evil' });
    expect(Object.keys(theirs['tags'] as object).sort()).toEqual(['b', 'evil']);
    expect((theirs['totals'] as { RTP: { packets: number } }).RTP.packets).toBe(0);
    await ng('delete', { 'call-id': callId });
  });

  it('re-offer-from-caller-with-same-from-tag-moves-its-media-and-answer-to-it-works', async () => {
    const [a, b, a2] = [await peer(), await peer(), await peer()];
    const callId = `reoffer-${Date.now()}`;
    const ports = await answeredCall(callId, a, b);
    await expectFlow(a, b, ports, 0xa1, 0xb1);

    // re-INVITE from the caller: new media address, same from-tag (with and without to-tag).
    const re = await ng('offer', { 'call-id': callId, 'from-tag': 'a', sdp: audioSdp(a2.port), flags: ['trust-address'] });
    expect(re['result']).toBe('ok');
    expect(sdpMedia(re['sdp'] as string).port).toBe(ports.toB);
    const reAnswer = await ng('answer', { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'b', sdp: audioSdp(b.port), flags: ['trust-address'] });
    expect(reAnswer['result']).toBe('ok');
    expect(sdpMedia(reAnswer['sdp'] as string).port).toBe(ports.toA);
    const aBefore = a.received.length;
    await expectFlow(a2, b, ports, 0xa3, 0xb3);
    expect(a.received.length).toBe(aBefore);

    const withToTag = await ng('offer', { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'b', sdp: audioSdp(a.port), flags: ['trust-address'] });
    expect(sdpMedia(withToTag['sdp'] as string).port).toBe(ports.toB);
    expect((await ng('answer', { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'b', sdp: audioSdp(b.port), flags: ['trust-address'] }))['result']).toBe('ok');
    await expectFlow(a, b, ports, 0xa4, 0xb4);
    expect(Object.keys((await ng('query', { 'call-id': callId }))['tags'] as object).sort()).toEqual(['a', 'b']);
    await ng('delete', { 'call-id': callId, 'from-tag': 'a' });
  });

  it('delete-of-a-fork-keeps-the-call-delete-without-tags-ends-everything', async () => {
    const [a, b, x, y] = [await peer(), await peer(), await peer(), await peer()];
    const callId = `forkdel-${Date.now()}`;
    const ports = await answeredCall(callId, a, b);
    // A second branch with its own parties x <-> y; its media flows through its own pairs.
    const fo = await ng('offer', { 'call-id': callId, 'from-tag': 'x', sdp: audioSdp(x.port), flags: ['trust-address'] });
    const fa = await ng('answer', { 'call-id': callId, 'from-tag': 'x', 'to-tag': 'y', sdp: audioSdp(y.port), flags: ['trust-address'] });
    expect([fo['result'], fa['result']]).toEqual(['ok', 'ok']);
    const forkPorts = { toA: sdpMedia(fa['sdp'] as string).port, toB: sdpMedia(fo['sdp'] as string).port };
    await expectFlow(a, b, ports, 0xa1, 0xb1);
    await expectFlow(x, y, forkPorts, 0xc1, 0xd1);

    // A failure reply from an unknown branch (to-tag flag) matches nothing and deletes nothing.
    const stray = await ng('delete', { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'zz', flags: ['to-tag'] });
    expect(stray['warning']).toMatch(/not found/);

    const del = await ng('delete', { 'call-id': callId, 'from-tag': 'x' });
    expect(del['result']).toBe('ok');
    expect(Object.keys(del['tags'] as object).sort()).toEqual(['x', 'y']);
    expect((del['totals'] as { RTP: { packets: number } }).RTP.packets).toBe(10);
    await expectFlow(a, b, ports, 0xa2, 0xb2);
    await burst(x, forkPorts.toA, 0xc2);
    await sleep(150);
    expect(countSsrc(y, 0xc2)).toBe(0);
    expect(Object.keys((await ng('query', { 'call-id': callId }))['tags'] as object).sort()).toEqual(['a', 'b']);

    // A new fork, then a delete without tags: the call and every fork end.
    const fo2 = await ng('offer', { 'call-id': callId, 'from-tag': 'x2', sdp: audioSdp(x.port), flags: ['trust-address'] });
    expect(fo2['result']).toBe('ok');
    const all = await ng('delete', { 'call-id': callId });
    expect(all['result']).toBe('ok');
    expect(Object.keys(all['tags'] as object).sort()).toEqual(['a', 'b', 'x2']);
    expect(await ng('query', { 'call-id': callId })).toEqual({ result: 'error', 'error-reason': 'Unknown call-id' });
    expect((await client.list(node.ngPort, H))['calls']).not.toContain(callId);
    const heard = countSsrc(a, 0xb3);
    await burst(b, ports.toB, 0xb3);
    await sleep(150);
    expect(countSsrc(a, 0xb3)).toBe(heard);
  });

  it('delete-of-the-first-dialogue-with-a-fork-left-keeps-the-fork-until-it-is-deleted', async () => {
    const [a, b, x, y] = [await peer(), await peer(), await peer(), await peer()];
    const callId = `primdel-${Date.now()}`;
    const ports = await answeredCall(callId, a, b);
    const fo = await ng('offer', { 'call-id': callId, 'from-tag': 'x', sdp: audioSdp(x.port), flags: ['trust-address'] });
    const fa = await ng('answer', { 'call-id': callId, 'from-tag': 'x', 'to-tag': 'y', sdp: audioSdp(y.port), flags: ['trust-address'] });
    const forkPorts = { toA: sdpMedia(fa['sdp'] as string).port, toB: sdpMedia(fo['sdp'] as string).port };
    // BYE from the callee: from-tag b, to-tag a.
    const d = await ng('delete', { 'call-id': callId, 'from-tag': 'b', 'to-tag': 'a', flags: ['to-tag'] });
    expect(Object.keys(d['tags'] as object).sort()).toEqual(['a', 'b']);
    expect(Object.keys((await ng('query', { 'call-id': callId }))['tags'] as object).sort()).toEqual(['x', 'y']);
    await expectFlow(x, y, forkPorts, 0xc1, 0xd1);
    await burst(b, ports.toB, 0xb9);
    await sleep(150);
    expect(countSsrc(a, 0xb9)).toBe(0);
    // Its last dialogue gone, the call is gone.
    expect((await ng('delete', { 'call-id': callId, 'from-tag': 'y' }))['result']).toBe('ok');
    expect(await ng('query', { 'call-id': callId })).toEqual({ result: 'error', 'error-reason': 'Unknown call-id' });
  });
});

describe('session limit derived from the port range', () => {
  let node: SpawnedMediaNode;
  beforeAll(async () => {
    // 32 ports = 16 RTP/RTCP slots = 8 relay pairs; 4 are kept spare, so 4 sessions. No --max-sessions.
    node = await spawnMediaNode(['--ng', `${H}:0`, '--admin', `${H}:0`, '--interface', H, '--rtp-ports', randomRtpRange(32), '--workers', '1']);
  });
  afterAll(async () => {
    expect(await node?.stop()).toBe(0);
  });

  const rejectedMetric = async (): Promise<number> => {
    const text = await (await fetch(`http://${H}:${node.adminPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('tandem_media_sessions_rejected_total{reason="session-limit"} '));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  it('refuses-call-n-plus-1-with-load-limit-or-error-and-counts-it', async () => {
    const offer = (callId: string, fromTag: string, extra: Reply = {}): Promise<Reply> =>
      client.offer(node.ngPort, H, { 'call-id': callId, 'from-tag': fromTag, sdp: audioSdp(4000), ...extra });
    const before = await rejectedMetric();
    for (let i = 1; i <= 4; i++) expect((await offer(`lim-${i}`, 'a'))['result']).toBe('ok');

    expect(await offer('lim-5', 'a', { supports: ['load limit'] })).toEqual({ result: 'load limit', message: 'Parallel session limit reached' });
    expect(await offer('lim-6', 'a')).toEqual({ result: 'error', 'error-reason': 'Parallel session limit reached' });
    // A fork holds pairs of its own, so it counts too; a re-offer on a live call is served.
    expect(await offer('lim-1', 'other', { supports: ['load limit'] })).toEqual({ result: 'load limit', message: 'Parallel session limit reached' });
    expect((await offer('lim-1', 'a'))['result']).toBe('ok');
    expect((await rejectedMetric()) - before).toBe(3);

    // A freed session makes room again.
    expect((await client.delete(node.ngPort, H, { 'call-id': 'lim-2', 'from-tag': 'a' }))['result']).toBe('ok');
    expect((await offer('lim-7', 'a'))['result']).toBe('ok');
    const listed = (await client.list(node.ngPort, H))['calls'] as string[];
    expect([...listed].sort()).toEqual(['lim-1', 'lim-3', 'lim-4', 'lim-7']);
  });
});
