/**
 * Property tests for the SIP message layer: whatever the bytes, parseMessage returns a value or
 * a typed error (never throws, never hangs), typed getters and serialize never throw, oversize
 * input is refused before it is read, and valid messages round-trip stably.
 * Time-boxed: each property stops after a few seconds (fast-check interruptAfterTimeLimit).
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createRequest,
  frameStream,
  parseMessage,
  serialize,
  SIP_ERROR_STATUS,
  SipRequest,
  type ParseResult,
  type SipMessage,
} from '../../src/sip/message/index.js';
import { formatUri, parseNameAddr, parseUri, quote } from '../../src/sip/uri/sip-uri.js';

const fixturesDir = new URL('../fixtures/sip/', import.meta.url);
const corpus: Buffer[] = [
  readFileSync(new URL('invite-typical.sip', fixturesDir)),
  readFileSync(new URL('ok-200-invite.sip', fixturesDir)),
  ...readdirSync(new URL('rfc4475/', fixturesDir))
    .filter((f) => f.endsWith('.sip'))
    .map((f) => readFileSync(new URL(`rfc4475/${f}`, fixturesDir))),
];
const CODES = new Set(Object.keys(SIP_ERROR_STATUS));
/** SIP_FUZZ_SCALE=20 for a longer local run; CI uses 1 (about 10 s in total). */
const SCALE = Number(process.env.SIP_FUZZ_SCALE ?? 1);
const TIME_LIMIT_MS = 2500 * SCALE;
const params = (numRuns: number) => ({ numRuns: numRuns * SCALE, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false });

/** Reads every typed view of a message; none may throw. */
function touch(m: SipMessage): void {
  void m.vias;
  void m.topVia;
  void m.viaError;
  void m.callId;
  void m.cseq;
  void m.from;
  void m.to;
  void m.fromTag;
  void m.toTag;
  void m.maxForwards;
  void m.contacts;
  void m.contactsValid;
  void m.routes;
  void m.recordRoutes;
  void m.contentLength;
  void m.contentType;
  void m.expires;
  void m.credentials('Authorization');
  void m.credentials('WWW-Authenticate');
  if (m instanceof SipRequest) void m.requestUri;
  for (const key of new Set(m.headers.entries.map((e) => e.key))) {
    void m.get(key);
    void m.getAll(key);
  }
  void serialize(m);
}

/** The contract: a result, typed; partial only for requests; getters safe on both. */
function checkResult(r: ParseResult): void {
  expect(typeof r.ok).toBe('boolean');
  if (r.ok) {
    // the contract: what parseMessage validated, the lazy getters can build
    const m = r.value;
    expect(m.viaError).toBeUndefined();
    expect(m.vias.length).toBeGreaterThan(0);
    expect(m.fromOrUndefined).toBeDefined();
    expect(m.toOrUndefined).toBeDefined();
    expect(m.cseqOrUndefined).toBeDefined();
    expect(m.callId).not.toBe('');
    if (m instanceof SipRequest) expect(m.requestUriOrUndefined).toBeDefined();
    touch(m);
    return;
  }
  expect(CODES.has(r.code)).toBe(true);
  expect(typeof r.reason).toBe('string');
  expect(r.reason.length).toBeGreaterThan(0);
  if (r.partial !== undefined) {
    expect(r.partial).toBeInstanceOf(SipRequest);
    expect(r.partial.vias.length).toBeGreaterThan(0);
    touch(r.partial);
  }
}

