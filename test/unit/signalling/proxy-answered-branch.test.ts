/**
 * Once an INVITE is answered, the proxy's response context is not what Timer M keeps: the
 * answering branch's client transaction gets a small record that relays the callee's
 * retransmitted 2xx upstream (Via stripped, SDP through the media node's answer again), and the
 * context becomes garbage. Checked with a stack that records what the proxy hands over, and a
 * weak reference to the handlers the proxy first gave the transaction.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createResponse } from '../../../src/sip/message/builders.js';
import { parseMessage } from '../../../src/sip/message/parser.js';
import type { SipRequest, SipResponse } from '../../../src/sip/message/sip-message.js';
import type { MediaAnswerInput, MediaControl } from '../../../src/signalling/media-control/media-control.js';
import { ProxyCore } from '../../../src/signalling/proxy/proxy-core.js';
import type { ProxyClientHandlers, ProxyStack } from '../../../src/signalling/proxy/proxy-stack.js';
import { TimerWheel } from '../../../src/util/timer-wheel.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

/** A client transaction as the proxy sees it: it holds its handlers, as the real one does. */
interface Sent {
  req: SipRequest;
  /** The handlers the transaction holds now. */
  h: ProxyClientHandlers;
  /** What `handOverAccepted` was given (undefined: not called). */
  handedOver: ProxyClientHandlers | undefined;
  accepted: boolean;
}

function fakeStack(sent: Sent[]): ProxyStack {
  const iface = { transport: 'udp' as const, host: '10.0.0.1', port: 5060, boundAddress: '10.0.0.1', boundPort: 5060 };
  return {
    sendRequest: (req, _t, h) => {
      const s: Sent = { req, h, handedOver: undefined, accepted: false };
      sent.push(s);
      return {
        request: req,
        handOverAccepted: (next: ProxyClientHandlers) => {
          if (!s.accepted) return false;
          s.handedOver = s.h = next;
          return true;
        },
      };
    },
    cancel: () => undefined,
    sendStateless: () => undefined,
    sendResponseStateless: () => undefined,
    interfaceFor: () => iface,
    interfaceOf: () => iface,
    isOwnAddress: (h, p) => h === '10.0.0.1' && (p ?? 5060) === 5060,
  };
}

const SDP = 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';

function invite(withSdp: boolean): SipRequest {
  const body = withSdp ? SDP : '';
  const text =
    [
      'INVITE sip:bob@10.0.1.1 SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcaller',
      'Max-Forwards: 70',
      'From: <sip:alice@d.test>;tag=a',
      'To: <sip:bob@d.test>',
      'Call-ID: call-1',
      'CSeq: 1 INVITE',
      ...(withSdp ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      '',
    ].join('\r\n') + body;
  const r = parseMessage(Buffer.from(text));
  if (!r.ok) throw new Error(r.reason);
  return r.value as SipRequest;
}

/** The callee's 200 (our Via on top), with an SDP answer. */
function ok(s: Sent): SipResponse {
  const res = createResponse(s.req, 200, undefined, { toTag: 'callee' });
  res.set('Content-Type', 'application/sdp');
  res.body = Buffer.from(SDP.replaceAll('192.0.2.1', '198.51.100.9'));
  return res;
}

/** Rewrites every SDP to name the relay and counts the answers. */
function fakeMedia(answers: MediaAnswerInput[]): MediaControl {
  return {
    offer: async (i) => ({ ok: true, value: Buffer.from(i.sdp.toString().replace(/192\.0\.2\.1/g, '203.0.113.1')) }),
    answer: async (i) => {
      answers.push(i);
      return { ok: true, value: Buffer.from(i.sdp.toString().replace(/198\.51\.100\.9/g, '203.0.113.1')) };
    },
    delete: async () => undefined,
    close: async () => undefined,
  };
}

const flush = () => new Promise((r) => setImmediate(r));

async function answeredCall(withMedia: boolean) {
  const sent: Sent[] = [];
  const answers: MediaAnswerInput[] = [];
  const proxy = new ProxyCore({ stack: fakeStack(sent), isLocalDomain: () => false, wheel: new TimerWheel({ manual: true }), ...(withMedia ? { media: fakeMedia(answers) } : {}) });
  const upstream: SipResponse[] = [];
  const req = invite(withMedia);
  const stx = { request: req, respond: (r: SipResponse) => upstream.push(r), onCancel: () => undefined };
  await proxy.forward(req, stx, { transport: 'udp', address: '192.0.2.1', port: 5060, localAddress: '10.0.0.1', localPort: 5060 }, { kind: 'parallel', targets: [{ uri: 'sip:bob@10.0.1.1' }] });
  await flush();
  expect(sent.length).toBe(1);
  const branch = sent[0]!;
  branch.accepted = true; // what the transaction layer does on the 2xx, before it tells the TU
  const first = new WeakRef(branch.h);
  branch.h.onFinal!(ok(branch));
  await flush();
  return { branch, upstream, answers, first };
}

describe('an answered INVITE branch after the proxy has answered upstream', () => {
  it('relays the callee\'s retransmitted 2xx upstream, Via stripped, SDP rewritten again', async () => {
    const { branch, upstream, answers } = await answeredCall(true);
    expect(upstream.map((r) => r.status)).toEqual([100, 200]);
    expect(branch.handedOver).toBeDefined();

    branch.handedOver!.onAdditional2xx!(ok(branch));
    await flush();
    expect(upstream.map((r) => r.status)).toEqual([100, 200, 200]);
    const again = upstream[2]!;
    expect(again.getAll('Via')).toEqual(['SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcaller']);
    expect(again.body.toString()).toContain('c=IN IP4 203.0.113.1');
    expect(again.body.toString()).toBe(upstream[1]!.body.toString());
    expect(answers.map((a) => [a.callId, a.fromTag, a.toTag])).toEqual([
      ['call-1', 'a', 'callee'],
      ['call-1', 'a', 'callee'],
    ]);
  });

  it('without media the retransmitted 2xx goes up at once, untouched but for our Via', async () => {
    const { branch, upstream } = await answeredCall(false);
    branch.handedOver!.onAdditional2xx!(ok(branch));
    expect(upstream.map((r) => r.status)).toEqual([100, 200, 200]);
    expect(upstream[2]!.getAll('Via')).toEqual(['SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcaller']);
  });

  it('leaves the response context to the collector: the transaction no longer holds it', async () => {
    const { branch, first } = await answeredCall(true);
    await flush();
    gc();
    await flush();
    gc();
    expect(first.deref()).toBeUndefined();
    expect(branch.h).toBe(branch.handedOver);
  });

  it('a transaction not yet Accepted keeps the proxy\'s handlers (nothing is handed over)', async () => {
    const sent: Sent[] = [];
    const proxy = new ProxyCore({ stack: fakeStack(sent), isLocalDomain: () => false, wheel: new TimerWheel({ manual: true }) });
    const req = invite(false);
    const upstream: SipResponse[] = [];
    await proxy.forward(req, { request: req, respond: (r) => upstream.push(r), onCancel: () => undefined }, { transport: 'udp', address: '192.0.2.1', port: 5060, localAddress: '10.0.0.1', localPort: 5060 }, { kind: 'parallel', targets: [{ uri: 'sip:bob@10.0.1.1' }] });
    await flush();
    sent[0]!.h.onFinal!(ok(sent[0]!));
    await flush();
    expect(upstream.map((r) => r.status)).toEqual([100, 200]);
    expect(sent[0]!.handedOver).toBeUndefined();
  });
});
