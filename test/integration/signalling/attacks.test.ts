/**
 * The holes an attacker could reach through `tandem start` with digest auth on, each tried for
 * real (a `tandem start` process, UDP sockets, RTP through the in-process media node): the forged
 * request must reach no one and change nothing.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAuthorization, parseChallenge } from '../../../src/sip/auth/digest.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';
import { startTandem, tempFile, type TandemProcess } from './helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from './helpers/test-ua.js';

const DOMAIN = 'example.test';
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\ncarol,carol-secret\n');
/** A "PBX" address that is a dispatcher destination: trusted, never blocked. */
const PBX_ADDR = '127.0.0.5';
const rand = (n = 6) => randomBytes(n).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let t: TandemProcess;
let adminUrl: string;
const uas: TestUa[] = [];
const sockets: dgram.Socket[] = [];

async function ua(user: string, bindAddress?: string): Promise<TestUa> {
  const u = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: t.ports['udp']! }, user, password: `${user}-secret`, domain: DOMAIN, ...(bindAddress ? { bindAddress } : {}) });
  uas.push(u);
  return u;
}

/** A UDP socket that records what it receives (an RTP endpoint, or a victim host). */
async function listener(address = '127.0.0.1'): Promise<{ sock: dgram.Socket; port: number; got: Buffer[] }> {
  const sock = dgram.createSocket('udp4');
  sockets.push(sock);
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  await new Promise<void>((r) => sock.bind(0, address, () => r()));
  return { sock, port: sock.address().port, got };
}

function rtp(seq: number): Buffer {
  const b = Buffer.alloc(172);
  b[0] = 0x80;
  b[1] = 0;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 160, 4);
  b.writeUInt32BE(0x1234abcd, 8);
  return b;
}

/** Sends a few RTP packets from `from` to the relay port and says how many `to` received. */
async function rtpArrives(from: dgram.Socket, relayPort: number, to: { got: Buffer[] }): Promise<number> {
  const before = to.got.length;
  for (let i = 0; i < 5; i++) {
    from.send(rtp(i + 1), relayPort, '127.0.0.1');
    await sleep(20);
  }
  await sleep(150);
  return to.got.length - before;
}

const mPort = (sdp: Buffer | string) => Number(/m=audio (\d+)/.exec(sdp.toString())?.[1]);

/** An established alice -> bob call with RTP both ways through the relay. */
async function establishedCall() {
  const alice = await ua('alice');
  const bob = await ua('bob');
  expect((await alice.register()).status).toBe(200);
  expect((await bob.register()).status).toBe(200);
  const aMedia = await listener();
  const bMedia = await listener();
  const call = new TestCall(alice, 'bob');
  const calleeP = (async () => {
    const inv = await bob.waitRequest('INVITE');
    bob.send(bob.response(inv, 200, 'OK', { toTag: `b${rand(3)}`, body: SAMPLE_SDP(bMedia.port) }));
    return inv;
  })();
  let res = await call.invite({ sdp: SAMPLE_SDP(aMedia.port) });
  const inv = await calleeP;
  if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200);
  expect(res.status).toBe(200);
  call.learn(res);
  call.ack2xx();
  await bob.waitRequest('ACK', 5000, call.callId);
  const relayForAlice = mPort(res.body); // alice sends here
  const relayForBob = mPort(inv.body); // bob sends here
  expect(await rtpArrives(aMedia.sock, relayForAlice, bMedia)).toBeGreaterThanOrEqual(4);
  expect(await rtpArrives(bMedia.sock, relayForBob, aMedia)).toBeGreaterThanOrEqual(4);
  const bobInvite = inv;
  return { alice, bob, call, aMedia, bMedia, relayForAlice, relayForBob, bobInvite, res };
}

async function sessionCallIds(): Promise<string[]> {
  const r = (await (await fetch(`${adminUrl}/sessions`)).json()) as { sessions: Array<{ callId: string }> };
  return r.sessions.map((s) => s.callId);
}

