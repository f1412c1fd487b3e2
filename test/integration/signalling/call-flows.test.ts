import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { startTandem, tempFile, type TandemProcess } from './helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from './helpers/test-ua.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';

const DOMAIN = 'example.test';
let tandem: TandemProcess;
const uas: TestUa[] = [];

async function ua(user: string, transport: 'udp' | 'tcp' | 'tls' = 'udp', password = `${user}-secret`): Promise<TestUa> {
  const u = await TestUa.create({ transport, proxy: { host: '127.0.0.1', port: tandem.ports[transport]! }, user, password, domain: DOMAIN });
  uas.push(u);
  return u;
}

beforeAll(async () => {
  const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\ncarol,carol-secret\ndave,dave-secret\nerin,erin-secret\nfrank,frank-secret\n');
  const config = tempFile(
    'tandem.yaml',
    `signalling:\n  auth:\n    nonceLifetimeSec: 2\n    maxFailures: 50\n  registrar:\n    minExpiresSec: 2\n    maxContactsPerAor: 20\n  proxy:\n    timerCMs: 3000\n`,
  );
  const key = join(dirname(config), 'key.pem');
  const cert = join(dirname(config), 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  tandem = await startTandem([
    '--config', config, '--sip', 'udp:127.0.0.1:0', '--sip', 'tcp:127.0.0.1:0', '--sip', 'tls:127.0.0.1:0', '--tls-cert', cert, '--tls-key', key,
    '--domain', DOMAIN, '--users', users, '--no-media',
  ]);
});

afterEach(async () => {
  // Remove this test's bindings so the next test's INVITE does not fork to stale UAs.
  for (const u of uas.splice(0)) {
    await u.register(0).catch(() => undefined);
    u.close();
  }
});

afterAll(async () => {
  if (process.env.SHOW_TANDEM_LOG) console.log(tandem?.stderr.join(""));
  for (const u of uas) u.close();
  await tandem?.stop();
});

/** Callee side: wait for INVITE, send 180 then `final`. */
/** The caller's 2xx (waited for when the INVITE returned a provisional first), learned into the dialog. */
async function confirmed(call: TestCall, caller: TestUa, res: SipResponse): Promise<SipResponse> {
  if (res.status < 200) res = await caller.waitResponse(call.callId, 'INVITE', (s) => s === 200);
  call.learn(res);
  return res;
}

/** alice (over `callerTransport`) calls bob (over `calleeTransport`), both registered; bob answers 200. */
async function answeredCall(callerTransport: 'udp' | 'tcp' | 'tls', calleeTransport: 'udp' | 'tcp' | 'tls') {
  const alice = await ua('alice', callerTransport);
  const bob = await ua('bob', calleeTransport);
  expect((await alice.register()).status).toBe(200);
  expect((await bob.register()).status).toBe(200);
  const call = new TestCall(alice, 'bob');
  const calleeP = answerIncoming(bob, 200, 'OK');
  const res = await call.invite();
  const inv = await calleeP;
  await confirmed(call, alice, res);
  return { alice, bob, call, inv };
}

/** ACKs the 2xx, then the caller hangs up; the callee answers the BYE with 200. */
async function ackAndHangUp(call: TestCall, callee: TestUa): Promise<void> {
  call.ack2xx();
  await callee.waitRequest('ACK', 5000, call.callId);
  const byeP = callee.waitRequest('BYE', 5000, call.callId).then((bye) => callee.send(callee.response(bye, 200, 'OK')));
  expect((await call.bye()).status).toBe(200);
  await byeP;
}

async function answerIncoming(callee: TestUa, final: number, reason: string, opts: { ring?: boolean } = {}) {
  const inv = await callee.waitRequest('INVITE');
  const toTag = 'callee1';
  callee.send(callee.response(inv, 100, 'Trying'));
  if (opts.ring !== false) callee.send(callee.response(inv, 180, 'Ringing', { toTag }));
  if (final) callee.send(callee.response(inv, final, reason, { toTag, ...(final < 300 ? { body: SAMPLE_SDP(41000) } : {}) }));
  return inv;
}

describe('tandem start: registrar and digest auth', () => {
  it('registers with digest (401 then 200 listing the binding with its expiry)', async () => {
    const alice = await ua('alice');
    const res = await alice.register(600);
    expect(res.status).toBe(200);
    const c = res.getAll('Contact');
    expect(c.length).toBe(1);
    expect(c[0]).toContain(`127.0.0.1:${alice.port}`);
    expect(Number(/expires=(\d+)/.exec(c[0]!)?.[1])).toBeGreaterThan(590);
  });

  it('refuses a wrong password (challenged again, not registered)', async () => {
    const u = await ua('carol');
    const res = await u.register(600, { password: 'wrong' });
    expect(res.status).toBe(401);
  });

  it('answers 423 with Min-Expires to a too brief registration', async () => {
    const u = await ua('dave');
    const res = await u.register(1);
    expect(res.status).toBe(423);
    expect(res.get('Min-Expires')).toBe('2');
  });

  it('gives stale=true for an expired nonce with a correct response', async () => {
    const u = await ua('erin');
    const uri = `sip:${DOMAIN}`;
    const mk = (cseq: number, auth?: string) =>
      u.request({ method: 'REGISTER', uri, callId: 'stale-test', cseq, fromTag: 'x1', to: u.aor, headers: ['Expires: 600', ...(auth ? [`Authorization: ${auth}`] : [])] });
    u.send(mk(1));
    const ch = await u.waitResponse('stale-test', 'REGISTER');
    expect(ch.status).toBe(401);
    await new Promise((r) => setTimeout(r, 3200));
    u.send(mk(2, u.answer(ch, 'WWW-Authenticate', 'REGISTER', uri)));
    const res = await u.waitResponse('stale-test', 'REGISTER');
    expect(res.status).toBe(401);
    expect(res.getAll('WWW-Authenticate').join(' ')).toMatch(/stale=true/i);
    // A fresh nonce works.
    u.send(mk(3, u.answer(res, 'WWW-Authenticate', 'REGISTER', uri)));
    expect((await u.waitResponse('stale-test', 'REGISTER')).status).toBe(200);
  });

  it('lets a registration expire', async () => {
    const u = await ua('frank');
    expect((await u.register(2)).status).toBe(200);
    const caller = await ua('alice');
    await new Promise((r) => setTimeout(r, 3500));
    const call = new TestCall(caller, 'frank');
    const res = await call.invite();
    expect(res.status).toBe(480);
  });
});

describe('tandem start: calls through the proxy', () => {
  it('alice calls bob: ringing, answer, ACK, BYE (Record-Route, 100 Trying)', async () => {
    const alice = await ua('alice');
    const bob = await ua('bob');
    expect((await alice.register()).status).toBe(200);
    expect((await bob.register()).status).toBe(200);
    const call = new TestCall(alice, 'bob');
    const calleeP = answerIncoming(bob, 200, 'OK');
    const first = await call.invite();
    const inv = await calleeP;
    expect(inv.getAll('Record-Route').length).toBe(1);
    expect(inv.get('Proxy-Authorization')).toBeUndefined();
    expect(inv.uri).toContain(`127.0.0.1:${bob.port}`);
    const statuses = [first.status];
    let final: SipResponse = first;
    if (first.status < 200) {
      final = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200);
      statuses.push(200);
    }
    expect(statuses).toContain(180);
    expect(alice.received.some((m) => !m.isRequest() && (m as SipResponse).status === 100 && m.callId === call.callId)).toBe(true);
    call.learn(final);
    expect(call.routeSet.length).toBe(1);
    await ackAndHangUp(call, bob);
  });

  it('a 2xx the callee sends again after the answer reaches the caller again (RFC 6026 Accepted), then the call ends as usual', async () => {
    const { alice, bob, call, inv } = await answeredCall('udp', 'udp');
    // bob did not hear an ACK yet and retransmits his 200 (§13.3.1.4): same branch, same To tag
    bob.send(bob.response(inv, 200, 'OK', { toTag: 'callee1', body: SAMPLE_SDP(41000) }));
    const again = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200, 3000);
    expect(again.toTag).toBe('callee1');
    expect(again.getAll('Via').length).toBe(1); // ours stripped
    expect(again.getAll('Record-Route').length).toBe(1);
    await ackAndHangUp(call, bob);
  });

  it('CANCEL before answer: callee gets CANCEL, caller gets 487', async () => {
    const alice = await ua('alice');
    const bob = await ua('bob');
    await alice.register();
    await bob.register();
    const call = new TestCall(alice, 'bob');
    const calleeP = answerIncoming(bob, 0, '');
    const first = await call.invite();
    expect(first.status).toBe(180);
    const inv = await calleeP;
    call.cancel();
    expect((await alice.waitResponse(call.callId, 'CANCEL')).status).toBe(200);
    const cancel = await bob.waitRequest('CANCEL', 5000, inv.callId);
    bob.send(bob.response(cancel, 200, 'OK'));
    bob.send(bob.response(inv, 487, 'Request Terminated', { toTag: 'callee1' }));
    const fin = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 300);
    expect(fin.status).toBe(487);
    call.ackNon2xx(fin);
  });

  it('486 busy is relayed to the caller', async () => {
    const alice = await ua('alice');
    const bob = await ua('bob');
    await alice.register();
    await bob.register();
    const call = new TestCall(alice, 'bob');
    void answerIncoming(bob, 486, 'Busy Here');
    let res = await call.invite();
    if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 300);
    expect(res.status).toBe(486);
    call.ackNon2xx(res);
  });

  it('callee not registered: 480; unknown user: 404; INVITE without credentials: 407', async () => {
    const alice = await ua('alice');
    await alice.register();
    const c1 = new TestCall(alice, 'dave');
    expect((await c1.invite()).status).toBe(480);
    const c2 = new TestCall(alice, 'nobody');
    expect((await c2.invite()).status).toBe(404);
    const c3 = new TestCall(alice, 'bob');
    const r = await c3.invite({ noAuth: true });
    expect(r.status).toBe(407);
    expect(r.getAll('Proxy-Authenticate').some((h) => /algorithm=SHA-256/.test(h))).toBe(true);
    expect(r.getAll('Proxy-Authenticate').some((h) => /algorithm=MD5/.test(h))).toBe(true);
  });

  it('TCP caller to UDP callee gets a double Record-Route', async () => {
    const { call, inv, bob } = await answeredCall('tcp', 'udp');
    const rr = inv.getAll('Record-Route');
    expect(rr.length).toBe(2);
    expect(rr[0]).not.toContain('transport=tcp');
    expect(rr[1]).toContain('transport=tcp');
    expect(call.routeSet.length).toBe(2);
    await ackAndHangUp(call, bob);
  });

  it('UDP caller to a TCP callee: INVITE and in-dialog requests go over the callee\'s connection', async () => {
    const { call, inv, bob } = await answeredCall('udp', 'tcp');
    expect(inv.topVia.transport).toBe('TCP');
    await ackAndHangUp(call, bob);
  });

  it('TLS caller to UDP callee: double Record-Route, answer and BYE over TLS', async () => {
    const { call, inv, bob } = await answeredCall('tls', 'udp');
    const rr = inv.getAll('Record-Route');
    expect(rr.length).toBe(2);
    expect(rr[1]).toContain('transport=tls');
    await ackAndHangUp(call, bob);
  });

  it('NAT: a UA advertising a private address is reached over its flow, in dialog too (both directions)', async () => {
    const nat = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: tandem.ports['udp']! }, user: 'carol', password: 'carol-secret', domain: DOMAIN, advertise: '10.99.0.1:5060' });
    uas.push(nat);
    const bob = await ua('bob');
    expect((await nat.register()).status).toBe(200);
    expect((await bob.register()).status).toBe(200);
    // bob calls the NATed UA.
    const call = new TestCall(bob, 'carol');
    const calleeP = (async () => {
      const inv = await nat.waitRequest('INVITE');
      nat.send(nat.response(inv, 200, 'OK', { toTag: 'n1', body: SAMPLE_SDP(41000) }));
      return inv;
    })();
    let res = await call.invite();
    await calleeP;
    res = await confirmed(call, bob, res);
    expect(call.remoteTarget).toContain('10.99.0.1');
    await ackAndHangUp(call, nat);
    // The NATed UA calls bob; bob hangs up towards the NATed UA.
    const c2 = new TestCall(nat, 'bob');
    const inv2P = bob.waitRequest('INVITE');
    const first = c2.invite();
    const inv2 = await inv2P;
    bob.send(bob.response(inv2, 200, 'OK', { toTag: 'b9', body: SAMPLE_SDP(41000) }));
    let r2 = await first;
    if (r2.status < 200) r2 = await nat.waitResponse(c2.callId, 'INVITE', (s) => s === 200);
    c2.learn(r2);
    c2.ack2xx();
    await bob.waitRequest('ACK', 5000, c2.callId);
    const rr = inv2.getAll('Record-Route');
    const contact = /<([^>]+)>/.exec(inv2.get('Contact') ?? '')?.[1] ?? '';
    expect(contact).toContain('10.99.0.1');
    bob.send(
      [
        `BYE ${contact} SIP/2.0`,
        `Via: ${bob.via()}`,
        'Max-Forwards: 70',
        ...rr.map((r) => `Route: ${r}`),
        `From: ${inv2.get('To')};tag=b9`,
        `To: ${inv2.get('From')}`,
        `Call-ID: ${inv2.callId}`,
        'CSeq: 1 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    const bye2 = await nat.waitRequest('BYE', 5000, c2.callId);
    nat.send(nat.response(bye2, 200, 'OK'));
    expect((await bob.waitResponse(c2.callId, 'BYE')).status).toBe(200);
  });

  it('survives malformed requests and keeps serving', async () => {
    const u = await ua('alice');
    const port = tandem.ports['udp']!;
    const h = (callId: string, method = 'INVITE') => [`Via: ${u.via()}`, 'Max-Forwards: 70', `From: <sip:alice@${DOMAIN}>;tag=z`, `To: <sip:bob@${DOMAIN}>`, `Call-ID: ${callId}`, `CSeq: 1 ${method}`];
    const bad = [
      ['REGISTER sip:' + DOMAIN + ' SIP/2.0', ...h('bad1', 'REGISTER'), 'Contact: <sip:a@h>;expires=abc;q=9', 'Authorization: Digest username="alice", realm=', 'Content-Length: 0', '', ''],
      ['REGISTER sip:' + DOMAIN + ' SIP/2.0', ...h('bad2', 'REGISTER'), 'Contact: *', 'Expires: 99999999999999', 'Content-Length: 0', '', ''],
      [`INVITE sip:bob@${DOMAIN} SIP/2.0`, ...h('bad3'), 'Route: <sip:[::1:5060;lr>', 'Proxy-Authorization: Digest nonce="x"', 'Content-Length: 0', '', ''],
      [`INVITE sip:bob@${DOMAIN} SIP/2.0`, ...h('bad4'), 'Proxy-Authorization: Digest username="alice", realm="example.test", nonce="AAAA", uri="x", response="y", nc=zz, qop=auth', 'Content-Length: 0', '', ''],
      [`BYE sip:bob@10.255.255.1;transport=sctp SIP/2.0`, ...h('bad5', 'BYE').map((l) => (l.startsWith('To:') ? l + ';tag=q' : l)), 'Route: <sip:127.0.0.1:' + port + ';lr>', 'Content-Length: 0', '', ''],
      ['garbage \x00\x01 not sip at all', ''],
    ];
    for (const lines of bad) u.send(lines.join('\r\n'));
    await new Promise((r) => setTimeout(r, 300));
    u.send(u.request({ method: 'OPTIONS', uri: `sip:127.0.0.1:${port}`, callId: 'alive', cseq: 1, fromTag: 'o2', to: `sip:127.0.0.1:${port}` }));
    expect((await u.waitResponse('alive', 'OPTIONS')).status).toBe(200);
    expect(tandem.child.exitCode).toBeNull();
  });

  it('answers OPTIONS to itself and 483 when Max-Forwards is exhausted', async () => {
    const u = await ua('alice');
    u.send(u.request({ method: 'OPTIONS', uri: `sip:127.0.0.1:${tandem.ports['udp']}`, callId: 'opt1', cseq: 1, fromTag: 'o1', to: `sip:127.0.0.1:${tandem.ports['udp']}` }));
    const r = await u.waitResponse('opt1', 'OPTIONS');
    expect(r.status).toBe(200);
    const t = u.request({ method: 'MESSAGE', uri: `sip:bob@${DOMAIN}`, callId: 'mf0', cseq: 1, fromTag: 'm1', to: `sip:bob@${DOMAIN}` }).replace('Max-Forwards: 70', 'Max-Forwards: 0');
    u.send(t);
    expect((await u.waitResponse('mf0', 'MESSAGE')).status).toBe(483);
    // Not an open relay: foreign From to a foreign domain.
    const relay = u.request({ method: 'MESSAGE', uri: 'sip:x@elsewhere.example', callId: 'relay1', cseq: 1, fromTag: 'r1', to: 'sip:x@elsewhere.example' }).replace(`From: <${u.aor}>`, 'From: <sip:spam@spam.example>');
    u.send(relay);
    expect((await u.waitResponse('relay1', 'MESSAGE')).status).toBe(403);
  });
});
