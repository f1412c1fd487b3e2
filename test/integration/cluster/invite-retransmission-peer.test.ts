/**
 * An INVITE retransmission that reaches another node than the one that took the INVITE: the
 * address moved (keepalived moves it in ~50 ms, long before any node notices its peer's death
 * from heartbeats), or the caller's first copy was answered through the peer. Its credentials
 * are already spent in the cluster; it must not be challenged again (a caller answering that 407
 * sends a new INVITE for a call already set up, which is refused, and the call fails). While the
 * callee rings it goes out again on the peer's branch; once answered it is absorbed.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignallingNode } from '../../../src/signalling/signalling-node.js';
import { parseMessage } from '../../../src/sip/message/parser.js';
import type { SipRequest, SipResponse } from '../../../src/sip/message/sip-message.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import { freePort, respCommand, SingleRedis, waitFor } from '../state/redis-harness.js';

const DOMAIN = 'retrans.test';
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\n');
const ADDR = { a: '127.0.0.4', b: '127.0.0.5' } as const;

let redis: SingleRedis;
let port: number;
const nodes = new Map<'a' | 'b', TandemProcess>();
const uas: TestUa[] = [];

beforeAll(async () => {
  redis = await SingleRedis.start();
  port = await freePort();
  // No VIP: nothing tells node b that node a died, as with keepalived before the heartbeat lapses.
  for (const n of ['a', 'b'] as const) {
    nodes.set(n, await startTandem(['--node-id', `sip-${n}`, '--sip', `udp:${ADDR[n]}:${port}`, '--redis', redis.url, '--domain', DOMAIN, '--users', users], 30_000));
  }
}, 60_000);

afterAll(async () => {
  for (const u of uas) u.close();
  for (const t of nodes.values()) await t.stop('SIGKILL');
  await redis?.stop();
});

async function ua(user: string, via: 'a' | 'b', password = `${user}-secret`): Promise<TestUa> {
  const u = await TestUa.create({ transport: 'udp', proxy: { host: ADDR[via], port }, user, password, domain: DOMAIN });
  uas.push(u);
  return u;
}

/** Sends `text` through node `to` from the caller's own socket, as after an address move. */
function sendVia(u: TestUa, to: 'a' | 'b', text: string): void {
  u.opts.proxy.host = ADDR[to];
  u.send(text);
}

const responsesTo = (u: TestUa, call: TestCall, cseq: number) =>
  u.received.filter((m): m is SipResponse => !m.isRequest() && m.callId === call.callId && m.cseq.method === 'INVITE' && m.cseq.seq === cseq);
