import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { audioSdp, randomRtpRange, rawRequest, rtpPacket, sdpMedia, sendTo, sleep, spawnMediaNode, udpPeer, waitFor, type SpawnedMediaNode } from './media-harness.js';

const ADMIN_TOKEN = 'media-admin-token-0123456789';
const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };

const require = createRequire(import.meta.url);
// rtpengine-client is CommonJS without types.
const { Client, TcpClient } = require('rtpengine-client') as {
  Client: new (opts: { timeout?: number; localAddress?: string }) => NgClientLike;
  TcpClient: new (hostport: string) => NgClientLike & { on: (ev: string, cb: () => void) => void };
};
interface NgClientLike {
  ping(port: number, host: string): Promise<Record<string, unknown>>;
  offer(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  answer(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  query(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  delete(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  list(port: number, host: string, opts?: Record<string, unknown>): Promise<Record<string, unknown>>;
  statistics(port: number, host: string, opts?: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
}
// TcpClient methods take only the options.
type TcpLike = {
  ping(): Promise<Record<string, unknown>>;
  offer(opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
};

const H = '127.0.0.1';
let node: SpawnedMediaNode;
let client: NgClientLike;

beforeAll(async () => {
  node = await spawnMediaNode(['--ng', `${H}:0`, '--ng-tcp', `${H}:0`, '--admin', `${H}:0`, '--admin-token', ADMIN_TOKEN, '--interface', H, '--rtp-ports', randomRtpRange(), '--workers', '2']);
  client = new Client({ timeout: 3000 });
  await sleep(50);
});

afterAll(async () => {
  client?.close();
  const code = await node?.stop();
  expect(code).toBe(0);
});

async function metrics(): Promise<string> {
  const r = await fetch(`http://${H}:${node.adminPort}/metrics`);
  return r.text();
}

function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('tandem media driven by rtpengine-client', () => {
  // First in the file: the node has served nothing yet. Its start-up warm-up ran 2,000
  // synthetic calls through the ng path; none of them may show as traffic or hold ports.
  it('a node just started shows no calls: the warm-up is not counted and holds no ports', async () => {
    const stats = (await client.statistics(node.ngPort, H))['statistics'] as Record<string, Record<string, unknown>>;
    expect(stats['totalstatistics']!['managedsessions']).toBe(0);
    expect(stats['totalstatistics']!['regularterminatedsessions']).toBe(0);
    expect(stats['currentstatistics']!['sessionstotal']).toBe(0);
    // Only the spare pairs bound ahead (4 pairs of 4 ports by default).
    expect(stats['totalstatistics']!['portsinuse']).toBe(16);
    const m = await metrics();
    expect(metricValue(m, 'tandem_media_sessions_created_total')).toBe(0);
    expect(metricValue(m, 'tandem_media_sessions')).toBe(0);
  });

  it('ping -> pong (UDP and TCP)', async () => {
    expect(await client.ping(node.ngPort, H)).toEqual({ result: 'pong' });
    const tcp = new TcpClient(`${H}:${node.ngTcpPort}`) as unknown as TcpLike & { on: (e: string, cb: () => void) => void };
    await new Promise<void>((r) => tcp.on('connect', () => r()));
    const origLog = console.log;
    console.log = () => undefined; // the client logs every TCP chunk
    try {
      expect(await tcp.ping()).toEqual({ result: 'pong' });
    } finally {
      console.log = origLog;
      tcp.close();
    }
  });

  it('offer/answer rewrite SDP, RTP flows both ways, query and delete report it', async () => {
    const a = await udpPeer();
    const b = await udpPeer();
    const callId = `call-${Date.now()}`;
    try {
      const offer = await client.offer(node.ngPort, H, {
        'call-id': callId,
        'from-tag': 'tagA',
        sdp: audioSdp(a.port),
        flags: ['trust-address'],
        replace: ['origin', 'session-connection'],
        ICE: 'remove',
      });
      expect(offer['result']).toBe('ok');
      const toB = sdpMedia(offer['sdp'] as string);
      expect(toB.address).toBe(H);
      expect(toB.port).not.toBe(a.port);
      expect(offer['sdp']).toContain('a=rtpmap:101 telephone-event/8000\r\n');
      expect(offer['sdp']).toMatch(/^o=- 1 1 IN IP4 127\.0\.0\.1\r\n/m);

      const answer = await client.answer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'tagA', 'to-tag': 'tagB', sdp: audioSdp(b.port), flags: ['trust-address'] });
      expect(answer['result']).toBe('ok');
      const toA = sdpMedia(answer['sdp'] as string);
      expect(toA.port).not.toBe(toB.port);

      for (let i = 0; i < 20; i++) {
        await sendTo(a.sock, rtpPacket(100 + i, 0x1111), toA.port);
        await sendTo(b.sock, rtpPacket(500 + i, 0x2222), toB.port);
        if (i % 5 === 4) await sleep(5);
      }
      expect(await waitFor(() => a.received.length >= 20 && b.received.length >= 20)).toBe(true);
      expect(b.received[0]!.from).toBe(`${H}:${toB.port}`);
      expect(a.received[0]!.from).toBe(`${H}:${toA.port}`);
      expect(b.received[0]!.msg.readUInt32BE(8)).toBe(0x1111);

      const q = await client.query(node.ngPort, H, { 'call-id': callId });
      expect(q['result']).toBe('ok');
      const totals = q['totals'] as { RTP: { packets: number; bytes: number } };
      expect(totals.RTP.packets).toBe(40);
      expect(totals.RTP.bytes).toBe(40 * 172);
      const ssrc = q['SSRC'] as Record<string, Record<string, unknown>>;
      expect(Object.keys(ssrc).sort()).toEqual([String(0x1111), String(0x2222)]);
      expect(ssrc[String(0x1111)]).toMatchObject({ packets: 20, 'cumulative loss': 0, 'last RTP seq': 119 });
      expect((ssrc[String(0x1111)]!['average MOS'] as { MOS: number }).MOS).toBeGreaterThanOrEqual(40);
      const tags = q['tags'] as Record<string, { 'in dialogue with': string; medias: Array<{ streams: Array<Record<string, unknown>> }> }>;
      expect(tags['tagA']!['in dialogue with']).toBe('tagB');
      const streamA = tags['tagA']!.medias[0]!.streams[0]!;
      expect(streamA['local port']).toBe(toA.port);
      expect(streamA['endpoint']).toEqual({ family: 'IPv4', address: H, port: a.port });
      expect(streamA['stats']).toMatchObject({ packets: 20 });

      const list = await client.list(node.ngPort, H);
      expect(list['calls']).toContain(callId);

      const del = await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'tagA' });
      expect(del['result']).toBe('ok');
      expect((del['totals'] as typeof totals).RTP.packets).toBe(40);
      const q2 = await client.query(node.ngPort, H, { 'call-id': callId });
      expect(q2).toEqual({ result: 'error', 'error-reason': 'Unknown call-id' });
      const d2 = await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'tagA' });
      expect(d2['result']).toBe('ok');
      expect(d2['warning']).toMatch(/not found/);
    } finally {
      a.close();
      b.close();
    }
  });

  it('received-from is used instead of the SDP address unless trust-address', async () => {
    const a = await udpPeer();
    const b = await udpPeer();
    const callId = `rf-${Date.now()}`;
    try {
      // SDP claims an unroutable private address; received-from says 127.0.0.1.
      const offer = await client.offer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'x', sdp: audioSdp(a.port, '10.99.99.99'), 'received from': ['IP4', H] });
      const answer = await client.answer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'x', 'to-tag': 'y', sdp: audioSdp(b.port, '10.99.99.98'), 'received-from': ['IP4', H] });
      const toB = sdpMedia(offer['sdp'] as string);
      const toA = sdpMedia(answer['sdp'] as string);
      // B talks first: the relay sends to A's received-from address with A's SDP port.
      await sendTo(b.sock, rtpPacket(1, 7), toB.port);
      expect(await waitFor(() => a.received.length === 1)).toBe(true);
      await sendTo(a.sock, rtpPacket(1, 8), toA.port);
      expect(await waitFor(() => b.received.length === 1)).toBe(true);
      await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'x' });
    } finally {
      a.close();
      b.close();
    }
  });

  it('re-offer reuses ports; a retransmitted cookie is answered from cache without re-running', async () => {
    const a = await udpPeer();
    const callId = `rt-${Date.now()}`;
    const sdp = audioSdp(a.port);
    const msg = Buffer.concat([Buffer.from('retrans-1 '), Buffer.from(`d7:call-id${callId.length}:${callId}7:command5:offer8:from-tag1:f3:sdp${Buffer.byteLength(sdp)}:${sdp}e`)]);
    try {
      const before = metricValue(await metrics(), 'tandem_ng_retransmissions_total');
      const offersBefore = metricValue(await metrics(), 'tandem_ng_requests_total', 'command="offer",result="ok"');
      const [r1, r2] = await Promise.all([rawRequest(node.ngPort, msg), rawRequest(node.ngPort, msg)]);
      const r3 = await rawRequest(node.ngPort, msg);
      expect(r1?.toString('latin1')).toBe(r2?.toString('latin1'));
      expect(r3?.toString('latin1')).toBe(r1?.toString('latin1'));
      expect(r1!.subarray(0, 10).toString()).toBe('retrans-1 ');
      const m = await metrics();
      expect(metricValue(m, 'tandem_ng_retransmissions_total') - before).toBe(2);
      expect(metricValue(m, 'tandem_ng_requests_total', 'command="offer",result="ok"') - offersBefore).toBe(1);
      // A re-offer (new cookie, same call and tag) keeps the ports.
      const port1 = sdpMedia(r1!.toString('latin1')).port;
      const re = await client.offer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'f', sdp });
      expect(sdpMedia(re['sdp'] as string).port).toBe(port1);
      await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'f' });
    } finally {
      a.close();
    }
  });

  it('garbled bencode, no cookie, unknown command, JSON, unknown flags: specified replies and the node keeps serving', async () => {
    const garbled = await rawRequest(node.ngPort, 'g1 d7:command4:pi');
    expect(garbled?.toString('latin1')).toMatch(/^g1 d12:error-reason\d+:Failed to decode bencode.*6:result5:errore$/);
    expect(await rawRequest(node.ngPort, 'd7:command4:pinge', 300)).toBeUndefined();
    expect(await rawRequest(node.ngPort, 'nocookie', 300)).toBeUndefined();
    const unknown = await rawRequest(node.ngPort, 'u1 d7:command10:frobnicatee');
    expect(unknown?.toString()).toBe('u1 d12:error-reason20:Unrecognized command6:result5:errore');
    const json = await rawRequest(node.ngPort, 'j1 {"command":"ping"}');
    expect(json?.toString()).toBe('j1 {"result":"pong"}');
    const missing = await client.offer(node.ngPort, H, { 'from-tag': 'x', sdp: 'v=0\r\n' });
    expect(missing).toEqual({ result: 'error', 'error-reason': 'No call-id in message' });
    const badSdp = await client.offer(node.ngPort, H, { 'call-id': 'bad-sdp', 'from-tag': 'x', sdp: 'hello' });
    expect(badSdp['result']).toBe('error');
    const callId = `uf-${Date.now()}`;
    const withFlags = await client.offer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'x', sdp: audioSdp(4000), flags: ['trust-address', 'no-such-flag'] });
    expect(withFlags['result']).toBe('ok');
    expect(withFlags['warning']).toContain('no-such-flag');
    await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'x' });
    // Random garbage never kills it.
    for (let i = 0; i < 50; i++) await rawRequest(node.ngPort, Buffer.from(Array.from({ length: 64 }, () => Math.floor(Math.random() * 256))), 1);
    expect(await client.ping(node.ngPort, H)).toEqual({ result: 'pong' });
    const stats = await client.statistics(node.ngPort, H);
    expect(stats['result']).toBe('ok');
    expect((stats['statistics'] as { currentstatistics: { sessionsown: number } }).currentstatistics).toBeDefined();
  });

  it('strict-source: RTP from a stranger is dropped and counted', async () => {
    const a = await udpPeer();
    const b = await udpPeer();
    const stranger = await udpPeer();
    const callId = `ss-${Date.now()}`;
    try {
      const offer = await client.offer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'a', sdp: audioSdp(a.port), flags: ['trust-address', 'strict-source'] });
      const answer = await client.answer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'a', 'to-tag': 'b', sdp: audioSdp(b.port), flags: ['trust-address', 'strict-source'] });
      const toA = sdpMedia(answer['sdp'] as string);
      const toB = sdpMedia(offer['sdp'] as string);
      await sendTo(a.sock, rtpPacket(1, 0xa), toA.port);
      expect(await waitFor(() => b.received.length === 1)).toBe(true);
      for (let i = 0; i < 5; i++) await sendTo(stranger.sock, rtpPacket(100 + i, 0xbad), toA.port);
      await sendTo(a.sock, rtpPacket(2, 0xa), toA.port);
      expect(await waitFor(() => b.received.length === 2)).toBe(true);
      await sleep(100);
      expect(b.received.every((r) => r.msg.readUInt32BE(8) === 0xa)).toBe(true);
      const q = await client.query(node.ngPort, H, { 'call-id': callId });
      expect((q['totals'] as { RTP: { errors: number } }).RTP.errors).toBe(5);
      void toB;
      expect(await client.ping(node.ngPort, H)).toEqual({ result: 'pong' });
      await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'a' });
    } finally {
      a.close();
      b.close();
      stranger.close();
    }
  });

  it('ng over HTTP: POST /ng (cookie + bencode), POST /ng-plain (JSON), GET /ping', async () => {
    const base = `http://${H}:${node.adminPort}`;
    // ng over HTTP drives the relay: a write, so it needs the admin token.
    const refused = await fetch(`${base}/ng`, { method: 'POST', headers: { 'content-type': 'application/x-rtpengine-ng' }, body: 'h0 d7:command4:pinge' });
    expect(refused.status).toBe(401);
    const r1 = await fetch(`${base}/ng`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/x-rtpengine-ng' }, body: 'h1 d7:command4:pinge' });
    expect(r1.status).toBe(200);
    expect(await r1.text()).toBe('h1 d6:result4:ponge');
    const r2 = await fetch(`${base}/ng-plain`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ command: 'list' }) });
    expect(await r2.json()).toMatchObject({ result: 'ok', calls: expect.any(Array) });
    const r3 = await fetch(`${base}/ping`);
    expect(await r3.text()).toBe('pong');
    const r4 = await fetch(`${base}/ng`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/x-rtpengine-ng' }, body: 'no-cookie' });
    expect(r4.status).toBe(403);
    // Other admin routes still parse JSON normally.
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it('ng over WebSocket (subprotocol ng.rtpengine.com and ng-plain.rtpengine.com)', async () => {
    const { WebSocket } = await import('ws');
    // Without the token the upgrade is refused.
    const bare = new WebSocket(`ws://${H}:${node.adminPort}/`, 'ng.rtpengine.com');
    const refusedWith = await new Promise<number>((r) => {
      bare.once('unexpected-response', (_req, res) => r(res.statusCode ?? 0));
      bare.once('open', () => r(101));
      bare.once('error', () => r(-1));
    });
    bare.terminate();
    expect(refusedWith).toBe(401);
    for (const [proto, msg, expected] of [
      ['ng.rtpengine.com', 'w1 d7:command4:pinge', 'w1 d6:result4:ponge'],
      ['ng-plain.rtpengine.com', '{"command":"ping"}', '{"result":"pong"}'],
    ] as const) {
      const ws = new WebSocket(`ws://${H}:${node.adminPort}/`, proto, { headers: AUTH });
      await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
      const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
      ws.send(msg);
      expect(await reply).toBe(expected);
      ws.close();
    }
  });

  it('admin /sessions lists calls', async () => {
    const callId = `adm-${Date.now()}`;
    await client.offer(node.ngPort, H, { 'call-id': callId, 'from-tag': 'a', sdp: audioSdp(4002) });
    const r = (await (await fetch(`http://${H}:${node.adminPort}/sessions`)).json()) as { sessions: Array<{ callId: string }> };
    expect(r.sessions.map((s) => s.callId)).toContain(callId);
    await client.delete(node.ngPort, H, { 'call-id': callId, 'from-tag': 'a' });
  });
});