const mutation = fc.oneof(
  // flip bytes
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), count: fc.integer({ min: 1, max: 8 }) }),
  // truncate
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  // insert random bytes
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 40 }) }),
  // duplicate a header line
  fc.record({ kind: fc.constant('dupline' as const), line: fc.nat(), times: fc.integer({ min: 1, max: 50 }) }),
  // delete a line
  fc.record({ kind: fc.constant('delline' as const), line: fc.nat() }),
  // huge / odd Content-Length
  fc.record({
    kind: fc.constant('clen' as const),
    value: fc.oneof(fc.constantFrom('99999999999999999999', '-1', '1e3', '0x10', ' ', '4294967296'), fc.nat().map(String)),
  }),
  // CRLF -> LF, folding everywhere
  fc.record({ kind: fc.constant('lf' as const) }),
  fc.record({ kind: fc.constant('fold' as const), line: fc.nat() }),
  // insert special characters in a random line
  fc.record({ kind: fc.constant('special' as const), at: fc.nat(), ch: fc.constantFrom('"', '<', '>', ';', ',', '\\', '%', '[', ']', ':', '@', '\0', '\t', ' ', '=') }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(buf: Buffer, m: Mutation): Buffer {
  const b = Buffer.from(buf);
  switch (m.kind) {
    case 'flip':
      for (let i = 0; i < m.count && b.length > 0; i++) b[(m.at + i * 7) % b.length] = m.byte;
      return b;
    case 'truncate':
      return b.subarray(0, b.length === 0 ? 0 : m.at % b.length);
    case 'insert': {
      const at = b.length === 0 ? 0 : m.at % b.length;
      return Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
    }
    case 'special': {
      const at = b.length === 0 ? 0 : m.at % b.length;
      return Buffer.concat([b.subarray(0, at), Buffer.from(m.ch, 'latin1'), b.subarray(at)]);
    }
    case 'dupline':
    case 'delline':
    case 'fold': {
      const text = b.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return b;
      const lines = text.slice(0, end).split('\r\n');
      const i = 1 + (m.line % Math.max(1, lines.length - 1));
      if (i >= lines.length) return b;
      if (m.kind === 'dupline') lines.splice(i, 0, ...Array<string>(m.times).fill(lines[i]!));
      else if (m.kind === 'delline') lines.splice(i, 1);
      else lines[i] = lines[i]!.replace(/ /g, '\r\n ');
      return Buffer.from(lines.join('\r\n') + text.slice(end), 'latin1');
    }
    case 'clen':
      return Buffer.from(b.toString('latin1').replace(/^(Content-Length|l)[ \t]*:[^\r\n]*/im, `Content-Length: ${m.value}`), 'latin1');
    case 'lf':
      return Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
  }
}

describe('parseMessage never throws', () => {
  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.boolean(), (bytes, stream) => {
        checkResult(parseMessage(Buffer.from(bytes), { stream }));
      }),
      params(3000),
    );
  });

  it('on random text that looks like SIP', () => {
    const line = fc.oneof(
      fc.constantFrom('Via: SIP/2.0/UDP h;branch=z9hG4bK1', 'From: <sip:a@b>;tag=1', 'To: sip:c@d', 'Call-ID: x', 'CSeq: 1 INVITE', 'l: 0', 'v: SIP/2.0/TCP [::1]:5060;rport', 'Contact: *', 'm: "a\\"b" <sip:x@y;lr>;q=0.5, <sips:z@w>'),
      fc.string({ maxLength: 60 }),
    );
    fc.assert(
      fc.property(
        fc.constantFrom('INVITE sip:a@b SIP/2.0', 'SIP/2.0 200 OK', 'ACK sip:x SIP/2.0', 'SIP/2.0 100 ', 'X y z'),
        fc.array(line, { maxLength: 20 }),
        fc.string({ maxLength: 100 }),
        (start, lines, body) => {
          checkResult(parseMessage(Buffer.from(`${start}\r\n${lines.join('\r\n')}\r\n\r\n${body}`)));
        },
      ),
      params(3000),
    );
  });

  it('on mutated valid messages (flips, truncation, duplication, huge lengths, LF, folding)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...corpus), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (base, ms, stream) => {
        let b = base;
        for (const m of ms) b = mutate(b, m);
        checkResult(parseMessage(b, { stream }));
        // stream framing on the same bytes never throws either
        const f = frameStream(b);
        expect(['message', 'ping', 'pong', 'need', 'error']).toContain(f.type);
      }),
      params(4000),
    );
  });
});

