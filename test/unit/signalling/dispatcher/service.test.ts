import { afterEach, describe, expect, it } from 'vitest';
import { parseMessage } from '../../../../src/sip/message/parser.js';
import type { SipRequest } from '../../../../src/sip/message/sip-message.js';
import { dispatcherConfigSchema } from '../../../../src/signalling/dispatcher/config-schema.js';
import { endpointOf } from '../../../../src/signalling/dispatcher/options-sender.js';
import { dispatch, DispatcherService, rewriteHost } from '../../../../src/signalling/dispatcher/service.js';
import type { RouteContext, SerialRoute, TargetSupplier } from '../../../../src/signalling/proxy/types.js';

function invite(uri: string, callId = 'c1@x'): SipRequest {
  const text =
    `INVITE ${uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKabc\r\nMax-Forwards: 70\r\n` +
    `From: <sip:alice@tandem.test>;tag=1\r\nTo: <${uri}>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`;
  const r = parseMessage(Buffer.from(text));
  if (!r.ok) throw new Error(r.reason);
  return r.value as SipRequest;
}

const services: DispatcherService[] = [];
afterEach(() => services.splice(0).forEach((s) => s.close()));

function service(extra: object = {}): DispatcherService {
  const s = new DispatcherService({
    config: dispatcherConfigSchema.parse({
      sets: { pbx: { destinations: [{ uri: 'sip:127.0.0.1:5071' }, { uri: 'sip:127.0.0.1:5072;transport=tcp' }, { uri: 'sip:127.0.0.1:5073' }] } },
      routes: [{ prefix: '9', set: 'pbx' }],
      failover: { frTimerMs: 1000, frInvTimerMs: 5000 },
      ...extra,
    }),
  });
  services.push(s);
  return s;
}

describe('DispatcherService', () => {
  it('builds a serial route whose supplier fails over and marks a silent destination down', async () => {
    const s = service();
    const r = s.dispatch('pbx', invite('sip:9100@tandem.test')) as SerialRoute;
    expect(r).toMatchObject({ kind: 'serial', frTimerMs: 1000, frInvTimerMs: 5000, exhaustedStatus: 503 });
    const next = r.targets as TargetSupplier;
    const t1 = next(0, [])!;
    expect(t1).toMatchObject({ uri: 'sip:9100@127.0.0.1:5071', destinationKey: 'sip:127.0.0.1:5071' });
    r.onBranchFailed!(t1, { kind: 'timeout' });
    const t2 = next(1, [t1])!;
    expect(t2.uri).toBe('sip:9100@127.0.0.1:5072;transport=tcp');
    r.onBranchFailed!(t2, { kind: 'no-answer' });
    const t3 = next(2, [t1, t2])!;
    expect(t3.destinationKey).toBe('sip:127.0.0.1:5073');
    expect(next(3, [t1, t2, t3])).toBeUndefined();
    await new Promise((r) => setImmediate(r)); // the mark-down runs after pending I/O
    const view = s.dispatcher.view()[0]!.destinations;
    expect(view.map((d) => d.health)).toEqual(['down', 'up', 'up']);
    // a later call skips the dead one at once
    const r2 = s.dispatch('pbx', invite('sip:9100@tandem.test', 'c2@x')) as SerialRoute;
    expect((r2.targets as TargetSupplier)(0, [])!.destinationKey).not.toBe('sip:127.0.0.1:5071');
  });

  it('does not mark down on fr_timer when the destination answered something after the branch was sent', async () => {
    const s = service();
    const r = s.dispatch('pbx', invite('sip:9100@tandem.test')) as SerialRoute;
    const t1 = (r.targets as TargetSupplier)(0, [])!;
    await new Promise((res) => setTimeout(res, 5));
    // another call's branch to the same destination got a response meanwhile
    const other = s.dispatch('pbx', invite('sip:9100@tandem.test', 'c9@x')) as SerialRoute;
    const o1 = (other.targets as TargetSupplier)(0, [])!;
    expect(o1.destinationKey).not.toBe(t1.destinationKey); // round-robin moved on; report a response for t1's URI via a third plan
    s.dispatcher.noteResponse(t1.destinationKey!);
    r.onBranchFailed!(t1, { kind: 'timeout' });
    await new Promise((res) => setImmediate(res));
    expect(s.dispatcher.view()[0]!.destinations[0]!.health).toBe('up');
  });

  it('routes by prefix, answers 503 for unknown sets and without a dispatcher', () => {
    const s = service();
    expect(s.routeByPrefix(invite('sip:9100@tandem.test'))).toMatchObject({ kind: 'serial' });
    expect(s.routeByPrefix(invite('sip:100@tandem.test'))).toBeUndefined();
    expect(s.dispatch('nope', invite('sip:9@x'))).toMatchObject({ kind: 'reply', status: 503 });
    const ctx = { services: { dispatcher: s } } as unknown as RouteContext;
    expect(dispatch(ctx, 'pbx', invite('sip:9@x'), { algorithm: 'priority' })).toMatchObject({ kind: 'serial' });
    expect(dispatch({ services: {} } as unknown as RouteContext, 'pbx', invite('sip:9@x'))).toMatchObject({ kind: 'reply', status: 503 });
  });

  it('rejects routes to unknown sets in config', () => {
    const r = dispatcherConfigSchema.safeParse({ routes: [{ prefix: '1', set: 'ghost' }] });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['routes', 0, 'set']);
  });

  it('reads call-load counts from an external source (the dialog tracker)', () => {
    const counts = new Map([['sip:127.0.0.1:5071', 5], ['sip:127.0.0.1:5072;transport=tcp', 1], ['sip:127.0.0.1:5073', 3]]);
    const s = service();
    s.setCallLoadSource({ activeCount: (k) => counts.get(k) ?? 0 });
    const r = s.dispatch('pbx', invite('sip:9@x'), { algorithm: 'call-load' }) as SerialRoute;
    expect((r.targets as TargetSupplier)(0, [])!.destinationKey).toBe('sip:127.0.0.1:5072;transport=tcp');
  });
});

describe('URI helpers', () => {
  it('rewrites the host and resolves endpoints', () => {
    expect(rewriteHost('sip:1000@tandem.local;user=phone', 'sip:10.0.0.5:5070;transport=tcp')).toBe('sip:1000@10.0.0.5:5070;transport=tcp');
    expect(rewriteHost('sip:1000@tandem.local', 'sip:pbx@10.0.0.5')).toBe('sip:pbx@10.0.0.5');
    expect(endpointOf('sip:10.0.0.5:5070;transport=tcp')).toEqual({ ok: true, value: { transport: 'tcp', address: '10.0.0.5', port: 5070 } });
    expect(endpointOf('sips:[::1]')).toEqual({ ok: true, value: { transport: 'tls', address: '::1', port: 5061 } });
    expect(endpointOf('sip:10.0.0.5')).toEqual({ ok: true, value: { transport: 'udp', address: '10.0.0.5', port: 5060 } });
    expect(endpointOf('garbage').ok).toBe(false);
  });
});