describe('tandem media with a restricted allow-list and a session limit', () => {
  let restricted: SpawnedMediaNode;
  beforeAll(async () => {
    restricted = await spawnMediaNode(['--ng', `${H}:0`, '--ng-allow', '127.0.0.2/32', '--admin', `${H}:0`, '--rtp-ports', randomRtpRange(40), '--workers', '1', '--max-sessions', '1']);
  });
  afterAll(async () => {
    expect(await restricted?.stop()).toBe(0);
  });

  it('commands from a forbidden source are dropped and counted; allowed ones served', async () => {
    expect(await rawRequest(restricted.ngPort, 'f1 d7:command4:pinge', 400, '127.0.0.1')).toBeUndefined();
    const ok = await rawRequest(restricted.ngPort, 'f2 d7:command4:pinge', 1000, '127.0.0.2');
    expect(ok?.toString()).toBe('f2 d6:result4:ponge');
    const m = await (await fetch(`http://${H}:${restricted.adminPort}/metrics`)).text();
    expect(metricValue(m, 'tandem_ng_dropped_total', 'reason="forbidden-source"')).toBeGreaterThanOrEqual(1);
  });

  it('a node at its session limit answers load limit to clients that support it', async () => {
    const c = new Client({ timeout: 3000, localAddress: '127.0.0.2' });
    try {
      const o1 = await c.offer(restricted.ngPort, H, { 'call-id': 'l1', 'from-tag': 'a', sdp: audioSdp(4000) });
      expect(o1['result']).toBe('ok');
      const o2 = await c.offer(restricted.ngPort, H, { 'call-id': 'l2', 'from-tag': 'a', sdp: audioSdp(4000), supports: ['load limit'] });
      expect(o2).toEqual({ result: 'load limit', message: 'Parallel session limit reached' });
      const o3 = await c.offer(restricted.ngPort, H, { 'call-id': 'l3', 'from-tag': 'a', sdp: audioSdp(4000) });
      expect(o3).toEqual({ result: 'error', 'error-reason': 'Parallel session limit reached' });
      // A re-offer on the existing call is still served.
      expect((await c.offer(restricted.ngPort, H, { 'call-id': 'l1', 'from-tag': 'a', sdp: audioSdp(4000) }))['result']).toBe('ok');
    } finally {
      c.close();
    }
  });
});