describe('frameStream', () => {
  const framed = corpus.filter((b) => {
    const r = parseMessage(b, { stream: true });
    return r.ok && r.value.body.length === b.length - b.indexOf('\r\n\r\n') - 4;
  });
  it('cuts a byte stream of valid messages and keep-alives back into the same messages, whatever the chunking', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom(...framed), fc.constant(Buffer.from('\r\n\r\n'))), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
        (items, cuts) => {
          const stream = Buffer.concat(items);
          let pending = Buffer.alloc(0);
          const got: Buffer[] = [];
          let pos = 0;
          let ci = 0;
          let searchFrom = 0;
          while (pos < stream.length) {
            const n = cuts[ci++ % cuts.length]!;
            pending = Buffer.concat([pending, stream.subarray(pos, pos + n)]);
            pos += n;
            for (;;) {
              const f = frameStream(pending, undefined, searchFrom);
              if (f.type === 'need') {
                searchFrom = f.searchFrom ?? 0;
                break;
              }
              expect(f.type).not.toBe('error');
              if (f.type === 'error') return;
              got.push(pending.subarray(0, f.length));
              pending = pending.subarray(f.length);
              searchFrom = 0;
            }
          }
          const want = items.filter((b) => b.length !== 4 || b.toString() !== '\r\n\r\n');
          const messages = got.filter((b) => b[0] !== 13 && b[0] !== 10);
          expect(messages.map((b) => b.toString('latin1'))).toEqual(want.map((b) => b.toString('latin1')));
          for (const m of messages) expect(parseMessage(m, { stream: true }).ok).toBe(true);
        },
      ),
      params(800),
    );
  });
  it('keep-alives and errors', () => {
    expect(frameStream(Buffer.from('\r\n\r\nINVITE'))).toEqual({ type: 'ping', length: 4 });
    // A lone CRLF may be the first half of a ping split across segments: wait for more.
    expect(frameStream(Buffer.from('\r\n'))).toEqual({ type: 'need' });
    expect(frameStream(Buffer.from('\r\nINVITE'))).toEqual({ type: 'pong', length: 2 });
    expect(frameStream(Buffer.from('\r\n\r'))).toEqual({ type: 'need' });
    expect(frameStream(Buffer.from('OPTIONS sip:a SIP/2.0\r\nl: 5\r\n\r\nab'))).toEqual({ type: 'need', searchFrom: 27, total: 36 });
    expect(frameStream(Buffer.from('OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n'))).toMatchObject({ type: 'error', code: 'SIP_ERR_MISSING_HEADER' });
    expect(frameStream(Buffer.from('OPTIONS sip:a SIP/2.0\r\nl: -1\r\n\r\n'))).toMatchObject({ type: 'error', code: 'SIP_ERR_BAD_CONTENT_LENGTH' });
    expect(frameStream(Buffer.from('OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx'))).toMatchObject({ type: 'error' });
    expect(frameStream(Buffer.from('OPTIONS sip:a SIP/2.0\r\ncontent-length :  3\r\n\r\nabcdef'))).toEqual({ type: 'message', length: 49 });
  });
});

describe('memory and time bounds', () => {
  it('refuses an oversize message without reading it', () => {
    const big = Buffer.alloc(1 << 20, 0x41);
    // any read of the contents would throw
    for (const fn of ['latin1Slice', 'toString', 'subarray', 'indexOf', 'slice']) {
      Object.defineProperty(big, fn, { value: () => { throw new Error(`read ${fn}`); } });
    }
    expect(parseMessage(big)).toMatchObject({ ok: false, code: 'SIP_ERR_TOO_LARGE' });
    expect(parseMessage(Buffer.alloc(2000, 0x41), { maxBytes: 1000 })).toMatchObject({ ok: false, code: 'SIP_ERR_TOO_LARGE' });
  });

  it('frameStream looks at no more than maxBytes of a huge buffer', () => {
    const huge = Buffer.alloc(8 << 20, 0x41);
    expect(frameStream(huge)).toMatchObject({ type: 'error', code: 'SIP_ERR_TOO_LARGE' });
    const hdr = Buffer.from('INVITE sip:a@b SIP/2.0\r\nContent-Length: 999999999\r\n\r\n');
    expect(frameStream(hdr)).toMatchObject({ type: 'error', code: 'SIP_ERR_TOO_LARGE' });
  });

  it('pathological 60 KiB shapes finish (no quadratic paths in parse, getters or framing)', () => {
    const head = 'OPTIONS sip:a@b.example.com SIP/2.0\r\n';
    const tail = 'From: <sip:a@b.c>;tag=1\r\nTo: <sip:a@b.c>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n';
    const fill = (unit: string) => unit.repeat(Math.floor(58000 / unit.length));
    const shapes = [
      `${head}Via: SIP/2.0/UDP h.example.com${fill(';x=1')}\r\n${tail}\r\n`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nContact: ${fill('<sip:a@b>,')}<sip:c@d>\r\n${tail}\r\n`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nRoute: ${fill('"\\"')}\r\n${tail}\r\n`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nRoute: ${fill('<')}\r\n${tail}\r\n`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nX-Fold: a${fill('\r\n b')}\r\n${tail}\r\n`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n${fill('a:b\r\n')}${tail}\r\n`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n${tail}Supported: ${fill('x,')}\r\n\r\n`,
      `${head}${fill('Via: SIP/2.0/UDP a.b, SIP/2.0/UDP c.d\r\n')}${tail}\r\n`,
      `INVITE sip:${fill('a;')}b@c SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com\r\n${tail.replace('OPTIONS', 'INVITE')}\r\n`,
      `${head}${fill('x')}`,
      `${head}Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n${tail}${fill('\r')}`,
    ];
    for (const text of shapes) {
      const b = Buffer.from(text, 'latin1');
      expect(b.length).toBeLessThanOrEqual(65536);
      checkResult(parseMessage(b));
      checkResult(parseMessage(b, { stream: true }));
      let from = 0;
      for (let cut = 1000; cut < b.length; cut += 1000) {
        const f = frameStream(b.subarray(0, cut), undefined, from);
        if (f.type !== 'need') break;
        from = f.searchFrom ?? 0;
      }
    }
  });

  it('many header lines (64 KiB of Via) still parse in bounded work', () => {
    const via = 'Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKx\r\n';
    const n = Math.floor(60000 / via.length);
    const msg = Buffer.from(`OPTIONS sip:a@b.c SIP/2.0\r\n${via.repeat(n)}From: <sip:a@b.c>;tag=1\r\nTo: <sip:a@b.c>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`);
    const r = parseMessage(msg);
    expect(r.ok && r.value.vias.length).toBe(n);
  });
});

