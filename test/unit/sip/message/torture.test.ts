/**
 * RFC 4475 torture messages (test/fixtures/sip/rfc4475/*.sip, one raw message per file, CRLF
 * line ends, the RFC's <hex>/<repeat> notation expanded). Valid messages must parse to the
 * right values; invalid ones must be rejected with the status the RFC asks for, which
 * `sipErrorStatus(code)` gives. Where RFC 4475 leaves the choice to the element, the comment
 * says what Tandem does.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createResponse,
  parseMessage,
  serialize,
  sipErrorStatus,
  SipRequest,
  SipResponse,
  type ParseResult,
} from '../../../../src/sip/message/index.js';
import { unescapeUri, urisEqual, parseUri } from '../../../../src/sip/uri/sip-uri.js';

const raw = (name: string): Buffer => readFileSync(new URL(`../../../fixtures/sip/rfc4475/${name}.sip`, import.meta.url));
const parse = (name: string): ParseResult => parseMessage(raw(name));

function req(name: string): SipRequest {
  const r = parse(name);
  if (!r.ok) throw new Error(`${name}: ${r.code} ${r.reason}`);
  expect(r.value).toBeInstanceOf(SipRequest);
  return r.value as SipRequest;
}
function res(name: string): SipResponse {
  const r = parse(name);
  if (!r.ok) throw new Error(`${name}: ${r.code} ${r.reason}`);
  expect(r.value).toBeInstanceOf(SipResponse);
  return r.value as SipResponse;
}
/** Rejected request that can be answered: returns [status, reason, partial]. */
function rejected(name: string): { status: number; reason: string; partial: SipRequest | undefined; code: string } {
  const r = parse(name);
  if (r.ok) throw new Error(`${name} accepted`);
  return { status: sipErrorStatus(r.code), reason: r.reason, partial: r.partial, code: r.code };
}
/** Every valid message survives serialize byte for byte, and reparses to the same headers. */
function roundTrip(name: string): void {
  const buf = raw(name);
  const r = parseMessage(buf);
  expect(r.ok).toBe(true);
  if (!r.ok) return;
  const out = serialize(r.value);
  expect(buf.subarray(0, out.length).equals(out)).toBe(true);
  const again = parseMessage(out);
  expect(again.ok).toBe(true);
}