/** A raw request from `from` (text built by the test: anything an attacker likes). */
function raw(from: TestUa, o: { method: string; uri: string; callId: string; fromUser?: string; fromDomain?: string; fromTag: string; to: string; toTag?: string; route?: string; headers?: string[]; body?: string; cseq?: number }): string {
  const body = o.body ?? '';
  return [
    `${o.method} ${o.uri} SIP/2.0`,
    `Via: ${from.via()}`,
    'Max-Forwards: 70',
    ...(o.route ? [`Route: ${o.route}`] : []),
    `From: <sip:${o.fromUser ?? from.opts.user}@${o.fromDomain ?? DOMAIN}>;tag=${o.fromTag}`,
    `To: <${o.to}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq ?? 7} ${o.method}`,
    `Contact: <${from.contact}>`,
    ...(o.headers ?? []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

beforeAll(async () => {
  const base = 46000 + Math.floor(Math.random() * 30) * 100;
  const cfg = tempFile(
    'attacks.yaml',
    `media:\n  rtpPorts: ${base}-${base + 99}\n` +
      `dispatcher:\n  sets:\n    pbx:\n      destinations:\n        - uri: sip:${PBX_ADDR}:5099\n  probing:\n    enabled: false\n`,
  );
  t = await startTandem(['--config', cfg, '--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--admin', '127.0.0.1:0']);
  const m = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''));
  adminUrl = m![1]!;
});

afterAll(async () => {
  for (const u of uas) u.close();
  for (const s of sockets) s.close();
  await t?.stop('SIGKILL');
});

describe('forged in-dialog requests (a To-tag is no proof)', () => {
  it('an INVITE with a made-up To-tag and no Route is not relayed: 407 for a local From, 403 for a foreign one; the named host gets nothing', async () => {
    const victim = await listener('127.0.0.9');
    const attacker = await ua('mallory');
    const uri = `sip:+4420700000@127.0.0.9:${victim.port}`;
    const callA = `${rand()}@evil`;
    attacker.send(raw(attacker, { method: 'INVITE', uri, callId: callA, fromUser: 'alice', fromTag: rand(), to: uri, toTag: 'fake', body: SAMPLE_SDP(40000) }));
    expect((await attacker.waitResponse(callA, 'INVITE', (s) => s >= 200)).status).toBe(407);
    const callB = `${rand()}@evil`;
    attacker.send(raw(attacker, { method: 'INVITE', uri, callId: callB, fromUser: 'x', fromDomain: 'evil.example', fromTag: rand(), to: uri, toTag: 'fake', body: SAMPLE_SDP(40000) }));
    const r = await attacker.waitResponse(callB, 'INVITE', (s) => s >= 200);
    expect(r.status).toBe(403);
    // Our own address as Route, without a token, proves nothing either.
    const callC = `${rand()}@evil`;
    attacker.send(raw(attacker, { method: 'INVITE', uri, callId: callC, fromUser: 'x', fromDomain: 'evil.example', fromTag: rand(), to: uri, toTag: 'fake', route: `<sip:127.0.0.1:${t.ports['udp']};lr>`, body: SAMPLE_SDP(40000) }));
    expect((await attacker.waitResponse(callC, 'INVITE', (s) => s >= 200)).status).toBe(403);
    await sleep(300);
    expect(victim.got).toHaveLength(0);
    // No media session was opened for any of them.
    const ids = await sessionCallIds();
    expect(ids).not.toContain(callA);
    expect(ids).not.toContain(callB);
    expect(ids).not.toContain(callC);
  });

  it('a forged BYE (known Call-ID and tags, no valid Route) neither reaches the callee nor touches the media; the real BYE does both', async () => {
    const c = await establishedCall();
    const attacker = await ua('mallory');
    const ourAddr = `127.0.0.1:${t.ports['udp']}`;
    // Made-up tokens in both accepted forms: hex (issued now) and base64url (issued by older nodes).
    const routes = [undefined, `<sip:${ourAddr};lr>`, `<sip:${ourAddr};lr;tk=AAAAAAAAAAAAAAAA>`, `<sip:${ourAddr};lr;tk=${'5a'.repeat(12)}>`];
    for (const route of routes) {
      attacker.send(
        raw(attacker, { method: 'BYE', uri: c.call.remoteTarget!, callId: c.call.callId, fromUser: 'alice', fromTag: c.call.fromTag, to: c.call.target, toTag: c.call.toTag!, ...(route ? { route } : {}) }),
      );
      const r = await attacker.waitResponse(c.call.callId, 'BYE');
      expect(r.status).not.toBe(200);
    }
    // The Route of this very call, on another Call-ID: refused too (bound to Call-ID and tags).
    const stolen = c.call.routeSet[0]!;
    const otherCall = `${rand()}@evil`;
    attacker.send(raw(attacker, { method: 'BYE', uri: c.call.remoteTarget!, callId: otherCall, fromUser: 'alice', fromTag: rand(), to: c.call.target, toTag: rand(), route: stolen }));
    expect((await attacker.waitResponse(otherCall, 'BYE')).status).not.toBe(200);
    await sleep(200);
    expect(c.bob.received.some((m) => m.isRequest() && (m as { method: string }).method === 'BYE')).toBe(false);
    expect(await sessionCallIds()).toContain(c.call.callId);
    expect(await rtpArrives(c.aMedia.sock, c.relayForAlice, c.bMedia)).toBeGreaterThanOrEqual(4);
    // The genuine BYE through the route set ends the call and its media.
    const byeP = c.bob.waitRequest('BYE', 5000, c.call.callId).then((bye) => c.bob.send(c.bob.response(bye, 200, 'OK')));
    expect((await c.call.bye()).status).toBe(200);
    await byeP;
    await sleep(200);
    expect(await sessionCallIds()).not.toContain(c.call.callId);
    expect(await rtpArrives(c.aMedia.sock, c.relayForAlice, c.bMedia)).toBe(0);
  });

  it('the media of a live call cannot be re-pointed by a new INVITE reusing its Call-ID (new or same From-tag)', async () => {
    const c = await establishedCall();
    const carol = await ua('carol');
    expect((await carol.register()).status).toBe(200);
    const trap = await listener();
    for (const fromTag of [rand(), c.call.fromTag]) {
      const hijack = new TestCall(carol, 'bob');
      (hijack as { callId: string }).callId = c.call.callId;
      (hijack as { fromTag: string }).fromTag = fromTag;
      const r = await hijack.invite({ sdp: SAMPLE_SDP(trap.port) });
      expect(r.status).toBe(403);
      hijack.ackNon2xx(r);
    }
    expect(await rtpArrives(c.bMedia.sock, c.relayForBob, c.aMedia)).toBeGreaterThanOrEqual(4);
    expect(await rtpArrives(c.aMedia.sock, c.relayForAlice, c.bMedia)).toBeGreaterThanOrEqual(4);
    expect(trap.got).toHaveLength(0);
    const byeP = c.bob.waitRequest('BYE', 5000, c.call.callId).then((bye) => c.bob.send(c.bob.response(bye, 200, 'OK')));
    expect((await c.call.bye()).status).toBe(200);
    await byeP;
  });

  it('a failed re-INVITE (491) leaves the call and its media as they were', async () => {
    const c = await establishedCall();
    c.call.cseq++;
    const reinvite = c.call.inDialog('INVITE', c.call.cseq).replace('Content-Length: 0\r\n\r\n', `Content-Type: application/sdp\r\nContent-Length: ${SAMPLE_SDP(c.aMedia.port).length}\r\n\r\n${SAMPLE_SDP(c.aMedia.port)}`);
    const calleeP = c.bob.waitRequest('INVITE', 5000, c.call.callId).then((inv) => c.bob.send(c.bob.response(inv, 491, 'Request Pending')));
    c.alice.send(reinvite);
    await calleeP;
    expect((await c.alice.waitResponse(c.call.callId, 'INVITE', (s) => s >= 400)).status).toBe(491);
    await sleep(200);
    expect(await sessionCallIds()).toContain(c.call.callId);
    expect(await rtpArrives(c.aMedia.sock, c.relayForAlice, c.bMedia)).toBeGreaterThanOrEqual(4);
    expect(await rtpArrives(c.bMedia.sock, c.relayForBob, c.aMedia)).toBeGreaterThanOrEqual(4);
    const byeP = c.bob.waitRequest('BYE', 5000, c.call.callId).then((bye) => c.bob.send(c.bob.response(bye, 200, 'OK')));
    expect((await c.call.bye()).status).toBe(200);
    await byeP;
  });
});

describe('digest authentication', () => {
  it('credentials without qop are refused (challenged again); a retransmitted REGISTER gets its 200 again and changes nothing, a replayed one is refused', async () => {
    const alice = await ua('alice');
    const uri = `sip:${DOMAIN}`;
    const mk = (cseq: number, auth?: string) =>
      alice.request({ method: 'REGISTER', uri, callId: alice.callIdReg, cseq, fromTag: alice.regTag, to: alice.aor, headers: ['Expires: 60', ...(auth ? [`Authorization: ${auth}`] : [])] });
    alice.send(mk(1));
    const ch = await alice.waitResponse(alice.callIdReg, 'REGISTER');
    expect(ch.status).toBe(401);
    const parsed = parseChallenge(ch.getAll('WWW-Authenticate')[0]!);
    if (!parsed.ok) throw new Error('bad challenge');
    const noQop = buildAuthorization({ ...parsed.value, qop: undefined }, { username: 'alice', password: 'alice-secret' }, 'REGISTER', uri);
    if (!noQop.ok) throw new Error(noQop.reason);
    alice.send(mk(2, noQop.value));
    expect((await alice.waitResponse(alice.callIdReg, 'REGISTER')).status).toBe(401);
    // With qop: accepted once; the same message again (same nonce-count) is a replay.
    const withQop = buildAuthorization(parsed.value, { username: 'alice', password: 'alice-secret' }, 'REGISTER', uri, 1);
    if (!withQop.ok) throw new Error(withQop.reason);
    alice.send(mk(3, withQop.value));
    const ok = await alice.waitResponse(alice.callIdReg, 'REGISTER');
    expect(ok.status).toBe(200);
    // REGISTER has no server transaction: a retransmission (same Call-ID, CSeq, nonce count) gets
    // the same 200 ...
    alice.send(mk(3, withQop.value));
    const again = await alice.waitResponse(alice.callIdReg, 'REGISTER');
    expect(again.status).toBe(200);
    expect(again.getAll('Contact')).toEqual(ok.getAll('Contact'));
    // ... and a copy of it carrying another Contact changes nothing.
    const forged = alice.request({ method: 'REGISTER', uri, callId: alice.callIdReg, cseq: 3, fromTag: alice.regTag, to: alice.aor, headers: ['Expires: 60', 'Contact: <sip:mallory@203.0.113.9>', `Authorization: ${withQop.value}`] });
    alice.send(forged);
    const copy = await alice.waitResponse(alice.callIdReg, 'REGISTER');
    expect(copy.status).toBe(200);
    expect(copy.getAll('Contact').join()).not.toContain('mallory');
    alice.send(mk(4, withQop.value));
    expect((await alice.waitResponse(alice.callIdReg, 'REGISTER')).status).toBe(401);
  });

  it('credentials for another Request-URI are refused with 400 (the digest uri must name the Request-URI)', async () => {
    const alice = await ua('alice');
    const call = new TestCall(alice, 'bob');
    alice.send(alice.request({ method: 'INVITE', uri: call.target, callId: call.callId, cseq: 1, fromTag: call.fromTag, to: call.target, body: SAMPLE_SDP(40000) }));
    const ch = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200);
    expect(ch.status).toBe(407);
    const expensive = `sip:+4420700000@${DOMAIN}`;
    // Credentials computed for bob's URI, sent on an INVITE to a premium number.
    const auth = alice.answer(ch, 'Proxy-Authenticate', 'INVITE', call.target);
    alice.send(alice.request({ method: 'INVITE', uri: expensive, callId: call.callId, cseq: 2, fromTag: call.fromTag, to: expensive, headers: [`Proxy-Authorization: ${auth}`], body: SAMPLE_SDP(40000) }));
    const r = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200 && s !== 407);
    expect(r.status).toBe(400);
    expect(r.reason).toMatch(/Digest URI/);
  });
});

