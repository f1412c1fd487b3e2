import { describe, expect, it } from 'vitest';
import { TimerWheel } from '../../../../src/util/timer-wheel.js';
import { DigestAuthenticator } from '../../../../src/sip/auth/digest-server.js';
import { createResponse } from '../../../../src/sip/message/builders.js';
import { parseMessage } from '../../../../src/sip/message/parser.js';
import type { SipRequest } from '../../../../src/sip/message/sip-message.js';
import { InMemoryNetwork, InMemoryTransport } from '../../../../src/sip/transport/in-memory-transport.js';
import { TransactionLayer } from '../../../../src/sip/transaction/transaction-layer.js';
import { isLocalResponse, UserAgent, type IncomingCall } from '../../../../src/sip/ua/user-agent.js';

function setup() {
  const wheel = new TimerWheel({ manual: true, tickMs: 10 });
  const net = new InMemoryNetwork();
  net.sync = true;
  net.recordTraffic = true;
  const mk = (addr: string, opts = {}) =>
    new UserAgent(new TransactionLayer(new InMemoryTransport(net, addr, 5060), { wheel, autoTryingMs: -1 }), opts);
  const alice = mk('10.0.0.1', { aor: 'sip:alice@example.com', credentials: { username: 'alice', password: 'secret' } });
  const bob = mk('10.0.0.2', { aor: 'sip:bob@example.com' });
  const sent = (from: string, re: RegExp) =>
    net.traffic.filter((t) => t.from === from && re.test(t.data.toString('latin1', 0, 30))).map((t) => (parseMessage(t.data) as { value: SipRequest }).value);
  return { wheel, net, alice, bob, sent };
}

