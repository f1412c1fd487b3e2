import { describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../../../src/util/metrics.js';
import { TimerWheel } from '../../../../src/util/timer-wheel.js';
import { createRequest, createResponse } from '../../../../src/sip/message/builders.js';
import { parseMessage } from '../../../../src/sip/message/parser.js';
import type { SipRequest, SipResponse } from '../../../../src/sip/message/sip-message.js';
import { InMemoryNetwork, InMemoryTransport } from '../../../../src/sip/transport/in-memory-transport.js';
import type { Endpoint, Source } from '../../../../src/sip/transport/types.js';
import { InviteClientTransaction, TransactionLayer } from '../../../../src/sip/transaction/transaction-layer.js';
import type { ServerTransaction, TransactionUser } from '../../../../src/sip/transaction/types.js';

const T1 = 500;

function setup(opts: { autoTryingMs?: number; lingerMs?: number } = {}) {
  const wheel = new TimerWheel({ manual: true, tickMs: 10 });
  const net = new InMemoryNetwork();
  net.sync = true;
  net.recordTraffic = true;
  const a = new InMemoryTransport(net, '10.0.0.1', 5060);
  const b = new InMemoryTransport(net, '10.0.0.2', 5060);
  const linger = opts.lingerMs === undefined ? {} : { lingerMs: opts.lingerMs };
  const uac = new TransactionLayer(a, { wheel, autoTryingMs: opts.autoTryingMs ?? -1, ...linger });
  const uas = new TransactionLayer(b, { wheel, autoTryingMs: opts.autoTryingMs ?? -1, ...linger });
  const seen: { req: SipRequest; tx: ServerTransaction | undefined }[] = [];
  let onReq: (req: SipRequest, tx: ServerTransaction | undefined, src: Source) => void = () => {};
  const tu: TransactionUser = {
    onRequest(req, tx, src) {
      seen.push({ req, tx });
      onReq(req, tx, src);
    },
  };
  uas.setUser(tu);
  uac.setUser({ onRequest() {} });
  const target: Endpoint = { transport: 'udp', address: '10.0.0.2', port: 5060 };
  /** Times (fake clock) at which messages matching `re` crossed the network from `from`. */
  const sends = (from: string, re: RegExp) =>
    net.traffic.filter((t) => t.from === from && re.test(t.data.toString('latin1', 0, 40))).length;
  return {
    wheel, net, a, b, uac, uas, seen, target, sends,
    handle(fn: typeof onReq) {
      onReq = fn;
    },
  };
}

function req(method: string, extra: [string, string][] = []): SipRequest {
  return createRequest({
    method,
    uri: 'sip:bob@10.0.0.2',
    from: '<sip:alice@10.0.0.1>',
    to: '<sip:bob@10.0.0.2>',
    cseq: 1,
    headers: extra,
  });
}

describe('non-INVITE transactions', () => {
  it('retransmits per Timer E (T1 doubling to T2) and times out with Timer F, then leaves nothing behind', () => {
    const s = setup();
    s.net.filter = () => false; // total loss
    let timedOut = 0;
    const times: number[] = [];
    s.net.filter = (data) => {
      times.push(s.wheel.now());
      void data;
      return false;
    };
    s.uac.sendRequest(req('OPTIONS'), s.target, { onTimeout: () => timedOut++ });
    s.wheel.advance(64 * T1 + 10);
    expect(times.slice(0, 7)).toEqual([0, 500, 1500, 3500, 7500, 11500, 15500]);
    expect(timedOut).toBe(1);
    expect(s.uac.size).toBe(0);
    expect(s.wheel.size).toBe(0);
  });

  it('server answers retransmissions with the final response, Timer J and K clean up', () => {
    const s = setup();
    let finals = 0;
    s.handle((r, tx) => tx!.respond(createResponse(r, 200)));
    // drop the first 200 so the client retransmits and the server re-sends its final
    let dropped = false;
    s.net.filter = (data) => {
      if (!dropped && data.toString('latin1', 0, 12) === 'SIP/2.0 200 ') {
        dropped = true;
        return false;
      }
      return true;
    };
    s.uac.sendRequest(req('OPTIONS'), s.target, { onFinal: () => finals++ });
    expect(s.seen.length).toBe(1);
    s.wheel.advance(500);
    expect(finals).toBe(1);
    expect(s.seen.length).toBe(1); // retransmission absorbed by the server transaction
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 200/)).toBe(2);
    s.wheel.advance(5000); // Timer K (T4)
    expect(s.uac.size).toBe(0);
    expect(s.uas.size).toBe(1); // Timer J = 64*T1
    s.wheel.advance(64 * T1);
    expect(s.uas.size).toBe(0);
  });

  it('provisional moves to Proceeding and Timer E continues at T2', () => {
    const s = setup();
    let prov = 0;
    let server: ServerTransaction | undefined;
    s.handle((r, tx) => {
      server = tx;
      tx!.respond(createResponse(r, 100));
    });
    const times: number[] = [];
    s.net.filter = (data) => {
      if (data.toString('latin1', 0, 7) === 'OPTIONS') times.push(s.wheel.now());
      return true;
    };
    const tx = s.uac.sendRequest(req('OPTIONS'), s.target, { onProvisional: () => prov++ });
    expect(tx.state).toBe('Proceeding');
    s.wheel.advance(9000);
    expect(times).toEqual([0, 500, 4500, 8500]);
    expect(prov).toBe(4); // each retransmission is answered with the 100 again, passed up in Proceeding
    server!.respond(createResponse(server!.request, 404));
    expect(tx.state).toBe('Completed');
  });

  it('reports transport errors to the TU and removes the transaction', async () => {
    const s = setup();
    s.a.failSends = true;
    const errors: Error[] = [];
    s.uac.sendRequest(req('OPTIONS'), s.target, { onTransportError: (e) => errors.push(e) });
    await new Promise((r) => setImmediate(r));
    expect(errors.length).toBe(1);
    expect(s.uac.size).toBe(0);
  });

  it('matches RFC 2543 requests (no magic cookie) and absorbs their retransmissions', () => {
    const s = setup();
    s.handle(() => {});
    const raw = Buffer.from(
      'MESSAGE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=old1\r\nFrom: <sip:a@x>;tag=1\r\n' +
        'To: <sip:bob@10.0.0.2>\r\nCall-ID: c2543\r\nCSeq: 7 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n',
    );
    const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
    for (let i = 0; i < 3; i++) s.uas.receive((parseMessage(raw) as { value: SipRequest }).value, src);
    expect(s.seen.length).toBe(1);
    s.seen[0]!.tx!.respond(createResponse(s.seen[0]!.req, 200));
    s.wheel.advance(64 * T1);
    expect(s.uas.size).toBe(0);
  });
});

