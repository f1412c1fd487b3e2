import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../../src/sip/message/parser.js';
import type { SipRequest, SipResponse } from '../../../src/sip/message/sip-message.js';
import { ProxyCore } from '../../../src/signalling/proxy/proxy-core.js';
import type { ProxyStack } from '../../../src/signalling/proxy/proxy-stack.js';
import type { Endpoint } from '../../../src/sip/transport/types.js';

const src = { transport: 'udp' as const, address: '192.0.2.1', port: 5060, localAddress: '10.0.0.1', localPort: 5060 };

function setup() {
  const sent: Array<{ req: SipRequest; target: Endpoint }> = [];
  const upstream: SipResponse[] = [];
  const iface = { transport: 'udp' as const, host: '10.0.0.1', port: 5060, boundAddress: '10.0.0.1', boundPort: 5060 };
  const stack: ProxyStack = {
    sendRequest: (req, target) => {
      sent.push({ req, target });
      return { request: req };
    },
    cancel: () => undefined,
    sendStateless: (req, target) => sent.push({ req, target }),
    sendResponseStateless: () => undefined,
    interfaceFor: () => iface,
    interfaceOf: () => iface,
    isOwnAddress: (h, p) => h === '10.0.0.1' && (p ?? 5060) === 5060,
  };
  const proxy = new ProxyCore({ stack, isLocalDomain: () => false });
  const stx = (req: SipRequest) => ({ request: req, respond: (r: SipResponse) => upstream.push(r), onCancel: () => undefined });
  return { proxy, sent, upstream, stx };
}

function req(lines: string[]): SipRequest {
  const r = parseMessage(Buffer.from([...lines, 'Content-Length: 0', '', ''].join('\r\n')));
  if (!r.ok) throw new Error(r.reason);
  return r.value as SipRequest;
}

const base = ['From: <sip:a@d>;tag=1', 'To: <sip:b@d>;tag=2', 'Call-ID: c1', 'CSeq: 2 BYE', 'Max-Forwards: 70'];