const invitesAt = (u: TestUa, call: TestCall) => u.received.filter((m): m is SipRequest => m.isRequest() && (m as SipRequest).method === 'INVITE' && m.callId === call.callId);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an INVITE repeated through another node of the cluster', () => {
  let bob: TestUa;

  beforeAll(async () => {
    bob = await ua('bob', 'a');
    expect((await bob.register()).status).toBe(200);
  });

  it('once answered through node a, its copy at node b is absorbed: no 407, nothing reaches the callee; a new INVITE on that Call-ID is refused', async () => {
    const alice = await ua('alice', 'a');
    const call = new TestCall(alice, 'bob');
    const inviteAtBob = bob.waitRequest('INVITE', 5000, call.callId);
    const ringing = call.invite({ sdp: SAMPLE_SDP(43000) });
    const inv = await inviteAtBob;
    bob.send(bob.response(inv, 200, 'OK', { toTag: 'b1', body: SAMPLE_SDP(46000) }));
    expect((await ringing).status).toBe(200);
    await waitFor('the confirmed dialog in Redis', async () => (String(await respCommand(redis.port, ['HGET', `tandem:tandem:dlg:${call.callId}`, 'rec'])).includes('"confirmed"') ? true : undefined), 5000, 10);
    const answeredCseq = call.cseq;

    // The caller's retransmission (same bytes, same spent credentials) reaches node b.
    for (let i = 0; i < 3; i++) {
      sendVia(alice, 'b', call.inviteText);
      await sleep(300);
    }
    expect(responsesTo(alice, call, answeredCseq).map((r) => r.status).filter((s) => s !== 100)).toEqual([200]);
    // The callee saw the one INVITE it answered.
    expect(invitesAt(bob, call)).toHaveLength(1);

    // Same Call-ID and From-tag, another CSeq, wrong password: not a retransmission, challenged.
    const mallory = await ua('alice', 'b', 'wrong');
    const forged = mallory.request({ method: 'INVITE', uri: call.target, callId: call.callId, cseq: answeredCseq + 5, fromTag: call.fromTag, to: call.target, body: SAMPLE_SDP(43100) });
    const challenged = mallory.waitResponse(call.callId, 'INVITE');
    mallory.send(forged);
    expect((await challenged).status).toBe(407);

    // The caller itself, a new INVITE (new CSeq, fresh credentials) on the answered Call-ID at
    // the node that holds the dialog: refused, as before.
    alice.opts.proxy.host = ADDR.a;
    call.cseq++;
    const again = await call.invite({ sdp: SAMPLE_SDP(43000) });
    expect([again.status, again.reason]).toEqual([403, 'Call-ID In Use']);
    expect(invitesAt(bob, call)).toHaveLength(1);
  }, 30_000);

  it('while ringing through node a, when a dies its retransmission at node b goes out again on a\'s branch and the 200 comes back through b; a copy with another SDP does not', async () => {
    const alice = await ua('alice', 'a');
    const call = new TestCall(alice, 'bob');
    const inviteAtBob = bob.waitRequest('INVITE', 5000, call.callId);
    const ringing = call.invite({ sdp: SAMPLE_SDP(43200) });
    const first = await inviteAtBob;
    bob.send(bob.response(first, 180, 'Ringing', { toTag: 'b2' }));
    expect((await ringing).status).toBe(180);
    // A second call ringing through a, whose copy below carries another SDP.
    const other = new TestCall(alice, 'bob');
    const otherAtBob = bob.waitRequest('INVITE', 5000, other.callId);
    const otherRinging = other.invite({ sdp: SAMPLE_SDP(43400) });
    bob.send(bob.response(await otherAtBob, 180, 'Ringing', { toTag: 'b3' }));
    expect((await otherRinging).status).toBe(180);
    for (const c of [call, other]) {
      await waitFor('the INVITE\'s record in Redis', async () => (String(await respCommand(redis.port, ['HGET', `tandem:tandem:dlg:${c.callId}`, 'rec'])).includes('"branches"') ? true : undefined), 5000, 10);
    }
    await nodes.get('a')!.stop('SIGKILL');

    // A copy of the other call's INVITE (same branch, Call-ID, CSeq, spent credentials) with
    // another SDP, as someone who saw it could send: it would re-point the call's media, so it is
    // not taken as a copy; challenged like any new call, it reaches no one.
    const tampered = other.inviteText.replace('m=audio 43400', 'm=audio 43499');
    expect(tampered).not.toBe(other.inviteText);
    const tamperedP = alice.waitResponse(other.callId, 'INVITE', (s) => s === 407, 5000);
    sendVia(alice, 'b', tampered);
    expect((await tamperedP).status).toBe(407);
    await sleep(200);
    expect(invitesAt(bob, other)).toHaveLength(1);

    // At once (no heartbeat has lapsed yet): the caller's Timer A copy reaches node b.
    const againAtBob = bob.waitRequest('INVITE', 5000, call.callId);
    sendVia(alice, 'b', call.inviteText);
    const again = await againAtBob;
    expect(again.topVia.branch).toBe(first.topVia.branch);

    const ok = alice.waitResponse(call.callId, 'INVITE', (s) => s === 200, 5000);
    bob.send(bob.response(again, 200, 'OK', { toTag: 'b2', body: SAMPLE_SDP(46200) }));
    expect((await ok).status).toBe(200);
    expect(new Set(invitesAt(bob, call).map((m) => m.topVia.branch))).toEqual(new Set([first.topVia.branch]));
    expect(responsesTo(alice, call, call.cseq).filter((r) => r.status >= 300)).toHaveLength(0);
  }, 30_000);
});

describe('an INVITE repeating the one of a call adopted from a dead peer (auth off)', () => {
  it('is absorbed when Call-ID, From-tag and CSeq are the call\'s; another CSeq is refused with 403', async () => {
    const node = new SignallingNode({ listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }], domains: [DOMAIN], auth: { enabled: false, realm: DOMAIN, secret: 'unused' } });
    const [lp] = await node.start();
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const got: SipResponse[] = [];
    sock.on('message', (b) => {
      const m = parseMessage(b);
      if (m.ok && !m.value.isRequest()) got.push(m.value as SipResponse);
    });
    try {
      // What the claimer hands over when a peer died with the call answered.
      node.dialogs.adopt({ id: 'adopted-1', callId: 'adopted-1', fromTag: 'ft1', toTag: 'tt1', state: 'confirmed', cseq: 7, createdAtMs: Date.now(), updatedAtMs: Date.now(), owner: 'peer', creator: 'peer' });
      const invite = (cseq: number, branch: string) =>
        [
          `INVITE sip:bob@${DOMAIN} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=${branch};rport`,
          'Max-Forwards: 70',
          `From: <sip:carol@elsewhere.test>;tag=ft1`,
          `To: <sip:bob@${DOMAIN}>`,
          'Call-ID: adopted-1',
          `CSeq: ${cseq} INVITE`,
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n');
      sock.send(invite(7, 'z9hG4bKrepeat1'), lp!.port, '127.0.0.1');
      sock.send(invite(8, 'z9hG4bKnewcseq'), lp!.port, '127.0.0.1');
      await waitFor('the answer to the new CSeq', async () => (got.some((r) => r.cseq.seq === 8) ? true : undefined), 3000, 10);
      await sleep(300);
      expect(got.map((r) => [r.cseq.seq, r.status, r.reason])).toEqual([[8, 403, 'Call-ID In Use']]);
    } finally {
      sock.close();
      await node.shutdown(0);
    }
  });
});
