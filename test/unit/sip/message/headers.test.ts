import { describe, expect, it } from 'vitest';
import { createResponse, parseMessage, serialize, SipRequest, type SipResponse } from '../../../../src/sip/message/index.js';

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'));
function req(text: string): SipRequest {
  const r = parseMessage(crlf(text));
  if (!r.ok) throw new Error(`${r.code}: ${r.reason}`);
  return r.value as SipRequest;
}
const base = (extra: string) => `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP h1.example.com;branch=z9hG4bK1
From: <sip:u@example.com>;tag=1
To: <sip:u@example.com>
Call-ID: c1
CSeq: 1 REGISTER
${extra}Content-Length: 0

`;

describe('header names', () => {
  it('compact forms i m f t v l c k s e o u r b x y', () => {
    const m = req(`SUBSCRIBE sip:a@example.com SIP/2.0
v: SIP/2.0/UDP h.example.com;branch=z9hG4bKc
f: <sip:b@example.com>;tag=9
t: <sip:a@example.com>
i: compact-1
CSeq: 1 SUBSCRIBE
m: <sip:b@h.example.com>
c: text/plain
k: timer
s: hello
e: gzip
o: presence
u: dialog
r: <sip:x@example.com>
b: <sip:y@example.com>
x: 1800
y: abc
l: 2

hi`);
    const expected: Record<string, string> = {
      'Call-ID': 'compact-1',
      Contact: '<sip:b@h.example.com>',
      From: '<sip:b@example.com>;tag=9',
      To: '<sip:a@example.com>',
      Via: 'SIP/2.0/UDP h.example.com;branch=z9hG4bKc',
      'Content-Length': '2',
      'Content-Type': 'text/plain',
      Supported: 'timer',
      Subject: 'hello',
      'Content-Encoding': 'gzip',
      Event: 'presence',
      'Allow-Events': 'dialog',
      'Refer-To': '<sip:x@example.com>',
      'Referred-By': '<sip:y@example.com>',
      'Session-Expires': '1800',
      Identity: 'abc',
    };
    for (const [name, value] of Object.entries(expected)) {
      expect(m.get(name), name).toBe(value);
      expect(m.get(name.toUpperCase()), name).toBe(value);
    }
    expect(m.callId).toBe('compact-1');
    expect(m.body.toString()).toBe('hi');
  });
});

describe('lists', () => {
  it('merges lines and splits commas outside quotes and <>', () => {
    const m = req(
      base(`Route: <sip:p1.example.com;lr>, "a, b" <sip:x,y@p2.example.com;lr>
Route: <sip:p3.example.com;lr>
Supported: path,  outbound ,gruu
`),
    );
    expect(m.getAll('Route')).toEqual(['<sip:p1.example.com;lr>', '"a, b" <sip:x,y@p2.example.com;lr>', '<sip:p3.example.com;lr>']);
    expect(m.routes.map((r) => r.uri.host)).toEqual(['p1.example.com', 'p2.example.com', 'p3.example.com']);
    expect(m.routes[1]!.displayName).toBe('a, b');
    expect(m.get('Route')).toBe('<sip:p1.example.com;lr>');
    expect(m.getAll('Supported')).toEqual(['path', 'outbound', 'gruu']);
  });

  it('never splits Authorization, WWW-Authenticate, Proxy-Authenticate, Proxy-Authorization, Date; nor unknown headers', () => {
    const m = req(
      base(`Authorization: Digest username="alice", realm="example.com", nonce="a,b", uri="sip:example.com", response="0123"
Authorization: Digest username="bob", realm="other.com", nonce="x", uri="sip:example.com", response="4567"
Proxy-Authorization: Digest username="p", realm="r", nonce="n", uri="sip:x", response="r"
WWW-Authenticate: Digest realm="example.com", nonce="abc", qop="auth,auth-int"
Proxy-Authenticate: Digest realm="example.com", nonce="abc"
Date: Sat, 13 Nov 2010 23:29:00 GMT
X-Unknown: a, b, c
`),
    );
    expect(m.getAll('Authorization')).toHaveLength(2);
    expect(m.getAll('Proxy-Authorization')).toHaveLength(1);
    expect(m.getAll('WWW-Authenticate')).toHaveLength(1);
    expect(m.getAll('Proxy-Authenticate')).toHaveLength(1);
    expect(m.getAll('Date')).toEqual(['Sat, 13 Nov 2010 23:29:00 GMT']);
    expect(m.getAll('X-Unknown')).toEqual(['a, b, c']);
    const creds = m.credentials('Authorization');
    expect(creds.map((c) => c.params.get('username'))).toEqual(['alice', 'bob']);
    expect(creds[0]!.params.get('nonce')).toBe('a,b');
    expect(m.credentials('WWW-Authenticate')[0]!.params.get('qop')).toBe('auth,auth-int');
  });

  it('Contact: *, expires and q params, several values', () => {
    const star = req(base('Contact: *\nExpires: 0\n'));
    expect(star.contacts).toEqual(['*']);
    expect(star.expires).toBe(0);
    const m = req(base('Contact: <sip:u@h1.example.com>;expires=3600;q=0.7, "U" <sip:u@h2.example.com>;q=1.0\nContact: sip:u@h3.example.com;expires=60\n'));
    const c = m.contacts.map((x) => (x === '*' ? x : [x.uri.host, x.params.get('expires'), x.params.get('q')]));
    expect(c).toEqual([
      ['h1.example.com', '3600', '0.7'],
      ['h2.example.com', undefined, '1.0'],
      ['h3.example.com', '60', undefined],
    ]);
    const bad = req(base('Contact: <sip:u@h1.example.com\n'));
    expect(bad.contacts).toEqual([]);
    expect(bad.contactsValid).toBe(false);
  });

  it('line folding and quoted strings with escapes', () => {
    const m = req(base('Subject: one\n  two\n\tthree\nX-Q: "a \\" b"\n'));
    expect(m.get('Subject')).toBe('one two three');
    expect(m.get('x-q')).toBe('"a \\" b"');
  });
});

