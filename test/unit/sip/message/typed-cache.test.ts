import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createResponse, parseMessage, serialize, type SipMessage, type SipRequest, type SipResponse } from '../../../../src/sip/message/index.js';

const invite = readFileSync(new URL('../../../fixtures/sip/invite-typical.sip', import.meta.url));
const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'));
function parse(buf: Buffer): SipMessage {
  const r = parseMessage(buf);
  if (!r.ok) throw new Error(`${r.code}: ${r.reason}`);
  return r.value;
}
/** What a fresh parse of the serialized message gives (the reference for cached values). */
const reparsed = (m: SipMessage) => parse(Buffer.from(serialize(m)));

describe('typed cache: per-header invalidation', () => {
  it('changing one header keeps the cached values of the others (same objects) and re-reads the changed one', () => {
    const m = parse(invite);
    const vias = m.vias;
    const via = m.topVia;
    const from = m.from;
    const to = m.to;
    const cseq = m.cseq;
    const contacts = m.contacts;
    const rr = m.recordRoutes;
    const callId = m.callId;
    m.set('Max-Forwards', '69');
    expect(m.maxForwards).toBe(69);
    expect(m.topVia).toBe(via);
    expect(m.vias).toBe(vias);
    expect(m.from).toBe(from);
    expect(m.to).toBe(to);
    expect(m.cseq).toBe(cseq);
    expect(m.contacts).toBe(contacts);
    expect(m.recordRoutes).toBe(rr);
    expect(m.callId).toBe(callId);

    m.set('To', '<sip:carol@example.org>;tag=xyz');
    expect(m.toTag).toBe('xyz');
    expect(m.to.uri.host).toBe('example.org');
    expect(m.from).toBe(from);
    expect(m.topVia).toBe(via);
    expect(m.cseq).toBe(cseq);
  });

  it('each cached header is re-read after its own change (set, append, prepend, remove, removeFirst)', () => {
    const m = parse(invite);
    void [m.topVia, m.vias, m.callId, m.cseq, m.from, m.to, m.contacts, m.routes, m.recordRoutes];
    m.prepend('Via', 'SIP/2.0/TCP new.example.com;branch=z9hG4bKnew');
    expect(m.topVia.host).toBe('new.example.com');
    expect(m.vias.length).toBe(3);
    m.removeFirst('Via');
    expect(m.topVia.branch).toBe('z9hG4bK776asdhds');
    expect(m.vias.length).toBe(2);
    m.set('Call-ID', 'other@x');
    expect(m.callId).toBe('other@x');
    m.set('CSeq', '7 INVITE');
    expect(m.cseq).toEqual({ seq: 7, method: 'INVITE' });
    m.set('From', '<sip:a@b.example>;tag=f2');
    expect(m.fromTag).toBe('f2');
    m.append('Contact', '<sip:second@example.com>');
    expect(m.contacts.length).toBe(2);
    m.append('Route', '<sip:r1.example.com;lr>');
    expect(m.routes.length).toBe(1);
    m.remove('Record-Route');
    expect(m.recordRoutes).toEqual([]);
    // every value equals what a fresh parse of the serialized message gives
    const r = reparsed(m);
    expect(m.vias).toEqual(r.vias);
    expect(m.topVia).toEqual(r.topVia);
    expect(m.callId).toBe(r.callId);
    expect(m.cseq).toEqual(r.cseq);
    expect(m.from).toEqual(r.from);
    expect(m.to).toEqual(r.to);
    expect(m.contacts).toEqual(r.contacts);
    expect(m.routes).toEqual(r.routes);
    expect(m.recordRoutes).toEqual(r.recordRoutes);
  });

  it('a new header list drops every cached value; clones have their own cache', () => {
    const m = parse(invite);
    const via = m.topVia;
    const c = m.clone();
    c.set('Via', 'SIP/2.0/UDP clone.example.com;branch=z9hG4bKc');
    expect(c.topVia.host).toBe('clone.example.com');
    expect(m.topVia).toBe(via);
    const other = parse(crlf('OPTIONS sip:x@y SIP/2.0\nVia: SIP/2.0/UDP o.example.com;branch=z9hG4bKo\nFrom: <sip:a@b>;tag=1\nTo: <sip:x@y>\nCall-ID: o1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n'));
    m.headers = other.headers.clone();
    expect(m.topVia.host).toBe('o.example.com');
    expect(m.callId).toBe('o1');
  });
});

