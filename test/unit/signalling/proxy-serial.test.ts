import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseMessage } from '../../../src/sip/message/parser.js';
import { createResponse } from '../../../src/sip/message/builders.js';
import type { SipRequest, SipResponse } from '../../../src/sip/message/sip-message.js';
import { ProxyCore } from '../../../src/signalling/proxy/proxy-core.js';
import type { ProxyClientHandlers, ProxyStack } from '../../../src/signalling/proxy/proxy-stack.js';
import type { BranchFailureReason, SerialRoute, Target } from '../../../src/signalling/proxy/types.js';
import { DialogTracker } from '../../../src/signalling/dialogs/dialog-tracker.js';
import { TimerWheel } from '../../../src/util/timer-wheel.js';

/** The proxy's fr_timer / fr_inv_timer / Timer C run on this fake-clock wheel. */
let wheel = new TimerWheel({ manual: true });
const advance = (ms: number): void => wheel.advance(ms);

interface Sent {
  req: SipRequest;
  h: ProxyClientHandlers;
  cancelled: boolean;
}

function fakeStack(sent: Sent[]): ProxyStack {
  const iface = { transport: 'udp' as const, host: '10.0.0.1', port: 5060, boundAddress: '10.0.0.1', boundPort: 5060 };
  return {
    sendRequest: (req, _t, h) => {
      const s = { req, h, cancelled: false };
      sent.push(s);
      return s as unknown as { request: SipRequest };
    },
    cancel: (tx) => {
      (tx as unknown as Sent).cancelled = true;
    },
    sendStateless: () => undefined,
    sendResponseStateless: () => undefined,
    interfaceFor: () => iface,
    interfaceOf: () => iface,
    isOwnAddress: (h, p) => h === '10.0.0.1' && (p ?? 5060) === 5060,
  };
}

const invite = (): SipRequest => {
  const text = [
    'INVITE sip:100@pbx.test SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcaller',
    'Max-Forwards: 70',
    'From: <sip:alice@d.test>;tag=a',
    'To: <sip:100@pbx.test>',
    'Call-ID: call-1',
    'CSeq: 1 INVITE',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const r = parseMessage(Buffer.from(text));
  if (!r.ok) throw new Error(r.reason);
  return r.value as SipRequest;
};

/** Response from a downstream branch (our Via on top). */
function reply(s: Sent, status: number): SipResponse {
  return createResponse(s.req, status, undefined, { toTag: `t${status}` });
}

function run(route: Partial<SerialRoute>, targets: Target[]) {
  const sent: Sent[] = [];
  const dialogs = new DialogTracker();
  const proxy = new ProxyCore({ stack: fakeStack(sent), isLocalDomain: () => false, dialogs, wheel });
  const upstream: SipResponse[] = [];
  const failed: Array<[string, BranchFailureReason['kind']]> = [];
  const answered: string[] = [];
  let cancelFn: (() => void) | undefined;
  const stx = { request: invite(), respond: (r: SipResponse) => upstream.push(r), onCancel: (fn: () => void) => (cancelFn = fn) };
  void proxy.forward(stx.request, stx, { transport: 'udp', address: '192.0.2.1', port: 5060, localAddress: '10.0.0.1', localPort: 5060 }, {
    kind: 'serial',
    targets,
    onBranchFailed: (t, r) => failed.push([t.uri, r.kind]),
    onBranchAnswered: (t) => answered.push(t.uri),
    ...route,
  });
  return { sent, upstream, failed, answered, dialogs, cancel: () => cancelFn?.() };
}

const T = (n: number): Target => ({ uri: `sip:100@10.0.1.${n}`, destinationKey: `pbx${n}` });
const flush = () => new Promise((r) => setImmediate(r));

describe('proxy serial failover', () => {
  beforeEach(() => {
    wheel = new TimerWheel({ manual: true });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => vi.useRealTimers());

  it('fr_timer: no response -> next target, reported as timeout; 2xx ends the search', async () => {
    const x = run({ frTimerMs: 4000 }, [T(1), T(2)]);
    await flush();
    expect(x.sent.length).toBe(1);
    expect(x.sent[0]!.req.topVia.host).toBe('10.0.0.1');
    expect(x.sent[0]!.req.getAll('Record-Route').length).toBe(1);
    expect(x.dialogs.activeCount('pbx1')).toBe(1);
    advance(4001);
    expect(x.failed).toEqual([['sip:100@10.0.1.1', 'timeout']]);
    expect(x.sent[0]!.cancelled).toBe(true);
    expect(x.sent.length).toBe(2);
    expect(x.dialogs.activeCount('pbx1')).toBe(0);
    expect(x.dialogs.activeCount('pbx2')).toBe(1);
    x.sent[1]!.h.onFinal!(reply(x.sent[1]!, 200));
    await flush();
    expect(x.answered).toEqual(['sip:100@10.0.1.2']);
    expect(x.upstream.map((r) => r.status)).toEqual([100, 200]);
    expect(x.upstream[1]!.topVia.branch).toBe('z9hG4bKcaller');
  });

  it('fr_inv_timer: ringing without answer -> CANCEL, next', async () => {
    const x = run({ frTimerMs: 1000, frInvTimerMs: 5000 }, [T(1), T(2)]);
    await flush();
    x.sent[0]!.h.onProvisional!(reply(x.sent[0]!, 180));
    advance(1500);
    expect(x.sent.length).toBe(1);
    advance(4000);
    expect(x.sent[0]!.cancelled).toBe(true);
    expect(x.failed).toEqual([['sip:100@10.0.1.1', 'no-answer']]);
    expect(x.sent.length).toBe(2);
  });

  it('503 fails over, 486 goes back to the caller', async () => {
    const x = run({}, [T(1), T(2), T(3)]);
    await flush();
    x.sent[0]!.h.onFinal!(reply(x.sent[0]!, 503));
    expect(x.failed).toEqual([['sip:100@10.0.1.1', 'status']]);
    x.sent[1]!.h.onFinal!(reply(x.sent[1]!, 486));
    await flush();
    expect(x.sent.length).toBe(2);
    expect(x.upstream.at(-1)!.status).toBe(486);
  });

  it('every target failed -> 503; CANCEL from the caller stops the search with 487', async () => {
    const x = run({}, [T(1), T(2)]);
    await flush();
    x.sent[0]!.h.onFinal!(reply(x.sent[0]!, 500));
    x.sent[1]!.h.onTimeout!();
    await flush();
    expect(x.upstream.at(-1)!.status).toBe(503);
    const y = run({}, [T(1), T(2)]);
    await flush();
    y.sent[0]!.h.onProvisional!(reply(y.sent[0]!, 180));
    y.cancel();
    expect(y.sent[0]!.cancelled).toBe(true);
    y.sent[0]!.h.onFinal!(reply(y.sent[0]!, 487));
    await flush();
    expect(y.sent.length).toBe(1);
    expect(y.upstream.at(-1)!.status).toBe(487);
  });
});