describe('RFC 3261 §18.1.1 large requests', () => {
  it('goes over TCP (Via changed) above udpMaxRequestBytes and falls back to UDP when TCP fails', async () => {
    const wheel = new TimerWheel({ manual: true, tickMs: 10 });
    const net = new InMemoryNetwork();
    net.sync = true;
    const a = new InMemoryTransport(net, '10.0.0.1', 5060);
    const b = new InMemoryTransport(net, '10.0.0.2', 5060);
    const uac = new TransactionLayer(a, { wheel, udpMaxRequestBytes: 1300 });
    const uas = new TransactionLayer(b, { wheel });
    const got: { via: string; transport: string }[] = [];
    uas.setUser({
      onRequest(r, tx, src) {
        got.push({ via: r.topVia.transport, transport: src.transport });
        tx!.respond(createResponse(r, 200));
      },
    });
    const big = () => createRequest({ method: 'MESSAGE', uri: 'sip:bob@10.0.0.2', from: '<sip:a@10.0.0.1>', to: '<sip:bob@10.0.0.2>', body: Buffer.alloc(1400, 0x61), contentType: 'text/plain' });
    const finals: number[] = [];
    uac.sendRequest(big(), { transport: 'udp', address: '10.0.0.2', port: 5060 }, { onFinal: (r) => finals.push(r.status) });
    uac.sendRequest(req('MESSAGE'), { transport: 'udp', address: '10.0.0.2', port: 5060 }, { onFinal: (r) => finals.push(r.status) });
    expect(got).toEqual([{ via: 'TCP', transport: 'tcp' }, { via: 'UDP', transport: 'udp' }]);
    a.failSendsOver = 'tcp';
    uac.sendRequest(big(), { transport: 'udp', address: '10.0.0.2', port: 5060 }, { onFinal: (r) => finals.push(r.status) });
    await new Promise((r) => setImmediate(r));
    expect(got[2]).toEqual({ via: 'UDP', transport: 'udp' });
    expect(finals).toEqual([200, 200, 200]);
  });
});