describe('RFC 4475 §3.1.1 valid messages', () => {
  it('3.1.1.1 wsinv: short tortuous INVITE', () => {
    const m = req('wsinv');
    expect(m.method).toBe('INVITE');
    expect(m.requestUri.user).toBe('vivekg');
    expect(m.requestUri.host).toBe('chair-dnrc.example.com');
    expect([...m.requestUri.params]).toEqual([['unknownparam', null]]);
    expect(m.to.uri.user).toBe('vivekg');
    expect(m.toTag).toBe('1918181833n');
    expect(m.from.displayName).toBe('J Rosenberg \\"');
    expect(m.fromTag).toBe('98asjd8');
    expect(m.maxForwards).toBe(68);
    expect(m.callId).toBe('wsinv.ndaksdj@192.0.2.1');
    expect(m.contentLength).toBe(150);
    expect(m.body.length).toBe(150);
    expect(m.cseq).toEqual({ seq: 9, method: 'INVITE' });
    expect(m.vias.map((v) => [v.transport, v.host, v.branch])).toEqual([
      ['UDP', '192.0.2.2', '390skdjuw'],
      ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
      ['UDP', '192.168.255.111', 'z9hG4bK30239'],
    ]);
    expect(m.get('Subject')).toBe('');
    expect(m.has('s')).toBe(true);
    expect(m.get('NewFangledHeader')).toBe('newfangled value continued newfangled value');
    // unknown header: never split, value kept as is
    expect(m.getAll('UnknownHeaderWithUnusualValue')).toEqual([';;,,;;,;']);
    expect(m.contentType).toBe('application/sdp');
    expect(m.routes).toHaveLength(1);
    expect([...m.routes[0]!.uri.params]).toEqual([
      ['lr', null],
      ['unknownwith', 'value'],
      ['unknown-no-value', null],
    ]);
    const c = m.contacts[0]!;
    expect(c).not.toBe('*');
    if (c === '*') return;
    expect(c.displayName).toBe('Quoted string ""');
    expect(c.uri.user).toBe('jdrosen');
    expect([...c.params]).toEqual([
      ['newparam', 'newvalue'],
      ['secondparam', null],
      ['q', '0.33'],
    ]);
    roundTrip('wsinv');
  });

  it('3.1.1.2 intmeth: wide range of valid characters', () => {
    const m = req('intmeth');
    expect(m.method).toBe("!interesting-Method0123456789_*+`.%indeed'~");
    const u = m.requestUri;
    expect(u.user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    expect(u.password).toBe("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    expect(u.host).toBe('example.com');
    expect(m.topVia.branch).toBe("z9hG4bK-.!%66*_+`'~");
    expect(m.to.displayName).toBe('BEL:\x07 NUL:\x00 DEL:\x7f');
    expect(m.to.uri.user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    expect(m.from.displayName).toBe("token1~` token2'+_ token3*%!.-");
    expect(m.from.params.get("fromparam''~+*_!.-%")).toBe('"работающий"');
    expect(m.fromTag).toBe("_token~1'+`*%!-.");
    expect(m.callId).toBe("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    expect(m.cseq).toEqual({ seq: 139122385, method: "!interesting-Method0123456789_*+`.%indeed'~" });
    expect(m.maxForwards).toBe(255);
    expect(m.get("extensionHeader-!.%*+_`'~")).toBe('\ufeff大停電');
    expect(m.contentLength).toBe(0);
    roundTrip('intmeth');
  });

  it('3.1.1.3 esc01: valid use of % escaping', () => {
    const m = req('esc01');
    expect(m.requestUri.user).toBe('sips%3Auser%40example.com');
    expect(unescapeUri(m.requestUri.user!)).toBe('sips:user@example.com');
    expect(m.requestUri.host).toBe('example.net');
    expect(unescapeUri(m.to.uri.user!)).toBe('user');
    const plain = parseUri('sip:user@example.com');
    expect(plain.ok && urisEqual(m.to.uri, plain.value)).toBe(true);
    expect(unescapeUri(m.from.uri.user!)).toBe('I have spaces');
    expect(m.callId).toBe('esc01.239409asdfakjkn23onasd0-3234');
    expect(m.contentType).toBe('application/sdp');
    const c = m.contacts[0]!;
    if (c === '*') throw new Error('star');
    expect(unescapeUri(c.uri.user!)).toBe('caller');
    expect(c.uri.params.has('%6c%72')).toBe(true);
    // "value%41" after one level of unescaping — never recursive (RFC 3986)
    expect(unescapeUri(c.uri.params.get('n%61me')!)).toBe('value%41');
    expect(m.body.length).toBe(150);
    roundTrip('esc01');
  });

  it('3.1.1.4 escnull: escaped nulls in URIs', () => {
    const m = req('escnull');
    expect(m.method).toBe('REGISTER');
    expect(m.to.uri.user).toBe('null-%00-null');
    expect(unescapeUri(m.to.uri.user!)).toBe('null-\x00-null');
    expect(m.contacts.map((c) => (c === '*' ? c : unescapeUri(c.uri.user!)))).toEqual(['\x00', '\x00\x00']);
    expect(m.contentLength).toBe(0);
    roundTrip('escnull');
  });

  it('3.1.1.5 esc02: % that is not an escape', () => {
    const m = req('esc02');
    expect(m.method).toBe('RE%47IST%45R'); // an unknown method, not REGISTER
    expect(m.cseq.method).toBe('RE%47IST%45R');
    expect(m.to.displayName).toBe('%Z%45');
    expect(m.from.displayName).toBe('%Z%45');
    expect(m.topVia.branch).toBe('z9hG4bK209%fzsnel234');
    // two Contact values; C%6Fntact is an unknown header
    expect(m.contacts).toHaveLength(2);
    expect(m.get('C%6Fntact')).toBe('<sip:alias2@host2.example.com>');
    roundTrip('esc02');
  });

  it('3.1.1.6 lwsdisp: no LWS between display name and <', () => {
    const m = req('lwsdisp');
    expect(m.from.displayName).toBe('caller');
    expect(m.from.uri.user).toBe('caller');
    expect(m.fromTag).toBe('323');
    roundTrip('lwsdisp');
  });

  it('3.1.1.7 longreq: long values in header fields', () => {
    const m = req('longreq');
    expect(m.to.displayName).toBe(`I have a user name of ${'extreme'.repeat(10)} proportion`);
    expect(m.to.uri.port).toBe(6000);
    expect(m.to.uri.params.get('unknownparam1')).toBe(`very${'long'.repeat(20)}value`);
    expect(m.to.uri.params.get(`longparam${'name'.repeat(25)}`)).toBe('shortvalue');
    expect(m.to.uri.params.get(`very${'long'.repeat(25)}parameternamewithnovalue`)).toBeNull();
    expect(m.from.uri.user).toBe('amazinglylongcallername'.repeat(5));
    expect(m.fromTag).toBe(`12${'982'.repeat(50)}424`);
    expect(m.callId).toBe(`longreq.one${'really'.repeat(20)}longcallid`);
    expect(m.vias).toHaveLength(34);
    expect(m.vias[0]!.host).toBe('sip33.example.com');
    expect(m.vias[32]!.host).toBe('sip1.example.com');
    expect(m.vias[33]!.branch).toBe(`very${'long'.repeat(50)}branchvalue`);
    expect(m.vias[33]!.received).toBe('192.0.2.5');
    expect(m.get(`Unknown-${'Long'.repeat(20)}-Name`)).toMatch(/^unknown-(long){20}-value; /);
    expect(m.body.length).toBe(150);
    roundTrip('longreq');
  });

  it('3.1.1.8 dblreq: extra trailing octets in a UDP datagram are ignored', () => {
    const m = req('dblreq');
    expect(m.method).toBe('REGISTER');
    expect(m.callId).toBe('dblreq.0ha0isndaksdj99sdfafnl3lk233412');
    expect(m.contentLength).toBe(0);
    expect(m.body.length).toBe(0);
    // the INVITE after the REGISTER is not part of the message
    expect(serialize(m).toString('latin1')).not.toContain('INVITE');
    roundTrip('dblreq');
  });

  it('3.1.1.9 semiuri: semicolons in the user part', () => {
    const m = req('semiuri');
    expect(m.requestUri.user).toBe('user;par=u%40example.net');
    expect(m.requestUri.host).toBe('example.com');
    expect(m.requestUri.params.size).toBe(0);
    expect(m.getAll('Accept')).toEqual([
      'application/sdp',
      'application/pkcs7-mime',
      'multipart/mixed',
      'multipart/signed',
      'message/sip',
      'message/sipfrag',
    ]);
    roundTrip('semiuri');
  });

  it('3.1.1.10 transports: varied and unknown transport types', () => {
    const m = req('transports');
    expect(m.vias.map((v) => v.transport)).toEqual(['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']);
    expect(m.callId).toBe('transports.kijh4akdnaqjkwendsasfdj');
    roundTrip('transports');
  });

  it('3.1.1.11 mpart01: multipart MIME body with binary content (body bytes untouched)', () => {
    const buf = raw('mpart01');
    const m = req('mpart01');
    expect(m.method).toBe('MESSAGE');
    expect(m.contentType).toBe('multipart/mixed;boundary=7a9cbec02ceef655');
    expect(m.body.length).toBe(m.contentLength);
    expect(m.body.equals(buf.subarray(buf.indexOf('\r\n\r\n') + 4))).toBe(true);
    expect(m.topVia.rport).toBeNull();
    expect(m.get('Identity')).toMatch(/^r5mwreLuyDRYBi/);
    expect(m.get('Date')).toBe('Sat, 15 Oct 2005 04:44:56 GMT');
    roundTrip('mpart01');
  });

  it('3.1.1.12 unreason: unusual (UTF-8) reason phrase', () => {
    const m = res('unreason');
    expect(m.status).toBe(200);
    expect(m.reason).toBe('= 2**3 * 5**2 но сто девяносто девять - простое');
    expect(m.body.length).toBe(154);
    roundTrip('unreason');
  });

  it('3.1.1.13 noreason: empty reason phrase', () => {
    const m = res('noreason');
    expect(m.status).toBe(100);
    expect(m.reason).toBe('');
    expect(m.toTag).toBe('902jndnke3');
    roundTrip('noreason');
  });
});

describe('RFC 4475 §3.1.2 invalid messages', () => {
  it('3.1.2.1 badinv01: extraneous separators in Via -> 400, answerable via the top sent-by', () => {
    const r = rejected('badinv01');
    expect(r).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_VIA', reason: 'Bad Via' });
    expect(r.partial?.topVia.host).toBe('192.0.2.15');
    const answer = createResponse(r.partial!, r.status, r.reason);
    expect(serialize(answer).toString()).toMatch(/^SIP\/2.0 400 Bad Via\r\nVia: SIP\/2.0\/UDP 192.0.2.15;;,;,,\r\n/);
  });

  it('3.1.2.2 clerr: Content-Length larger than the datagram -> 400', () => {
    expect(rejected('clerr')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_CONTENT_LENGTH' });
    expect(rejected('clerr').partial).toBeInstanceOf(SipRequest);
  });

  it('3.1.2.3 ncl: negative Content-Length -> 400', () => {
    expect(rejected('ncl')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_CONTENT_LENGTH', reason: 'Bad Content-Length' });
  });

  it('3.1.2.4 scalar02: overlarge CSeq / Max-Forwards / Expires -> 400', () => {
    expect(rejected('scalar02')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_CSEQ', reason: 'Bad CSeq' });
  });

  it('3.1.2.5 scalarlg: response with overlarge scalars is dropped', () => {
    const r = parse('scalarlg');
    expect(r).toMatchObject({ ok: false, response: true, code: 'SIP_ERR_BAD_CSEQ' });
    expect(!r.ok && r.partial).toBeFalsy();
  });

  it('3.1.2.6 quotbal: unterminated quoted string -> 400', () => {
    expect(rejected('quotbal')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_TO', reason: 'Bad To' });
  });

  it('3.1.2.7 ltgtruri: <> around the Request-URI -> 400', () => {
    expect(rejected('ltgtruri')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_URI', reason: 'Bad Request-URI' });
  });

  it('3.1.2.8 lwsruri: LWS inside the Request-URI -> 400', () => {
    const r = rejected('lwsruri');
    expect(r).toMatchObject({ status: 400, reason: 'Bad Request-URI' });
    expect(r.partial).toBeInstanceOf(SipRequest);
  });

  it('3.1.2.9 lwsstart: several SPs between Request-Line elements -> 400 (we are not liberal here)', () => {
    expect(rejected('lwsstart')).toMatchObject({ status: 400, reason: 'Bad Request-URI' });
  });

  it('3.1.2.10 trws: trailing SP after the SIP-Version -> 400 (RFC allows liberal acceptance; we reject)', () => {
    expect(rejected('trws')).toMatchObject({ status: 400, reason: 'Bad SIP version' });
    expect(rejected('trws').partial).toBeInstanceOf(SipRequest);
  });

  it('3.1.2.11 escruri: headers in the Request-URI -> 400', () => {
    expect(rejected('escruri')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_URI', reason: 'Bad Request-URI' });
  });

  it('3.1.2.12 baddate: bad Date time zone — accepted (liberal): Date is not interpreted, relayed unchanged', () => {
    const m = req('baddate');
    expect(m.get('Date')).toBe('Fri, 01 Jan 2010 16:00:00 EST');
    roundTrip('baddate');
  });

  it('3.1.2.13 regbadct: Contact URI with ? not in <> — message parses, Contact is invalid (registrar answers 400)', () => {
    const m = req('regbadct');
    expect(m.contactsValid).toBe(false);
    expect(m.contacts).toEqual([]);
  });

  it('3.1.2.14 badaspec: spaces within addr-spec -> 400', () => {
    expect(rejected('badaspec')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_TO' });
  });

  it('3.1.2.15 baddn: non-token characters in display name -> 400', () => {
    expect(rejected('baddn')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_FROM', reason: 'Bad From' });
  });

  it('3.1.2.16 badvers: SIP/7.0 -> 505, answerable', () => {
    const r = rejected('badvers');
    expect(r).toMatchObject({ status: 505, code: 'SIP_ERR_BAD_VERSION', reason: 'Version Not Supported' });
    expect(r.partial?.callId).toBe('badvers.31417@c.example.com');
  });

  it('3.1.2.17 mismatch01: CSeq method differs from the Request-Line -> 400', () => {
    expect(rejected('mismatch01')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_CSEQ', reason: 'CSeq method mismatch' });
  });

  it('3.1.2.18 mismatch02: unknown method with CSeq mismatch -> 400', () => {
    expect(rejected('mismatch02')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_CSEQ', reason: 'CSeq method mismatch' });
  });

  it('3.1.2.19 bigcode: overlarge response code is dropped', () => {
    expect(parse('bigcode')).toMatchObject({ ok: false, response: true, code: 'SIP_ERR_BAD_START_LINE' });
  });
});

describe('RFC 4475 §3.2 transaction layer semantics', () => {
  it('3.2.1 badbranch: branch is exactly the magic cookie — parses; the transaction layer decides', () => {
    const m = req('badbranch');
    expect(m.topVia.branch).toBe('z9hG4bK');
    roundTrip('badbranch');
  });
});

describe('RFC 4475 §3.3 application layer semantics', () => {
  it('3.3.1 insuf: missing To, From, Call-ID, Max-Forwards -> 400 naming a missing header', () => {
    const r = rejected('insuf');
    expect(r).toMatchObject({ status: 400, code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing From' });
    expect(r.partial?.topVia.branch).toBe('z9hG4bKkdj.insuf');
  });

  it('3.3.2 unkscm: unknown Request-URI scheme -> 416', () => {
    const r = rejected('unkscm');
    expect(r).toMatchObject({ status: 416, code: 'SIP_ERR_UNSUPPORTED_URI_SCHEME', reason: 'Unsupported URI Scheme' });
    expect(r.partial?.uri).toBe('nobodyKnowsThisScheme:totallyopaquecontent');
  });

  it('3.3.3 novelsc: known but atypical scheme (soap.beep) -> 416 (we route sip/sips/tel only)', () => {
    expect(rejected('novelsc')).toMatchObject({ status: 416, code: 'SIP_ERR_UNSUPPORTED_URI_SCHEME' });
  });

  it('3.3.4 unksm2: non-SIP URIs in To/From -> 400 (we accept only sip/sips/tel addresses)', () => {
    expect(rejected('unksm2')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_FROM', reason: 'Bad From' });
  });

  it('3.3.5 bext01: unknown Require / Proxy-Require — parses; 420 is the application\'s answer', () => {
    const m = req('bext01');
    expect(m.getAll('Require')).toEqual(['nothingSupportsThis', 'nothingSupportsThisEither']);
    expect(m.getAll('Proxy-Require')).toEqual(['noProxiesSupportThis', 'norDoAnyProxiesSupportThis']);
  });

  it('3.3.6 invut: unknown Content-Type — parses; 415 is the UAS\'s answer', () => {
    const m = req('invut');
    expect(m.contentType).toBe('application/unknownformat');
    expect(m.body.toString()).toBe('<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n');
  });

  it('3.3.7 regaut01: unknown authorization scheme — parses with typed access', () => {
    const m = req('regaut01');
    expect(m.credentials('Authorization')).toEqual([{ scheme: 'NoOneKnowsThisScheme', params: new Map([['opaque-data', 'here']]) }]);
  });

  it('3.3.8 multi01: several values in single-value headers -> 400', () => {
    const r = rejected('multi01');
    expect(r.status).toBe(400);
    expect(r.reason).toBe('Bad From');
  });

  it('3.3.9 mcl01: several Content-Length values -> 400', () => {
    expect(rejected('mcl01')).toMatchObject({ status: 400, code: 'SIP_ERR_BAD_CONTENT_LENGTH' });
  });

  it('3.3.10 bcast: 200 OK with a broadcast Via parses; the proxy layer discards it', () => {
    const m = res('bcast');
    expect(m.vias[1]!.host).toBe('255.255.255.255');
  });

  it('3.3.11 zeromf: Max-Forwards 0 parses; a proxy answers 483', () => {
    expect(req('zeromf').maxForwards).toBe(0);
  });

  it('3.3.12 cparam01: addr-spec Contact — parameter belongs to the header, not the URI', () => {
    const c = req('cparam01').contacts[0]!;
    if (c === '*') throw new Error('star');
    expect(c.params.has('unknownparam')).toBe(true);
    expect(c.uri.params.size).toBe(0);
    expect(c.uri.user).toBe('+19725552222');
  });

  it('3.3.13 cparam02: name-addr Contact — parameter belongs to the URI', () => {
    const c = req('cparam02').contacts[0]!;
    if (c === '*') throw new Error('star');
    expect(c.uri.params.has('unknownparam')).toBe(true);
    expect(c.params.size).toBe(0);
  });

  it('3.3.14 regescrt: escaped header in a Contact URI is kept', () => {
    const c = req('regescrt').contacts[0]!;
    if (c === '*') throw new Error('star');
    expect(unescapeUri(c.uri.headers.get('route')!)).toBe('<sip:sip.example.com>');
  });

  it('3.3.15 sdp01: Accept without SDP parses; 406 is the UAS\'s answer', () => {
    expect(req('sdp01').getAll('Accept')).toEqual(['text/nobodyKnowsThis']);
  });
});

describe('RFC 4475 §3.4 backward compatibility', () => {
  it('3.4.1 inv2543: RFC 2543 INVITE (no branch, no tags, no Max-Forwards, no Content-Length) parses', () => {
    const m = req('inv2543');
    expect(m.topVia.branch).toBeUndefined();
    expect(m.fromTag).toBeUndefined();
    expect(m.maxForwards).toBeUndefined();
    expect(m.contentLength).toBeUndefined();
    expect(m.to.params.get('user')).toBe('phone'); // addr-spec: ;user=phone is a header parameter
    expect(m.from.uri.params.get('user')).toBe('phone');
    expect(m.recordRoutes[0]!.uri.params.get('maddr')).toBe('ss1.example.com');
    expect(m.body.length).toBe(105);
  });
});