describe('replaceTopVia', () => {
  it('reads back the new value (received/rport from params) and serializes it in place of the old top Via', () => {
    const m = parse(invite);
    const via = m.topVia;
    const cseq = m.cseq;
    const from = m.from;
    const params = new Map(via.params);
    params.set('received', '203.0.113.7');
    params.set('rport', '40000');
    m.replaceTopVia({ ...via, params });
    expect(m.topVia.received).toBe('203.0.113.7');
    expect(m.topVia.rport).toBe(40000);
    expect(m.topVia.branch).toBe('z9hG4bK776asdhds');
    expect(m.cseq).toBe(cseq);
    expect(m.from).toBe(from);
    const text = serialize(m).toString('latin1');
    expect(text).toContain(
      '\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=40000;received=203.0.113.7\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;',
    );
    expect(text.match(/\r\nVia:/g)?.length).toBe(2);
    const r = reparsed(m);
    expect(m.topVia).toEqual(r.topVia);
    expect(m.vias).toEqual(r.vias);
    // the rest of the message is unchanged
    expect(text.slice(text.indexOf('Max-Forwards'))).toBe(invite.toString('latin1').slice(invite.toString('latin1').indexOf('Max-Forwards')));
  });

  it('splits a comma list: only its first value is replaced', () => {
    const m = parse(crlf(`OPTIONS sip:x@y SIP/2.0
v: SIP/2.0/UDP a.example.com;rport;branch=z9hG4bKa, SIP/2.0/TCP b.example.com;branch=z9hG4bKb
From: <sip:a@b>;tag=1
To: <sip:x@y>
Call-ID: o1
CSeq: 1 OPTIONS
Content-Length: 0

`));
    const via = m.topVia;
    expect(via.rport).toBeNull();
    m.replaceTopVia({ ...via, params: new Map([...via.params, ['rport', '5999'], ['received', '10.1.2.3']]) });
    expect(m.topVia).toEqual(reparsed(m).topVia);
    expect(m.topVia.rport).toBe(5999);
    expect(m.vias.map((v) => v.host)).toEqual(['a.example.com', 'b.example.com']);
    expect(reparsed(m).vias).toEqual(m.vias);
  });

  it('a value that would not parse back the same is not cached but parsed from the rendered text', () => {
    const m = parse(invite);
    const via = m.topVia;
    m.replaceTopVia({ ...via, transport: 'udp', params: new Map([['Branch', 'z9hG4bKX']]) });
    expect(m.topVia).toEqual(reparsed(m).topVia);
    expect(m.topVia.branch).toBe('z9hG4bKX');
    expect(m.topVia.transport).toBe('UDP');
  });
});

describe('Via parameters built on first use', () => {
  it('routing fields are set at once; params holds every parameter (names lower-case, first one wins)', () => {
    const m = parse(crlf(`OPTIONS sip:x@y SIP/2.0
Via: SIP/2.0/UDP a.example.com:5070;X-Note="a;branch=fake";BRANCH=z9hG4bKreal;rport;branch=z9hG4bKsecond;TTL=5;maddr=224.0.0.9;received=192.0.2.1;flag
From: <sip:a@b>;tag=1
To: <sip:x@y>
Call-ID: o1
CSeq: 1 OPTIONS
Content-Length: 0

`));
    const v = m.topVia;
    expect(v).toMatchObject({ protocol: 'SIP/2.0', transport: 'UDP', host: 'a.example.com', port: 5070, branch: 'z9hG4bKreal', rport: null, ttl: 5, maddr: '224.0.0.9', received: '192.0.2.1' });
    expect([...v.params]).toEqual([
      ['x-note', '"a;branch=fake"'],
      ['branch', 'z9hG4bKreal'],
      ['rport', null],
      ['ttl', '5'],
      ['maddr', '224.0.0.9'],
      ['received', '192.0.2.1'],
      ['flag', null],
    ]);
    expect(v.params).toBe(v.params);
    const params = new Map(v.params);
    params.set('rport', '1234');
    m.replaceTopVia({ ...v, params });
    expect(m.topVia.rport).toBe(1234);
    expect(m.topVia).toEqual(reparsed(m).topVia);
    expect([...m.topVia.params]).toEqual([...reparsed(m).topVia.params]);
  });
});