describe('INVITE transactions', () => {
  it('RFC 2543 INVITE: retransmission absorbed, ACK matched by To tag of our response', () => {
    const s = setup();
    s.handle((r, tx) => tx?.respond(createResponse(r, 486, 'Busy Here', { toTag: 'srv486' })));
    const msg = (method: string, toTag = '') =>
      (parseMessage(Buffer.from(
        `${method} sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060\r\nFrom: <sip:a@x>;tag=1\r\n` +
          `To: <sip:bob@10.0.0.2>${toTag}\r\nCall-ID: c2543i\r\nCSeq: 3 ${method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
      )) as { value: SipRequest }).value;
    const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
    s.uas.receive(msg('INVITE'), src);
    s.uas.receive(msg('INVITE'), src);
    expect(s.seen.length).toBe(1);
    s.uas.receive(msg('ACK', ';tag=other'), src); // wrong To tag: not ours, goes to the TU
    expect(s.seen.length).toBe(2);
    s.uas.receive(msg('ACK', ';tag=srv486'), src);
    expect(s.seen.length).toBe(2);
    expect(s.seen[0]!.tx!.state).toBe('Confirmed');
  });

  it('non-2xx: client ACKs (same branch, To tag of the response), absorbs retransmissions, Timer D/I clean up', () => {
    const s = setup();
    const finals: SipResponse[] = [];
    s.handle((r, tx) => tx!.respond(createResponse(r, 486)));
    const tx = s.uac.sendRequest(req('INVITE'), s.target, { onFinal: (r) => finals.push(r) });
    expect(finals.map((r) => r.status)).toEqual([486]);
    const ack = s.net.traffic.find((t) => t.data.toString('latin1', 0, 4) === 'ACK ')!;
    const parsed = (parseMessage(ack.data) as { value: SipRequest }).value;
    expect(parsed.topVia.branch).toBe(tx.request.topVia.branch);
    expect(parsed.toTag).toBe(finals[0]!.toTag);
    expect(parsed.cseq).toEqual({ seq: 1, method: 'ACK' });
    expect(parsed.vias.length).toBe(1);
    expect(s.seen.length).toBe(1); // the ACK was absorbed by the server transaction
    const istState = s.seen[0]!.tx!.state;
    expect(istState).toBe('Confirmed');
    s.wheel.advance(5000); // Timer I
    expect(s.uas.size).toBe(0);
    s.wheel.advance(64 * T1); // Timer D
    expect(s.uac.size).toBe(0);
    expect(s.wheel.size).toBe(0);
  });

  it('server retransmits a non-2xx per Timer G until ACK, gives up at Timer H', () => {
    const s = setup();
    const times: number[] = [];
    s.net.filter = (data) => {
      const head = data.toString('latin1', 0, 12);
      if (head === 'SIP/2.0 486 ') times.push(s.wheel.now());
      return head !== 'SIP/2.0 486 '; // the client never sees the 486
    };
    let timeouts = 0;
    s.handle((r, tx) => {
      tx!.on('timeout', () => timeouts++);
      tx!.respond(createResponse(r, 486));
    });
    s.uac.sendRequest(req('INVITE'), s.target, {});
    s.wheel.advance(64 * T1 + 10);
    // Timer G: 500, 1000, 2000, 4000, 4000, ... (plus answers to INVITE retransmissions)
    expect(times.slice(0, 3)).toEqual([0, 500, 500]);
    expect(timeouts).toBe(1);
    expect(s.uas.size).toBe(0);
  });

  it('2xx: RFC 6026 Accepted on both sides, 2xx retransmissions reach the client TU, ACK reaches the server TU', () => {
    const s = setup();
    let server: ServerTransaction | undefined;
    s.handle((r, tx) => {
      if (r.method === 'INVITE') server = tx;
    });
    const finals: SipResponse[] = [];
    const extra: SipResponse[] = [];
    const tx = s.uac.sendRequest(req('INVITE'), s.target, { onFinal: (r) => finals.push(r), onAdditional2xx: (r) => extra.push(r) });
    const ok = createResponse(server!.request, 200, 'OK', { toTag: 'srv' });
    server!.respond(ok);
    expect(server!.state).toBe('Accepted');
    expect(tx.state).toBe('Accepted');
    server!.respond(ok); // TU retransmits the 2xx (§13.3.1.4): passed to the transport
    expect(finals.length).toBe(1);
    expect(extra.length).toBe(1);
    // ACK for the 2xx is end-to-end: new branch, goes to the server TU with no transaction
    const ack = createRequest({ method: 'ACK', uri: 'sip:bob@10.0.0.2', from: tx.request.get('From')!, to: finals[0]!.get('To')!, callId: tx.request.callId, cseq: 1, via: s.a.viaValue(s.target, 'z9hG4bKack1') });
    void s.uac.sendStateless(ack, s.target);
    const got = s.seen.find((x) => x.req.method === 'ACK');
    expect(got?.tx).toBeUndefined();
    // INVITE retransmission in Accepted is absorbed
    s.uas.receive(tx.request, { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 });
    expect(s.seen.filter((x) => x.req.method === 'INVITE').length).toBe(1);
    s.wheel.advance(64 * T1); // Timers L and M
    expect(s.uac.size + s.uas.size).toBe(0);
  });

  it('Accepted: the TU can hand the further 2xx to smaller handlers (handOverAccepted); other states refuse', () => {
    const s = setup();
    let server: ServerTransaction | undefined;
    s.handle((r, tx) => {
      if (r.method === 'INVITE') server = tx;
    });
    const first: SipResponse[] = [];
    const handed: SipResponse[] = [];
    const tx = s.uac.sendRequest(req('INVITE'), s.target, { onAdditional2xx: (r) => first.push(r) }) as InviteClientTransaction;
    expect(tx.handOverAccepted({ onAdditional2xx: (r) => handed.push(r) })).toBe(false); // Calling
    const ok = createResponse(server!.request, 200, 'OK', { toTag: 'srv' });
    server!.respond(ok);
    expect(tx.state).toBe('Accepted');
    expect(tx.handOverAccepted({ onAdditional2xx: (r) => handed.push(r) })).toBe(true);
    server!.respond(ok); // the 2xx again
    expect(first.length).toBe(0);
    expect(handed.map((r) => r.status)).toEqual([200]);
    s.wheel.advance(64 * T1); // Timer M
    expect(tx.handOverAccepted({})).toBe(false); // Terminated
  });

  it('sends 100 Trying when the TU is silent for 200 ms', () => {
    const s = setup({ autoTryingMs: 200 });
    s.handle(() => {});
    const prov: number[] = [];
    s.uac.sendRequest(req('INVITE'), s.target, { onProvisional: (r) => prov.push(r.status) });
    s.wheel.advance(190);
    expect(prov).toEqual([]);
    s.wheel.advance(10);
    expect(prov).toEqual([100]);
  });

  it('CANCEL: waits for a provisional, matches the INVITE server tx, 200 to CANCEL, 487 to INVITE', () => {
    const s = setup();
    let inviteTx: ServerTransaction | undefined;
    const cancels: SipRequest[] = [];
    s.handle((r, tx) => {
      if (r.method !== 'INVITE') return;
      inviteTx = tx;
      tx!.on('cancel', (c) => {
        cancels.push(c);
        tx!.respond(createResponse(r, 487));
      });
    });
    // Hold back the first transmission of the INVITE so the client stays in Calling.
    let first = true;
    s.net.filter = (data) => {
      if (first && data.toString('latin1', 0, 6) === 'INVITE') {
        first = false;
        return false;
      }
      return true;
    };
    const finals: number[] = [];
    const cancelFinals: number[] = [];
    const tx = s.uac.sendRequest(req('INVITE'), s.target, { onFinal: (r) => finals.push(r.status) });
    expect(s.uac.cancel(tx, { onFinal: (r) => cancelFinals.push(r.status) })).toBe(true);
    expect(s.sends('10.0.0.1:5060', /^CANCEL/)).toBe(0); // no CANCEL before a provisional
    s.wheel.advance(500); // INVITE retransmitted, arrives
    inviteTx!.respond(createResponse(inviteTx!.request, 180, 'Ringing', { toTag: 'x' }));
    expect(s.sends('10.0.0.1:5060', /^CANCEL/)).toBe(1);
    expect(cancels.length).toBe(1);
    expect(cancelFinals).toEqual([200]);
    expect(finals).toEqual([487]);
    expect(inviteTx!.cancelled).toBe(true);
    s.wheel.advance(64 * T1 + 5000);
    expect(s.uac.size + s.uas.size).toBe(0);
  });

  it('CANCEL without a matching transaction gets 481', () => {
    const s = setup();
    const finals: number[] = [];
    const inv = req('INVITE', [['Via', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnothere']]);
    const cancel = createRequest({ method: 'CANCEL', uri: inv.uri, from: inv.get('From')!, to: inv.get('To')!, callId: inv.callId, cseq: 1 });
    s.uac.sendRequest(cancel, s.target, { onFinal: (r) => finals.push(r.status) });
    expect(finals).toEqual([481]);
  });

  it('no transaction leaks: 500 mixed transactions all end', async () => {
    const s = setup({ autoTryingMs: 200 });
    s.handle((r, tx) => {
      const n = Number(r.callId.length) % 3;
      if (r.method === 'INVITE') tx!.respond(createResponse(r, n === 0 ? 200 : 486));
      else if (n !== 2) tx!.respond(createResponse(r, 200));
      // n === 2 non-INVITE: TU never answers; the layer must still retire it
    });
    let loss = 0;
    s.net.filter = () => ++loss % 7 !== 0;
    s.net.recordTraffic = false;
    const gauge = async () =>
      (await metricsRegistry.getSingleMetric('tandem_sip_transactions')!.get()).values.reduce((n, v) => n + v.value, 0);
    const before = await gauge(); // other tests' layers in this file
    for (let i = 0; i < 500; i++) s.uac.sendRequest(req(i % 2 ? 'INVITE' : 'OPTIONS'), s.target, {});
    expect(s.uac.size).toBeGreaterThan(0);
    expect(await gauge()).toBe(before + s.uac.size + s.uas.size);
    s.wheel.advance(200_000);
    expect(s.uac.size).toBe(0);
    expect(s.uas.size).toBe(0);
    expect(s.wheel.size).toBe(0);
    expect(await gauge()).toBe(before);
  });
});

/** Parses bytes that must parse (test input built by us). */
function wire<T>(data: Buffer): T {
  const r = parseMessage(data);
  if (!r.ok) throw new Error(r.reason);
  return r.value as T;
}

describe('matching keys and memory (branch-keyed maps, dropped request)', () => {
  function viaReq(method: string, via: string, cseq = 1): SipRequest {
    const r = createRequest({ method, uri: 'sip:bob@10.0.0.2', from: '<sip:alice@10.0.0.1>', to: '<sip:bob@10.0.0.2>', cseq, via });
    return r;
  }

  it('server: same branch from two sent-by addresses, or with another method, makes separate transactions (§17.2.3)', () => {
    const s = setup();
    const answered: string[] = [];
    s.handle((r, tx) => {
      answered.push(`${r.method} ${r.topVia.host}`);
      tx!.respond(createResponse(r, 200));
    });
    const src = (address: string): Source => ({ transport: 'udp', address, port: 5060, localAddress: '10.0.0.2', localPort: 5060 });
    const deliver = (r: SipRequest, from: string) => s.uas.receive(wire<SipRequest>(r.toBuffer()), src(from));
    deliver(viaReq('OPTIONS', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsame'), '10.0.0.1');
    deliver(viaReq('OPTIONS', 'SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bKsame'), '10.0.0.3');
    deliver(viaReq('INFO', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsame'), '10.0.0.1');
    expect(answered).toEqual(['OPTIONS 10.0.0.1', 'OPTIONS 10.0.0.3', 'INFO 10.0.0.1']);
    expect(s.uas.serverCount).toBe(3);
    // retransmissions match their own transaction and are absorbed (answered again, not passed up)
    deliver(viaReq('OPTIONS', 'SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bKsame'), '10.0.0.3');
    deliver(viaReq('INFO', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsame'), '10.0.0.1');
    expect(answered.length).toBe(3);
    expect(s.uas.serverCount).toBe(3);
    s.wheel.advance(64 * T1 + 10);
    expect(s.uas.serverCount).toBe(0);
    expect(s.wheel.size).toBe(0);
  });

  it('client: a branch is unique per method; a response matches by branch and CSeq method', () => {
    const s = setup();
    s.net.filter = () => false; // hold everything; responses are injected below
    const finals: string[] = [];
    const via = 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKclient1';
    s.uac.sendRequest(viaReq('OPTIONS', via), s.target, { onFinal: (r) => finals.push(`OPTIONS ${r.status}`) });
    s.uac.sendRequest(viaReq('INFO', via), s.target, { onFinal: (r) => finals.push(`INFO ${r.status}`) });
    expect(() => s.uac.sendRequest(viaReq('INFO', via), s.target, {})).toThrow(/SIP_ERR_DUPLICATE_TRANSACTION/);
    expect(() => s.uac.sendRequest(viaReq('OPTIONS', via), s.target, {})).toThrow(/SIP_ERR_DUPLICATE_TRANSACTION/);
    expect(s.uac.clientCount).toBe(2);
    const src: Source = { transport: 'udp', address: '10.0.0.2', port: 5060, localAddress: '10.0.0.1', localPort: 5060 };
    const respond = (method: string, status: number) => {
      const res = createResponse(viaReq(method, via), status);
      s.uac.receive(wire<SipResponse>(res.toBuffer()), src);
    };
    respond('MESSAGE', 200); // same branch, no transaction with this method: stray
    respond('INFO', 486);
    respond('OPTIONS', 200);
    expect(finals).toEqual(['INFO 486', 'OPTIONS 200']);
    s.wheel.advance(5000 + 10); // Timer K
    expect(s.uac.clientCount).toBe(0);
  });

  it('server non-INVITE tx in Timer J keeps answering retransmissions; its request is still readable', () => {
    const s = setup();
    let tx: ServerTransaction | undefined;
    s.handle((r, t) => {
      tx = t;
      t!.respond(createResponse(r, 200));
    });
    const r = viaReq('OPTIONS', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKdrop;rport');
    const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5070, localAddress: '10.0.0.2', localPort: 5060 };
    const original = wire<SipRequest>(r.toBuffer());
    s.uas.receive(original, src);
    expect(tx!.state).toBe('Completed');
    const again = tx!.request;
    expect(again.method).toBe('OPTIONS');
    expect(again.callId).toBe(r.callId);
    expect(again.topVia.branch).toBe('z9hG4bKdrop');
    expect(tx!.request).toBe(again); // re-parsed once
    const before = s.sends('10.0.0.2:5060', /^SIP\/2.0 200/);
    s.uas.receive(wire<SipRequest>(r.toBuffer()), src);
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 200/)).toBe(before + 1);
    // the response went to the source port (rport), as the first one did
    expect(s.net.traffic.filter((t) => t.to === '10.0.0.1:5070').length).toBe(2);
    expect(s.seen.length).toBe(1);
    s.wheel.advance(64 * T1 + 10);
    expect(s.uas.size).toBe(0);
  });
  it('INVITE server tx in Accepted keeps no bytes of its 2xx: INVITE retransmissions absorbed, the TU\'s 2xx still sent, toTag known', () => {
    const s = setup();
    let tx: ServerTransaction | undefined;
    let ok: SipResponse | undefined;
    s.handle((r, t) => {
      if (!t) return;
      tx = t;
      ok = createResponse(r, 200, undefined, { toTag: 'uas2' });
      t.respond(ok);
    });
    const inv = viaReq('INVITE', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKaccepted');
    const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
    s.uas.receive(wire<SipRequest>(inv.toBuffer()), src);
    const ist = tx as unknown as { lastResponse: SipResponse | undefined; toTag: string | undefined; state: string };
    expect(ist.state).toBe('Accepted');
    expect(ist.toTag).toBe('uas2');
    expect(ist.lastResponse).toBeUndefined();
    const sent = s.sends('10.0.0.2:5060', /^SIP\/2.0 200/);
    expect(sent).toBe(1);
    s.uas.receive(wire<SipRequest>(inv.toBuffer()), src); // retransmitted INVITE: absorbed
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 200/)).toBe(1);
    expect(s.seen.filter((x) => x.req.method === 'INVITE').length).toBe(1);
    tx!.respond(ok!); // the TU retransmits its 2xx (§13.3.1.4)
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 200/)).toBe(2);
    s.wheel.advance(64 * T1 + 10); // Timer L
    expect(s.uas.size).toBe(0);
  });

  it('INVITE server tx keeps only the bytes of its final response; lastResponse and toTag still answer', () => {
    const s = setup();
    let tx: ServerTransaction | undefined;
    s.handle((r, t) => {
      if (!t) return;
      tx = t;
      t.respond(createResponse(r, 180, undefined, { toTag: 'uas1' }));
      t.respond(createResponse(r, 486, undefined, { toTag: 'uas1' }));
    });
    const inv = viaReq('INVITE', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinvdrop');
    const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
    s.uas.receive(wire<SipRequest>(inv.toBuffer()), src);
    const ist = tx as unknown as { lastResponse: SipResponse | undefined; toTag: string | undefined };
    expect(ist.toTag).toBe('uas1');
    expect(ist.lastResponse?.status).toBe(486);
    expect(ist.lastResponse?.toTag).toBe('uas1');
    const before = s.sends('10.0.0.2:5060', /^SIP\/2.0 486/);
    s.uas.receive(wire<SipRequest>(inv.toBuffer()), src); // retransmitted INVITE: the 486 again
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 486/)).toBe(before + 1);
    s.wheel.advance(64 * T1 + 10); // no ACK: Timer H
    expect(s.uas.size).toBe(0);
  });
});

describe('requests answered without a server transaction (TransactionUser.statelessFor)', () => {
  const viaReq = (method: string, via: string): SipRequest => createRequest({ method, uri: 'sip:bob@10.0.0.2', from: '<sip:alice@10.0.0.1>', to: '<sip:bob@10.0.0.2>', cseq: 1, via });
  it('a REGISTER the TU takes statelessly is answered, nothing is kept, and its retransmission reaches the TU again', () => {
    const s = setup();
    const tu: TransactionUser = {
      onRequest(r, t) {
        s.seen.push({ req: r, tx: t });
        t?.respond(createResponse(r, 200, 'OK'));
      },
      statelessFor: (r) => r.method === 'REGISTER',
    };
    s.uas.setUser(tu);
    const reg = viaReq('REGISTER', 'SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKreg1;rport');
    const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5070, localAddress: '10.0.0.2', localPort: 5060 };
    s.uas.receive(wire<SipRequest>(reg.toBuffer()), src);
    expect(s.uas.size).toBe(0);
    expect(s.seen[0]!.tx?.state).toBe('Terminated');
    s.uas.receive(wire<SipRequest>(reg.toBuffer()), src); // retransmission: processed again
    expect(s.seen.length).toBe(2);
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 200/)).toBe(2);
    expect(s.net.traffic.filter((t) => t.to === '10.0.0.1:5070').length).toBe(2); // by rport
    // Other methods keep their transaction.
    const opt = viaReq('OPTIONS', 'SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKopt1;rport');
    s.uas.receive(wire<SipRequest>(opt.toBuffer()), src);
    expect(s.uas.size).toBe(1);
  });
});

describe('linger of finished transactions (TransactionOptions.lingerMs)', () => {
  function call(s: ReturnType<typeof setup>) {
    s.handle((r, t) => t?.respond(createResponse(r, 200, 'OK', { toTag: 'callee' })));
    let finals = 0;
    s.uac.sendRequest(req('INVITE'), s.target, { onFinal: () => finals++ });
    s.uac.sendRequest(req('BYE'), s.target, { onFinal: () => finals++ });
    expect(finals).toBe(2);
  }

  it('by default keeps them 64*T1 (Timers L, M, J): still absorbing at 31 s, gone at 32 s', () => {
    const s = setup();
    call(s);
    s.wheel.advance(5000 + 20); // Timer K (T4) ends the BYE's client transaction
    expect(s.uac.clientCount).toBe(1);
    expect(s.uas.size).toBe(2);
    s.wheel.advance(31_000 - 5020);
    expect(s.uas.size).toBe(2);
    s.wheel.advance(1_020);
    expect(s.uac.size + s.uas.size).toBe(0);
  });

  it('lingerMs 5000 ends them after 5 s, as Kamailio does; a retransmission before then is still answered', () => {
    const s = setup({ lingerMs: 5000 });
    call(s);
    const bye = s.net.traffic.find((t) => t.from === '10.0.0.1:5060' && t.data.toString('latin1', 0, 3) === 'BYE')!;
    const before = s.sends('10.0.0.2:5060', /^SIP\/2.0 200/);
    s.wheel.advance(4_000);
    s.b.receiveBytes(bye.data, { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 });
    expect(s.sends('10.0.0.2:5060', /^SIP\/2.0 200/)).toBe(before + 1); // the kept 200, not a new request
    expect(s.seen.filter((x) => x.req.method === 'BYE').length).toBe(1);
    s.wheel.advance(1_020);
    expect(s.uac.size + s.uas.size).toBe(0);
  });
});
