import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createRequest,
  createResponse,
  frameStream,
  newBranch,
  parseMessage,
  serialize,
  SipRequest,
  SipResponse,
} from '../../../../src/sip/message/index.js';

const fixture = (name: string) => readFileSync(new URL(`../../../fixtures/sip/${name}`, import.meta.url));
const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'));

function parseReq(buf: Buffer): SipRequest {
  const r = parseMessage(buf);
  if (!r.ok) throw new Error(`${r.code}: ${r.reason}`);
  expect(r.value).toBeInstanceOf(SipRequest);
  return r.value as SipRequest;
}

describe('parseMessage: typical INVITE', () => {
  const buf = fixture('invite-typical.sip');
  it('parses start line and routing headers', () => {
    const m = parseReq(buf);
    expect(m.method).toBe('INVITE');
    expect(m.uri).toBe('sip:bob@biloxi.example.com');
    expect(m.requestUri.user).toBe('bob');
    expect(m.requestUri.host).toBe('biloxi.example.com');
    expect(m.vias).toHaveLength(2);
    expect(m.topVia.branch).toBe('z9hG4bK776asdhds');
    expect(m.topVia.rport).toBeNull();
    expect(m.topVia.port).toBe(5060);
    expect(m.vias[1]!.received).toBe('192.0.2.1');
    expect(m.callId).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(m.cseq).toEqual({ seq: 314159, method: 'INVITE' });
    expect(m.fromTag).toBe('1928301774');
    expect(m.from.displayName).toBe('Alice');
    expect(m.toTag).toBeUndefined();
    expect(m.maxForwards).toBe(70);
    expect(m.contentLength).toBe(m.body.length);
    expect(m.contentType).toBe('application/sdp');
    expect(m.recordRoutes[0]!.uri.params.has('lr')).toBe(true);
    const c = m.contacts[0];
    expect(c !== '*' && c?.uri.params.get('transport')).toBe('udp');
    expect(m.getAll('Allow')).toEqual(['INVITE', 'ACK', 'CANCEL', 'OPTIONS', 'BYE', 'REFER', 'NOTIFY']);
  });
  it('serializes an unmodified message byte for byte', () => {
    expect(serialize(parseReq(buf)).equals(buf)).toBe(true);
  });
  it('re-renders only modified lines', () => {
    const m = parseReq(buf);
    m.prepend('Via', 'SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1');
    const out = serialize(m).toString('latin1');
    expect(out).toBe(
      buf.toString('latin1').replace('Via:', 'Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\nVia:'),
    );
    expect(m.topVia.host).toBe('proxy.example.com');
    expect(m.removeFirst('Via')).toBe('SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1');
    expect(m.topVia.branch).toBe('z9hG4bK776asdhds');
  });
});

describe('parseMessage: response', () => {
  it('parses a 200 OK', () => {
    const buf = fixture('ok-200-invite.sip');
    const r = parseMessage(buf);
    expect(r.ok).toBe(true);
    const m = r.ok ? (r.value as SipResponse) : undefined!;
    expect(m.status).toBe(200);
    expect(m.reason).toBe('OK');
    expect(m.toTag).toBe('a6c85cf');
    expect(m.topVia.rport).toBe(5060);
    expect(serialize(m).equals(buf)).toBe(true);
  });
});

describe('parseMessage: errors', () => {
  const base = `OPTIONS sip:a@example.com SIP/2.0
Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1
From: <sip:b@example.com>;tag=1
To: <sip:a@example.com>
Call-ID: x1
CSeq: 1 OPTIONS
Content-Length: 0

`;
  it('accepts the base', () => expect(parseMessage(crlf(base)).ok).toBe(true));
  it('missing Call-ID -> partial with reason', () => {
    const r = parseMessage(crlf(base.replace('Call-ID: x1\n', '')));
    expect(r).toMatchObject({ ok: false, code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing Call-ID' });
    expect(!r.ok && r.partial).toBeInstanceOf(SipRequest);
  });
  it('bad CSeq', () => {
    const r = parseMessage(crlf(base.replace('CSeq: 1 OPTIONS', 'CSeq: x OPTIONS')));
    expect(r).toMatchObject({ ok: false, code: 'SIP_ERR_BAD_CSEQ', reason: 'Bad CSeq' });
  });
  it('too large before any work', () => {
    expect(parseMessage(Buffer.alloc(70000, 65))).toMatchObject({ ok: false, code: 'SIP_ERR_TOO_LARGE' });
  });
  it('UDP: longer body truncated, shorter is an error', () => {
    const long = parseMessage(crlf(base.replace('Content-Length: 0', 'Content-Length: 2') + 'abcd'));
    expect(long.ok && long.value.body.toString()).toBe('ab');
    const short = parseMessage(crlf(base.replace('Content-Length: 0', 'Content-Length: 9') + 'abcd'));
    expect(short).toMatchObject({ ok: false, code: 'SIP_ERR_BAD_CONTENT_LENGTH' });
  });
  it('stream: Content-Length required', () => {
    const r = parseMessage(crlf(base.replace('Content-Length: 0\n', '')), { stream: true });
    expect(r).toMatchObject({ ok: false, code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing Content-Length' });
  });
});

describe('frameStream', () => {
  it('frames by Content-Length', () => {
    const a = fixture('invite-typical.sip');
    const both = Buffer.concat([a, a]);
    expect(frameStream(both)).toEqual({ type: 'message', length: a.length });
    expect(frameStream(a.subarray(0, 500))).toMatchObject({ type: 'need' });
    expect(frameStream(Buffer.from('\r\n\r\n'))).toEqual({ type: 'ping', length: 4 });
  });
});

describe('builders', () => {
  it('createRequest / createResponse round-trip through the parser', () => {
    const req = createRequest({
      method: 'OPTIONS',
      uri: 'sip:bob@example.com',
      from: '<sip:alice@example.com>',
      to: '<sip:bob@example.com>',
      via: `SIP/2.0/UDP 127.0.0.1:5060;branch=${newBranch()}`,
    });
    const parsed = parseReq(serialize(req));
    expect(parsed.fromTag).toMatch(/^[0-9a-f]{16}$/);
    expect(parsed.maxForwards).toBe(70);
    expect(parsed.topVia.branch).toMatch(/^z9hG4bK/);
    const res = createResponse(parsed, 200);
    const pr = parseMessage(serialize(res));
    expect(pr.ok).toBe(true);
    const r = pr.ok ? (pr.value as SipResponse) : undefined!;
    expect(r.status).toBe(200);
    expect(r.reason).toBe('OK');
    expect(r.toTag).toBeDefined();
    expect(r.callId).toBe(parsed.callId);
    expect(r.topVia.branch).toBe(parsed.topVia.branch);
  });
});