describe('mutation and serialization', () => {
  const text = base('X-First: 1\nx-odd-CASE:   keep  me  \nRecord-Route: <sip:rr.example.com;lr>\n');

  it('unmodified message is byte-exact; a change re-renders only its own line', () => {
    const input = crlf(text);
    const m = req(text);
    expect(serialize(m).equals(input)).toBe(true);
    m.set('X-First', '2');
    const out = serialize(m).toString();
    expect(out).toBe(input.toString().replace('X-First: 1', 'X-First: 2'));
    expect(out).toContain('x-odd-CASE:   keep  me  \r\n');
  });

  it('typed caches follow set / append / prepend / remove / removeFirst', () => {
    const m = req(text);
    expect(m.vias).toHaveLength(1);
    m.prepend('Via', 'SIP/2.0/TCP p.example.com;branch=z9hG4bKp, SIP/2.0/UDP q.example.com;branch=z9hG4bKq');
    expect(m.vias.map((v) => v.host)).toEqual(['p.example.com', 'q.example.com', 'h1.example.com']);
    expect(m.removeFirst('Via')).toBe('SIP/2.0/TCP p.example.com;branch=z9hG4bKp');
    expect(m.vias.map((v) => v.host)).toEqual(['q.example.com', 'h1.example.com']);
    m.append('Record-Route', '<sip:rr2.example.com;lr>');
    expect(m.recordRoutes.map((r) => r.uri.host)).toEqual(['rr.example.com', 'rr2.example.com']);
    m.remove('record-route');
    expect(m.recordRoutes).toEqual([]);
    m.set('Max-Forwards', '69');
    expect(m.maxForwards).toBe(69);
    m.set('From', '<sip:v@example.com>;tag=2');
    expect(m.fromTag).toBe('2');
    // the serialized form parses to the same values
    const again = parseMessage(serialize(m));
    expect(again.ok && again.value.vias.map((v) => v.host)).toEqual(['q.example.com', 'h1.example.com']);
    expect(again.ok && again.value.fromTag).toBe('2');
  });

  it('Content-Length follows the body; start line changes are rendered', () => {
    const m = req(text);
    m.body = Buffer.from('hello');
    m.method = 'REGISTER';
    m.setUri('sip:registrar.example.com');
    const out = serialize(m).toString();
    expect(out.startsWith('REGISTER sip:registrar.example.com SIP/2.0\r\n')).toBe(true);
    expect(out).toContain('Content-Length: 5\r\n');
    expect(out.endsWith('\r\n\r\nhello')).toBe(true);
    expect(m.requestUri.host).toBe('registrar.example.com');
  });

  it('clone is independent', () => {
    const m = req(text);
    const c = m.clone();
    c.prepend('Via', 'SIP/2.0/UDP c.example.com;branch=z9hG4bKc');
    c.uri = 'sip:other.example.com';
    expect(m.vias).toHaveLength(1);
    expect(m.uri).toBe('sip:example.com');
    expect(c.vias).toHaveLength(2);
    expect(serialize(m).equals(crlf(text))).toBe(true);
  });

  it('non-ASCII header values are UTF-8 and survive a re-render', () => {
    const m = req(base('Subject: café ☕\n'));
    expect(m.get('Subject')).toBe('café ☕');
    m.set('X-New', 'naïve');
    const again = parseMessage(serialize(m));
    expect(again.ok && again.value.get('Subject')).toBe('café ☕');
    expect(again.ok && again.value.get('X-New')).toBe('naïve');
  });
});