describe('serialize of modified messages', () => {
  /** The plain rendering: start line + every line's bytes + CRLF + body. */
  function reference(m: SipMessage): Buffer {
    const raw = m.rawSource;
    const start = m.isRequest() ? `${m.method} ${m.uri} SIP/2.0` : `SIP/2.0 ${(m as SipResponse).status} ${(m as SipResponse).reason}`;
    const parts: Buffer[] = [
      raw !== undefined && Buffer.from(start, 'utf8').equals(raw.buf.subarray(0, raw.startLineEnd).subarray(0, -2)) ? raw.buf.subarray(0, raw.startLineEnd) : Buffer.from(start + '\r\n', 'utf8'),
    ];
    for (const e of m.headers.entries) parts.push(Buffer.from(e.rawLatin1(), 'latin1'));
    parts.push(Buffer.from('\r\n'), m.body);
    return Buffer.concat(parts);
  }
  const cases: [string, (m: SipMessage) => void][] = [
    ['prepend Via + set Max-Forwards', (m) => { m.prepend('Via', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx'); m.set('Max-Forwards', '69'); }],
    ['pop top Via', (m) => void m.removeFirst('Via')],
    ['replace top Via', (m) => m.replaceTopVia({ ...m.topVia, params: new Map([...m.topVia.params, ['received', '192.0.2.99']]) })],
    ['non-ASCII values', (m) => { m.set('Subject', 'Grüße ☎'); m.append('X-Unicode', 'ü'); }],
    ['remove first and last lines', (m) => { m.remove('Via'); m.remove('Content-Length'); m.prepend('Via', 'SIP/2.0/TCP a.example;branch=z9hG4bKq'); }],
    ['new body', (m) => { m.body = Buffer.from('v=0\r\nhi\r\n'); }],
    ['request line changed (non-ASCII)', (m) => { if (m.isRequest()) m.uri = 'sip:ü@example.com'; }],
    ['line moved from another message', (m) => {
      const other = parse(crlf('OPTIONS sip:x@y SIP/2.0\nVia: SIP/2.0/UDP o;branch=z9hG4bKo\nFrom: <sip:a@b>;tag=1\nTo: <sip:x@y>\nCall-ID: o1\nCSeq: 1 OPTIONS\nX-Other: caf\xe9\nContent-Length: 0\n\n'));
      m.headers.push(other.headers.first('x-other')!);
    }],
  ];
  for (const [name, change] of cases) {
    it(`${name}: the bytes of the plain rendering, and they parse back`, () => {
      const m = parse(Buffer.concat([Buffer.from('\r\n'), invite]));
      change(m);
      const out = serialize(m);
      // Content-Length is fixed by serialize before the reference is built
      expect(out.toString('latin1')).toBe(reference(m).toString('latin1'));
      const back = parseMessage(out);
      // (a non-ASCII Request-URI is not valid SIP: it is only sent as given)
      expect(back.ok).toBe(!name.startsWith('request line'));
    });
  }
  it('a folded line and a non-ASCII received line are copied byte for byte next to changed ones', () => {
    const text = 'MESSAGE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: one\r\n  two\r\nX-Name: Jos\xc3\xa9\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi';
    const m = parse(Buffer.from(text, 'latin1'));
    m.set('To', '<sip:x@y>;tag=t');
    expect(serialize(m).toString('latin1')).toBe(text.replace('To: <sip:x@y>', 'To: <sip:x@y>;tag=t'));
  });
});

describe('top Via kept from parsing', () => {
  it('equals what parsing the top Via value on its own gives (plain, folded, list, IPv6, bad params)', async () => {
    const { parseFirstVia } = await import('../../../../src/sip/message/header-values.js');
    const tail = 'From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';
    const vias = [
      'Via: SIP/2.0/UDP h.example.com:5060;branch=z9hG4bK1;rport',
      'Via: SIP/2.0/TCP h.example.com\r\n  ;branch=z9hG4bK2 ;received=192.0.2.4',
      'v: SIP / 2.0 / tls [2001:db8::1]:5061;BRANCH=z9hG4bK3, SIP/2.0/UDP second.example.com;branch=z9hG4bK4',
      'Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK5;ttl=999',
      'Via: SIP/2.0/UDP h.example.com;x="q;branch=no";branch=z9hG4bK6;maddr=239.1.1.1',
    ];
    for (const v of vias) {
      const r = parseMessage(Buffer.from(`OPTIONS sip:x@y SIP/2.0\r\n${v}\r\n${tail}`, 'latin1'));
      const m = r.ok ? r.value : r.partial!;
      const expected: Parameters<typeof parseFirstVia>[1] = [];
      parseFirstVia(m.headers.first('via')!.value, expected);
      expect(m.topVia).toEqual(expected[0]);
      expect([...m.topVia.params]).toEqual([...expected[0]!.params]);
    }
  });
});

describe('typed top Via after the transport stamps it, and in the response built from the request', () => {
  /** The routing fields and every parameter of a Via, for comparing a derived one with a parsed one. */
  const fields = (m: SipMessage) => {
    const v = m.topVia;
    return { protocol: v.protocol, transport: v.transport, host: v.host, port: v.port, branch: v.branch, received: v.received, rport: v.rport, maddr: v.maddr, ttl: v.ttl, params: [...v.params] };
  };
  const request = (via: string) =>
    parse(crlf(`REGISTER sip:example.com SIP/2.0\nVia: ${via}\nFrom: <sip:a@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: c1\nCSeq: 1 REGISTER\nContent-Length: 0\n\n`)) as SipRequest;
  const cases: [string, string, number | undefined][] = [
    ['SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport', '192.0.2.7', 40000],
    ['SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1;maddr=239.1.1.1;ttl=3', '192.0.2.7', 40000],
    ['SIP/2.0/UDP 10.0.0.1:5060 ; RPORT ;branch=z9hG4bK1', '192.0.2.7', 40000],
    ['SIP/2.0/UDP host.example.com;branch=z9hG4bK1', '192.0.2.7', undefined],
    ['SIP/2.0/UDP host.example.com', '192.0.2.7', undefined],
    ['SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK1;rport', '2001:db8::9', 40000],
    ['SIP/2.0/UDP 10.0.0.1;received=10.9.9.9;branch=z9hG4bK1;rport', '192.0.2.7', 40000],
    ['SIP/2.0/UDP 10.0.0.1;x=";rport";branch=z9hG4bK1;rport', '192.0.2.7', 40000],
    ['SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport;rport=5', '192.0.2.7', 40000],
  ];
  for (const [via, address, port] of cases) {
    it(`equals a parse of the stamped text: ${via} from ${address}${port ? `:${port}` : ''}`, () => {
      const req = request(via);
      void req.topVia; // read first, as the transport does
      if (!req.stampTopVia(address, port)) return;
      expect(fields(req)).toEqual(fields(reparsed(req)));
      const res = createResponse(req, 200, 'OK');
      expect(fields(res)).toEqual(fields(reparsed(res)));
    });
  }

  it('the response shares the request\'s parsed top Via, and parses its own once its Via lines change', () => {
    const req = request('SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport');
    req.stampTopVia('192.0.2.7', 40000);
    const res = createResponse(req, 200, 'OK');
    expect(res.topVia).toBe(req.topVia);
    expect(res.topVia.rport).toBe(40000);
    res.removeFirst('Via');
    res.prepend('Via', 'SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK2');
    expect(res.topVia.host).toBe('10.1.1.1');
    expect(req.topVia.host).toBe('10.0.0.1');
  });
});