describe('round trip', () => {
  it('parse(serialize(parse(x))) is stable for every valid corpus message and mutation that stays valid', () => {
    fc.assert(
      fc.property(fc.constantFrom(...corpus), fc.option(mutation, { nil: undefined }), (base, m) => {
        const input = m === undefined ? base : mutate(base, m);
        const first = parseMessage(input);
        if (!first.ok) return;
        const out1 = serialize(first.value);
        const second = parseMessage(out1);
        expect(second.ok).toBe(true);
        if (!second.ok) return;
        const out2 = serialize(second.value);
        expect(out2.equals(out1)).toBe(true);
        expect(second.value.getAll('Via')).toEqual(first.value.getAll('Via'));
        expect(second.value.callId).toBe(first.value.callId);
        expect(second.value.body.equals(first.value.body)).toBe(true);
        // a modified message round-trips too
        second.value.prepend('Via', 'SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKfuzz');
        second.value.set('X-Fuzz', 'a, b');
        const third = parseMessage(serialize(second.value));
        expect(third.ok).toBe(true);
        if (third.ok) {
          expect(third.value.topVia.branch).toBe('z9hG4bKfuzz');
          expect(third.value.vias.length).toBe(first.value.vias.length + 1);
          expect(third.value.get('X-Fuzz')).toBe('a, b');
        }
      }),
      params(2000),
    );
  });

  const token = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}$/);
  const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,10}[a-z0-9])?$/);
  const host = fc.oneof(
    fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.')),
    fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.')),
    fc.constantFrom('[::1]', '[2001:db8::7]', '[fe80::1%25eth0]'.replace('%25eth0', '')),
  );
  const user = fc.stringMatching(/^[A-Za-z0-9_.!~*'()&=+$,;?/-]{1,20}$/).filter((u) => !u.includes(':'));

  it('generated requests: every field reads back as written', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Z]{3,12}$/),
        user,
        host,
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.string({ maxLength: 30 }).filter((s) => !/[\r\n]/.test(s)),
        token,
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.uint8Array({ maxLength: 300 }),
        (method, u, h, port, display, tag, seq, body) => {
          const uriText = `sip:${u}@${h}${port === undefined ? '' : `:${port}`}`;
          const req = createRequest({
            method,
            uri: uriText,
            from: `${quote(display)} <${uriText};transport=tcp>;tag=${tag}`,
            to: `<sip:${h}>`,
            cseq: seq,
            via: `SIP/2.0/TCP ${h}${port === undefined ? '' : `:${port}`};branch=z9hG4bK${tag};rport`,
            body: Buffer.from(body),
            contentType: 'application/octet-stream',
          });
          const r = parseMessage(serialize(req), { stream: true });
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          const m = r.value as SipRequest;
          expect(m.method).toBe(method);
          const ru = parseUri(uriText);
          expect(ru.ok && formatUri(m.requestUri)).toBe(ru.ok && formatUri(ru.value));
          expect(m.requestUri.user).toBe(u);
          expect(m.requestUri.host).toBe(h);
          expect(m.requestUri.port).toBe(port);
          expect(m.from.displayName ?? '').toBe(display);
          expect(m.fromTag).toBe(tag);
          expect(m.from.uri.params.get('transport')).toBe('tcp');
          expect(m.cseq).toEqual({ seq, method });
          expect(m.topVia.host).toBe(h);
          expect(m.topVia.port).toBe(port);
          expect(m.topVia.rport).toBeNull();
          expect(m.body.equals(Buffer.from(body))).toBe(true);
          const na = parseNameAddr(m.get('From')!);
          expect(na.ok).toBe(true);
        },
      ),
      params(1500),
    );
  });
});