describe('blocking after failed authentications', () => {
  it('a flood of made-up nonces "from" an address blocks no one there', async () => {
    const flooder = await ua('alice', '127.0.0.3');
    const uri = `sip:${DOMAIN}`;
    for (let i = 0; i < 30; i++) {
      const auth = `Digest username="alice", realm="${DOMAIN}", nonce="${rand(22)}", uri="${uri}", response="${rand(16)}", qop=auth, nc=00000001, cnonce="x", algorithm=MD5`;
      flooder.send(flooder.request({ method: 'REGISTER', uri, callId: `${rand()}@flood`, cseq: 1, fromTag: rand(), to: flooder.aor, headers: [`Authorization: ${auth}`] }));
    }
    await sleep(300);
    const legit = await ua('alice', '127.0.0.3');
    expect((await legit.register(60)).status).toBe(200);
  });

  it('wrong passwords block an ordinary source, but never a dispatcher destination (PBX)', async () => {
    const guesser = await ua('bob', '127.0.0.4');
    // maxFailures is 10: nine wrong guesses are answered; the tenth blocks the source.
    for (let i = 0; i < 9; i++) expect((await guesser.register(60, { password: `guess-${i}` })).status).toBe(401);
    await expect(guesser.register(60, { password: 'guess-9', timeoutMs: 800 })).rejects.toThrow(/timed out/);
    // Blocked: no answer at all now, even with the right password.
    await expect(guesser.register(60, { timeoutMs: 800 })).rejects.toThrow(/timed out/);
    const pbx = await ua('bob', PBX_ADDR);
    for (let i = 0; i < 15; i++) expect((await pbx.register(60, { password: `guess-${i}` })).status).toBe(401);
    expect((await pbx.register(60)).status).toBe(200);
    const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/tandem_auth_sources_blocked_total 1\b/);
  });
});