describe('bad input classification', () => {
  const cases: [string, string, string, number][] = [
    ['Max-Forwards: abc\n', 'SIP_ERR_BAD_MAX_FORWARDS', 'Bad Max-Forwards', 400],
    ['Max-Forwards: 256\n', 'SIP_ERR_BAD_MAX_FORWARDS', 'Bad Max-Forwards', 400],
    ['Call-ID: c2\n', 'SIP_ERR_BAD_CALL_ID', 'Bad Call-ID', 400],
    ['Content-Length: 5\n', 'SIP_ERR_BAD_CONTENT_LENGTH', 'Bad Content-Length', 400],
  ];
  for (const [extra, code, reason] of cases) {
    it(`${code} / ${reason}`, () => {
      const r = parseMessage(crlf(base(extra)));
      expect(r).toMatchObject({ ok: false, code, reason });
      expect(!r.ok && r.partial).toBeInstanceOf(SipRequest);
    });
  }
  it('missing Via: not answerable; bad header line; bad start line; ACK is never answered', () => {
    const noVia = parseMessage(crlf(base('').replace(/Via:.*\n/, '')));
    expect(noVia).toMatchObject({ ok: false, reason: 'Missing Via' });
    expect(!noVia.ok && noVia.partial).toBeUndefined();
    expect(parseMessage(crlf(base('no colon here\n')))).toMatchObject({ ok: false, code: 'SIP_ERR_BAD_HEADER' });
    expect(parseMessage(crlf('HELLO\n\n'))).toMatchObject({ ok: false, code: 'SIP_ERR_BAD_START_LINE' });
    const ack = parseMessage(crlf(base('').replace('REGISTER sip', 'ACK sip').replace('Call-ID: c1\n', '')));
    expect(ack).toMatchObject({ ok: false, reason: 'Missing Call-ID' });
    expect(!ack.ok && ack.partial).toBeUndefined();
  });
  it('a partial request gets a 400 echoing its Via, From, To (with tag), Call-ID, CSeq', () => {
    const r = parseMessage(crlf(base('Max-Forwards: x\n')));
    expect(r.ok).toBe(false);
    if (r.ok || !r.partial) return;
    const res = parseMessage(serialize(createResponse(r.partial, 400, r.reason)));
    expect(res.ok).toBe(true);
    const m = res.ok ? (res.value as SipResponse) : undefined!;
    expect(m.status).toBe(400);
    expect(m.reason).toBe('Bad Max-Forwards');
    expect(m.topVia.branch).toBe('z9hG4bK1');
    expect(m.toTag).toBeDefined();
    expect(m.callId).toBe('c1');
  });
  it('a bad response is flagged for dropping', () => {
    expect(parseMessage(crlf('SIP/2.0 200 OK\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nCSeq: x\n\n'))).toMatchObject({ ok: false, response: true });
  });
});

describe('folding edge cases', () => {
  it('a value that starts on the next line has no leading space', () => {
    const m = req(base('Route:\n <sip:p1.example.com;lr>\nX-Empty:\n\t\n'));
    expect(m.get('Route')).toBe('<sip:p1.example.com;lr>');
    expect(m.get('X-Empty')).toBe('');
    expect(serialize(m).toString()).toContain('Route:\r\n <sip:p1.example.com;lr>\r\n');
  });
});

describe('Via typed access', () => {
  it('IPv6 sent-by, received, rport, maddr, ttl (RFC 3261 §20.42, RFC 3581, RFC 5118 §4.5)', () => {
    const m = req(
      base('').replace(
        /Via:.*\n/,
        'Via: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;received=2001:db8::9:255;rport=5071;maddr=239.255.255.1;ttl=16\nVia: SIP / 2.0 / tcp h2.example.com ; branch = z9hG4bK2 ; rport\n',
      ),
    );
    const [a, b] = m.vias;
    expect(a).toMatchObject({ protocol: 'SIP/2.0', transport: 'UDP', host: '[2001:db8::9:1]', port: 5070, branch: 'z9hG4bKas3-111', received: '2001:db8::9:255', rport: 5071, maddr: '239.255.255.1', ttl: 16 });
    expect(b).toMatchObject({ transport: 'TCP', host: 'h2.example.com', port: undefined, branch: 'z9hG4bK2', rport: null });
    expect(m.topVia).toEqual(a);
  });
  it('bad via-params make the message invalid but keep the sent-by for answering', () => {
    for (const bad of ['branch', 'rport=abc', 'ttl=300', 'received', 'maddr']) {
      const r = parseMessage(crlf(base('').replace('branch=z9hG4bK1', bad)));
      expect(r, bad).toMatchObject({ ok: false, code: 'SIP_ERR_BAD_VIA' });
      expect(!r.ok && r.partial?.topVia.host).toBe('h1.example.com');
    }
  });
});