describe('proxy routing (RFC 3261 §16.4, §16.6)', () => {
  it('loose routing: removes its own Route and forwards to the next one', async () => {
    const { proxy, sent, stx } = setup();
    const r = req(['BYE sip:b@192.0.2.9:5070 SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1', 'Route: <sip:10.0.0.1;lr>', 'Route: <sip:192.0.2.50:5080;lr>', ...base]);
    // Our address alone, with no route token, is consumed but proves nothing.
    expect(proxy.preprocessRoutes(r)).toEqual({ routed: true, authentic: false });
    await proxy.forward(r, stx(r), src, { kind: 'parallel', targets: [{ uri: r.uri }] });
    expect(sent[0]!.target).toMatchObject({ address: '192.0.2.50', port: 5080 });
    expect(sent[0]!.req.uri).toBe('sip:b@192.0.2.9:5070');
    expect(sent[0]!.req.getAll('Route')).toEqual(['<sip:192.0.2.50:5080;lr>']);
    expect(sent[0]!.req.get('Max-Forwards')).toBe('69');
  });

  it('strict router upstream: our address in the Request-URI is replaced by the last Route', () => {
    const { proxy } = setup();
    const r = req(['BYE sip:10.0.0.1 SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2', 'Route: <sip:192.0.2.50;lr>', 'Route: <sip:b@192.0.2.9:5070>', ...base]);
    proxy.preprocessRoutes(r);
    expect(r.uri).toBe('sip:b@192.0.2.9:5070');
    expect(r.getAll('Route')).toEqual(['<sip:192.0.2.50;lr>']);
  });

  it('strict router downstream: Request-URI goes to the end of Route, the strict router becomes the Request-URI', async () => {
    const { proxy, sent, stx } = setup();
    const r = req(['BYE sip:b@192.0.2.9:5070 SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK3', 'Route: <sip:192.0.2.60:5090>', ...base]);
    await proxy.forward(r, stx(r), src, { kind: 'parallel', targets: [{ uri: r.uri }] });
    expect(sent[0]!.req.uri).toBe('sip:192.0.2.60:5090');
    expect(sent[0]!.req.getAll('Route')).toEqual(['<sip:b@192.0.2.9:5070>']);
    expect(sent[0]!.target).toMatchObject({ address: '192.0.2.60', port: 5090 });
  });

  it('detects a loop (482) but not a spiral, and 483 at Max-Forwards 0', async () => {
    const { proxy, sent, stx } = setup();
    const lines = ['INVITE sip:x@192.0.2.77 SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK4', 'From: <sip:a@d>;tag=1', 'To: <sip:x@d>', 'Call-ID: loop1', 'CSeq: 1 INVITE', 'Max-Forwards: 70'];
    const r = req(lines);
    await proxy.forward(r, stx(r), src, { kind: 'parallel', targets: [{ uri: r.uri }] });
    const forwarded = sent[0]!.req;
    // The same request comes back to us unchanged: a loop.
    const back = req([forwarded.startLine(), ...forwarded.getAll('Via').map((v) => `Via: ${v}`), ...lines.slice(2).filter((l) => !l.startsWith('Max-Forwards')), 'Max-Forwards: 69']);
    expect(proxy.validate(back)).toMatchObject({ status: 482 });
    // Same Via but another Request-URI: a spiral, allowed.
    back.setUri('sip:y@192.0.2.78');
    expect(proxy.validate(back)).toBeUndefined();
    const mf0 = req([...lines.slice(0, 6), 'Max-Forwards: 0']);
    expect(proxy.validate(mf0)).toMatchObject({ status: 483 });
  });

  it('flow tokens round-trip and a forged one is refused', () => {
    const { proxy } = setup();
    const tok = proxy.flowToken({ transport: 'tcp', address: '198.51.100.7', port: 40123, connectionId: 9 });
    expect(proxy.parseFlowToken(tok)).toEqual({ transport: 'tcp', address: '198.51.100.7', port: 40123, connectionId: 9 });
    const forged = Buffer.from(Buffer.from(tok, 'base64url').toString().replace('198.51.100.7', '203.0.113.1')).toString('base64url');
    expect(proxy.parseFlowToken(forged)).toBeUndefined();
    expect(proxy.parseFlowToken('garbage!')).toBeUndefined();
  });

  describe('route tokens in Record-Route', () => {
    async function recordRouted() {
      const env = setup();
      const inv = req(['INVITE sip:b@192.0.2.9:5070 SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKrt1', 'From: <sip:a@d>;tag=caller1', 'To: <sip:b@d>', 'Call-ID: call-rt', 'CSeq: 1 INVITE', 'Max-Forwards: 70']);
      await env.proxy.forward(inv, env.stx(inv), src, { kind: 'parallel', targets: [{ uri: inv.uri }] });
      const rr = env.sent[0]!.req.getAll('Record-Route');
      expect(rr).toHaveLength(1);
      expect(rr[0]).toMatch(/^<sip:10\.0\.0\.1:5060;lr;tk=[0-9a-f]{24}>$/);
      return { ...env, rr: rr[0]! };
    }
    const inDialog = (route: string, callId: string, fromTag: string, toTag: string) =>
      req(['BYE sip:b@192.0.2.9:5070 SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKrt2', `Route: ${route}`, `From: <sip:a@d>;tag=${fromTag}`, `To: <sip:b@d>;tag=${toTag}`, `Call-ID: ${callId}`, 'CSeq: 2 BYE', 'Max-Forwards: 70']);

    it('a request back through our Record-Route is authentic, from either side of the dialog', async () => {
      const { proxy, rr } = await recordRouted();
      expect(proxy.preprocessRoutes(inDialog(rr, 'call-rt', 'caller1', 'callee9'))).toEqual({ routed: true, authentic: true });
      // The callee's request: its From-tag is the callee's, the caller's tag is in To.
      expect(proxy.preprocessRoutes(inDialog(rr, 'call-rt', 'callee9', 'caller1'))).toEqual({ routed: true, authentic: true });
    });

    it('the Route of one call is refused on another Call-ID, with other tags, or altered', async () => {
      const { proxy, rr } = await recordRouted();
      expect(proxy.preprocessRoutes(inDialog(rr, 'other-call', 'caller1', 'callee9')).authentic).toBe(false);
      expect(proxy.preprocessRoutes(inDialog(rr, 'call-rt', 'mallory', 'fake')).authentic).toBe(false);
      const altered = rr.replace(/tk=(.)/, (_m, c: string) => `tk=${c === 'A' ? 'B' : 'A'}`);
      expect(proxy.preprocessRoutes(inDialog(altered, 'call-rt', 'caller1', 'callee9')).authentic).toBe(false);
      expect(proxy.preprocessRoutes(inDialog('<sip:10.0.0.1:5060;lr;tk=AAAAAAAAAAAAAAAA>', 'call-rt', 'caller1', 'callee9')).authentic).toBe(false);
    });

    it('a token from another cluster secret is refused; one from a node sharing the secret is accepted', async () => {
      const { rr } = await recordRouted();
      const { proxy: other } = setup();
      expect(other.preprocessRoutes(inDialog(rr, 'call-rt', 'caller1', 'callee9')).authentic).toBe(false);
      const key = Buffer.alloc(32, 7);
      const a = new ProxyCore({ stack: setup().proxy.stack, isLocalDomain: () => false, routeTokenKey: key });
      const b = new ProxyCore({ stack: setup().proxy.stack, isLocalDomain: () => false, routeTokenKey: key });
      const tk = a.routeToken.sign('c9', 't1', '|');
      expect(b.preprocessRoutes(inDialog(`<sip:10.0.0.1;lr;tk=${tk}>`, 'c9', 't1', 't2')).authentic).toBe(true);
    });
  });
});
