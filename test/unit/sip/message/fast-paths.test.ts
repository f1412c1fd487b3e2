/**
 * The parser reads some routing values straight from the received text (CSeq) and skips the
 * Request-URI character scan when the URI grammar check already passed. These tests pin that
 * the fast paths give exactly the results of the general rules.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCSeq } from '../../../../src/sip/message/header-values.js';
import { parseMessage, SipRequest } from '../../../../src/sip/message/index.js';

function invite(cseqLine: string, uri = 'sip:bob@biloxi.example.com'): Buffer {
  const head =
    `INVITE ${uri} SIP/2.0\r\n` +
    'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n' +
    'Max-Forwards: 70\r\n' +
    'To: Bob <sip:bob@biloxi.example.com>\r\n' +
    'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n' +
    'Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n' +
    cseqLine +
    'Content-Length: 0\r\n\r\n';
  return Buffer.from(head, 'latin1');
}

describe('CSeq read on the received text', () => {
  it('accepts LWS between number and method (SP, HT, several; folded)', () => {
    for (const line of ['CSeq: 1 INVITE\r\n', 'CSeq:1\tINVITE\r\n', 'CSeq:   7 \t  INVITE   \r\n', 'CSeq: 2147483647 INVITE\r\n', 'CSeq: 0000000001 INVITE\r\n', 'CSeq: 5\r\n  INVITE\r\n']) {
      const r = parseMessage(invite(line));
      expect(r.ok, line).toBe(true);
      if (r.ok) expect(r.value.cseq.method).toBe('INVITE');
    }
    const r = parseMessage(invite('CSeq:   7 \t  INVITE   \r\n'));
    expect(r.ok && r.value.cseq).toEqual({ seq: 7, method: 'INVITE' });
    const f = parseMessage(invite('CSeq: 5\r\n  INVITE\r\n'));
    expect(f.ok && f.value.cseq).toEqual({ seq: 5, method: 'INVITE' });
  });

  it('rejects what the grammar rejects', () => {
    for (const line of [
      'CSeq: 1INVITE\r\n',
      'CSeq: INVITE\r\n',
      'CSeq: 1\r\n',
      'CSeq: 2147483648 INVITE\r\n',
      'CSeq: 00000000001 INVITE\r\n',
      'CSeq: 1 INV ITE\r\n',
      'CSeq: 1 INV\u00e9\r\n',
      'CSeq: -1 INVITE\r\n',
      'CSeq: 1 INVITE;x\r\n',
    ]) {
      const r = parseMessage(invite(line));
      expect(r.ok, line).toBe(false);
      if (!r.ok) expect(r.code, line).toBe('SIP_ERR_BAD_CSEQ');
    }
    const m = parseMessage(invite('CSeq: 1 OPTIONS\r\n'));
    expect(!m.ok && m.reason).toBe('CSeq method mismatch');
  });

  // parseMessage must agree with parseCSeq on the same value, read as received (latin1).
  const cseqAgrees = fc.property(
    fc.array(fc.constantFrom('1', '42', '2147483647', '2147483648', '0', '99999999999', ' ', '\t', '  ', 'INVITE', 'invite', 'FOO.BAR', 'x y', ';', '\u00a0', '\x0b', '\r', '-', '01'), { minLength: 1, maxLength: 5 }),
    (parts) => {
      const value = parts.join('');
      const r = parseMessage(invite(`CSeq: ${value}\r\n`));
      const expected = parseCSeq(Buffer.from(value, 'latin1').toString('latin1'));
      const trimmed = value.replace(/^[ \t]+|[ \t]+$/g, '');
      if (typeof expected === 'string') {
        // the value was bad on its own: never a CSeq
        if (r.ok) throw new Error(`accepted ${JSON.stringify(value)}`);
        if (trimmed.length > 0 && !/[\r]/.test(value)) expect(r.code).toBe('SIP_ERR_BAD_CSEQ');
      } else if (r.ok) {
        expect(r.value.cseq).toEqual(expected);
      } else {
        // a good CSeq value fails only on the method mismatch
        expect(expected.method).not.toBe('INVITE');
      }
    },
  );

  it('agrees with parseCSeq on random values (property)', () => {
    fc.assert(cseqAgrees, { numRuns: 400 });
  });

  it('agrees with parseCSeq on a seed that once found an NBSP-led value (property, fixed seed)', () => {
    fc.assert(cseqAgrees, { numRuns: 400, seed: 1231952466 });
  });

  it('characters String#trim strips but SIP does not (VT, FF, NBSP, U+FEFF, U+3000) are not whitespace', () => {
    // 0xA0 alone (not UTF-8) was refused by the parser but taken by parseCSeq; VT/FF and
    // UTF-8 NBSP etc. were taken by both. RFC 3261 LWS is SP / HT (with CRLF folding) only.
    for (const x of ['\u00a0', '\x0b', '\x0c', '\ufeff', '\u3000', '\u2028']) {
      for (const v of [`${x}1 INVITE`, `1 INVITE${x}`, `${x}42 INVITE`]) {
        expect(typeof parseCSeq(v), JSON.stringify(v)).toBe('string');
        for (const enc of ['latin1', 'utf8'] as const) {
          if (enc === 'latin1' && x.charCodeAt(0) > 255) continue;
          for (const line of [`CSeq: ${v}\r\n`, `CSeq: 1\r\n ${v.replace('1 ', '')}\r\n`]) {
            const r = parseMessage(Buffer.from(invite(line).toString('latin1'), enc));
            expect(r.ok, `${enc} ${JSON.stringify(line)}`).toBe(false);
            if (!r.ok) expect(r.reason, `${enc} ${JSON.stringify(line)}`).toBe('Bad CSeq');
          }
        }
      }
    }
    // a folded value is trimmed of LWS only, whichever header it is
    const mf = parseMessage(Buffer.from(invite('CSeq: 1 INVITE\r\n').toString('latin1').replace('Max-Forwards: 70\r\n', 'Max-Forwards: 70\r\n \x0b\r\n'), 'latin1'));
    expect(!mf.ok && mf.reason).toBe('Bad Max-Forwards');
    // SP / HT (and folding) around the value still are whitespace
    expect(parseCSeq(' \t1 INVITE\t ')).toEqual({ seq: 1, method: 'INVITE' });
    const ok = parseMessage(invite('CSeq:  1 INVITE \t\r\n'));
    expect(ok.ok && ok.value.cseq).toEqual({ seq: 1, method: 'INVITE' });
  });
});

describe('Request-URI characters', () => {
  it('a control character, DEL or non-ASCII byte in the Request-URI is a start-line fault (reported before header faults)', () => {
    for (const uri of ['sip:bo\x7fb@biloxi.example.com', 'sip:b\u00f6b@biloxi.example.com', 'sip:bob@biloxi\x01.example.com', 'tel:+1\x7f555']) {
      // From missing too: the Request-URI fault comes first
      const buf = Buffer.from(invite('CSeq: 1 INVITE\r\n', uri).toString('latin1').replace(/From:[^\r]*\r\n/, ''), 'latin1');
      const r = parseMessage(buf);
      expect(r.ok, uri).toBe(false);
      if (!r.ok) {
        expect(r.code, uri).toBe('SIP_ERR_BAD_URI');
        expect(r.reason).toBe('Bad Request-URI');
      }
    }
  });

  it('a UTF-8 user part is rejected even though the URI grammar scan would take it', () => {
    const r = parseMessage(Buffer.from(invite('CSeq: 1 INVITE\r\n', 'sip:b\u00f6b@biloxi.example.com').toString('latin1'), 'utf8'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe('SIP_ERR_BAD_URI');
  });

  it('a good URI still parses, and grammar faults keep their order after header faults', () => {
    const r = parseMessage(invite('CSeq: 1 INVITE\r\n', 'sip:bob@biloxi.example.com;transport=udp'));
    expect(r.ok && r.value).toBeInstanceOf(SipRequest);
    const bad = parseMessage(invite('CSeq: 1 INVITE\r\n', 'sip:bob@-bad-.example.com'));
    expect(!bad.ok && bad.code).toBe('SIP_ERR_BAD_URI');
    const scheme = parseMessage(invite('CSeq: 1 INVITE\r\n', 'http:example.com'));
    expect(!scheme.ok && scheme.code).toBe('SIP_ERR_UNSUPPORTED_URI_SCHEME');
    // header fault first when the URI only breaks the grammar
    const both = parseMessage(Buffer.from(invite('CSeq: 1 INVITE\r\n', 'sip:bob@-bad-.example.com').toString('latin1').replace(/From:[^\r]*\r\n/, ''), 'latin1'));
    expect(!both.ok && both.reason).toBe('Missing From');
  });
});