describe('UserAgent', () => {
  it('call: ring, answer, ACK for 2xx built per §13.2.2.4, BYE; nothing left behind', async () => {
    const s = setup();
    let incoming: IncomingCall | undefined;
    s.bob.onInvite((call) => {
      incoming = call;
      call.ring();
    });
    const call = s.alice.invite({ uri: 'sip:bob@10.0.0.2', sdp: 'v=0\r\n' });
    expect(call.provisionals.map((r) => r.status)).toEqual([180]);
    expect(incoming!.sdp).toBe('v=0\r\n');
    const answered = incoming!.answer('v=0 answer\r\n');
    const res = await call.final;
    expect(res.status).toBe(200);
    const d = await answered;
    expect(call.dialog!.remoteTag).toBe(d.localTag);
    const [ack] = s.sent('10.0.0.1:5060', /^ACK/);
    expect(ack!.cseq).toEqual({ seq: 1, method: 'ACK' });
    expect(ack!.uri).toBe('sip:bob@10.0.0.2:5060'); // remote target = Contact of the 2xx
    expect(ack!.toTag).toBe(d.localTag);
    expect(ack!.topVia.branch).not.toBe(call.request.topVia.branch);
    let byeSeen = false;
    d.onBye = () => (byeSeen = true);
    const byeRes = await call.bye();
    expect(byeRes.status).toBe(200);
    expect(byeSeen).toBe(true);
    const [bye] = s.sent('10.0.0.1:5060', /^BYE/);
    expect(bye!.cseq).toEqual({ seq: 2, method: 'BYE' });
    expect(s.alice.dialogCount + s.bob.dialogCount).toBe(0);
    s.wheel.advance(40_000);
    expect(s.alice.layer.size + s.bob.layer.size).toBe(0);
    expect(s.wheel.size).toBe(0);
  });

  it('in-dialog requests use the route set from Record-Route (reversed on the UAC side)', async () => {
    const s = setup();
    // Bob sees Record-Route as a proxy would have added it.
    s.bob.onInvite((call) => void call.answer());
    const inv = s.alice.invite({ uri: 'sip:bob@10.0.0.2' });
    await inv.final;
    const bobDialog = [...Array(1)].map(() => inv.dialog!)[0]!;
    void bobDialog;
    // Build a UAC dialog from a 2xx carrying Record-Route to check the route logic.
    const ok = createResponse(inv.request, 200, 'OK', {
      toTag: 'rr',
      headers: [
        ['Record-Route', '<sip:p2.example.com;lr>'],
        ['Record-Route', '<sip:p1.example.com;lr>'],
        ['Contact', '<sip:bob@10.0.0.2:5070>'],
      ],
    });
    const d = s.alice.createUacDialog(inv.request, ok, { transport: 'udp', address: '10.0.0.2', port: 5060 });
    const { req, target } = d.buildRequest('INFO');
    expect(req.uri).toBe('sip:bob@10.0.0.2:5070');
    expect(req.getAll('Route')).toEqual(['<sip:p1.example.com;lr>', '<sip:p2.example.com;lr>']);
    expect(target).toMatchObject({ address: 'p1.example.com', port: 5060 });
    d.terminateLocally();
  });

  it('retransmits the 2xx until the ACK arrives (§13.3.1.4) and re-ACKs retransmitted 2xx', async () => {
    const s = setup();
    let drop = 2; // lose the first two ACKs
    s.net.filter = (data) => !(data.toString('latin1', 0, 4) === 'ACK ' && drop-- > 0);
    s.bob.onInvite((call) => void call.answer());
    const call = s.alice.invite({ uri: 'sip:bob@10.0.0.2' });
    expect((await call.final).status).toBe(200);
    s.wheel.advance(500);
    s.wheel.advance(1000);
    expect(s.sent('10.0.0.1:5060', /^ACK/).length).toBe(3);
    expect(s.sent('10.0.0.2:5060', /^SIP\/2.0 200/).length).toBe(3);
    await call.bye();
    s.wheel.advance(40_000);
    expect(s.alice.layer.size + s.bob.layer.size).toBe(0);
  });

  it('CANCEL before answer: 487 to the caller, 200 to the CANCEL, callee told', async () => {
    const s = setup();
    let cancelled = false;
    s.bob.onInvite((call) => {
      call.ring();
      call.onCancel(() => (cancelled = true));
    });
    const call = s.alice.invite({ uri: 'sip:bob@10.0.0.2' });
    call.cancel();
    expect((await call.final).status).toBe(487);
    expect(cancelled).toBe(true);
    s.wheel.advance(40_000);
    expect(s.alice.layer.size + s.bob.layer.size).toBe(0);
  });

  it('timeouts come back as a local 408 (§8.1.3.1)', async () => {
    const s = setup();
    s.net.filter = () => false;
    const p = s.alice.request({ method: 'OPTIONS', uri: 'sip:bob@10.0.0.2' });
    s.wheel.advance(64 * 500);
    const res = await p;
    expect(res.status).toBe(408);
    expect(isLocalResponse(res)).toBe(true);
  });

  it('REGISTER answers a digest challenge once, with the next CSeq and the same Call-ID', async () => {
    const s = setup();
    const auth = new DigestAuthenticator({
      realm: 'example.com',
      secret: 'k',
      users: { lookup: (u) => (u === 'alice' ? { username: 'alice', password: 'secret' } : undefined) },
    });
    const seen: SipRequest[] = [];
    s.bob.setRequestHandler((req, tx) => {
      seen.push(req);
      const v = auth.verify(req.getAll('Authorization'), req.method);
      if (v.ok) tx.respond(createResponse(req, 200, 'OK', { headers: [['Contact', req.get('Contact')!]] }));
      else tx.respond(createResponse(req, 401, 'Unauthorized', { headers: auth.challenges().map((c) => ['WWW-Authenticate', c] as [string, string]) }));
    });
    const res = await s.alice.register({ registrar: 'sip:10.0.0.2', expiresSec: 600 });
    expect(res.status).toBe(200);
    expect(seen.length).toBe(2);
    expect(seen[1]!.callId).toBe(seen[0]!.callId);
    expect(seen[1]!.cseq.seq).toBe(seen[0]!.cseq.seq + 1);
    expect(seen[1]!.get('Expires')).toBe('600');
    const again = await s.alice.register({ registrar: 'sip:10.0.0.2', expiresSec: 0 });
    expect(again.status).toBe(200);
    expect(seen[3]!.cseq.seq).toBeGreaterThan(seen[1]!.cseq.seq);
    expect(seen[3]!.callId).toBe(seen[0]!.callId);
  });

  it('INVITE answers a 407 once: the ICT ACKs the 407, the new INVITE has CSeq 2 and Proxy-Authorization', async () => {
    const s = setup();
    const auth = new DigestAuthenticator({
      realm: 'proxy.test',
      secret: 'k',
      users: { lookup: (u) => (u === 'alice' ? { username: 'alice', password: 'secret' } : undefined) },
    });
    const invites: SipRequest[] = [];
    s.bob.onInvite((call) => {
      invites.push(call.request);
      const v = auth.verify(call.request.getAll('Proxy-Authorization'), 'INVITE');
      if (v.ok) void call.answer();
      else {
        call.tx.respond(createResponse(call.request, 407, undefined, { toTag: call.localTag, headers: auth.challenges().map((c) => ['Proxy-Authenticate', c] as [string, string]) }));
      }
    });
    const call = s.alice.invite({ uri: 'sip:bob@10.0.0.2' });
    expect((await call.final).status).toBe(200);
    expect(invites.map((r) => r.cseq.seq)).toEqual([1, 2]);
    expect(invites[1]!.callId).toBe(invites[0]!.callId);
    expect(invites[1]!.fromTag).toBe(invites[0]!.fromTag);
    const acks = s.sent('10.0.0.1:5060', /^ACK/);
    expect(acks.map((a) => a.cseq.seq)).toEqual([1, 2]); // ACK for the 407 (tx), then for the 200 (UA)
    await call.bye();
  });

  it('answers in-dialog requests for unknown dialogs with 481 and out-of-order CSeq with 500', async () => {
    const s = setup();
    s.bob.onInvite((call) => void call.answer());
    const call = s.alice.invite({ uri: 'sip:bob@10.0.0.2' });
    await call.final;
    expect((await call.dialog!.request('INFO')).status).toBe(200);
    call.dialog!.localSeq = 0; // next request goes out with CSeq 1 < remote seq
    expect((await call.dialog!.request('INFO')).status).toBe(500);
    await call.bye();
    // Bob forgets the next dialog without a BYE: Alice's in-dialog request gets 481.
    let inc: IncomingCall | undefined;
    s.bob.onInvite((c) => {
      inc = c;
      void c.answer();
    });
    const stale = s.alice.invite({ uri: 'sip:bob@10.0.0.2' });
    await stale.final;
    inc!.dialog!.terminateLocally();
    expect((await stale.dialog!.request('INFO')).status).toBe(481);
  });
});
