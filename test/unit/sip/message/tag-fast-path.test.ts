import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../../../src/sip/message/parser.js';
import type { SipRequest } from '../../../../src/sip/message/sip-message.js';
import { parseNameAddr } from '../../../../src/sip/uri/sip-uri.js';

function req(from: string, to: string): SipRequest {
  const text = ['OPTIONS sip:b@d.test SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKt', `From: ${from}`, `To: ${to}`, 'Call-ID: t1', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
  const r = parseMessage(Buffer.from(text, 'latin1'));
  if (!r.ok) throw new Error(`${r.reason}: ${from} / ${to}`);
  return r.value as SipRequest;
}

const forms = [
  '<sip:a@d.test>;tag=abc',
  '<sip:a@d.test>',
  'sip:a@d.test;tag=x1',
  'sip:a@d.test',
  'Alice <sip:a@d.test;transport=udp>;tag=Q.w-9',
  '"Alice; <x>" <sip:a@d.test>;tag=quoted',
  '<sip:a@d.test>;foo=bar;TAG=up;tag=second',
  '<sip:a@d.test> ; tag = spaced',
  '<sip:a@d.test>;tag',
  '<sip:a@d.test;tag=uri-param>',
  '<sip:a@d.test>;x="q;tag=no";tag=yes',
  '<sip:a@[2001:db8::1]>;tag=v6',
  '<sips:a@d.test>;maddr=[2001:db8::1];tag=after',
];

describe('From/To tag read off the text', () => {
  it('gives the tag the full name-addr parse gives, for every form', () => {
    for (const f of forms) {
      const parsed = parseNameAddr(f);
      const want = parsed.ok ? (parsed.value.params.get('tag') ?? undefined) : undefined;
      const m = req(f, f);
      expect(m.fromTag, f).toBe(want);
      expect(m.toTag, f).toBe(want);
    }
  });

  it('follows a changed header', () => {
    const m = req('<sip:a@d.test>;tag=one', '<sip:b@d.test>');
    expect(m.fromTag).toBe('one');
    expect(m.toTag).toBeUndefined();
    m.set('To', '<sip:b@d.test>;tag=two');
    expect(m.toTag).toBe('two');
    m.set('From', 'sip:a@d.test;tag=three');
    expect(m.fromTag).toBe('three');
  });
});

describe('From/To tag read off the text (property)', () => {
  it('agrees with the full parse on generated name-addrs', async () => {
    const fc = await import('fast-check');
    const part = fc.constantFrom('<sip:a@d.test>', 'sip:a@d.test', 'Bob <sip:b@h;lr>', '"x;y" <sip:c@h>', '<sip:a@h>', '<sip:[::1]:5060>');
    const param = fc.constantFrom(';tag=t1', ';TAG=t2', '; tag = t3', ';tag', ';x=1', ';tag="q"', ';y', ';tag=a.b-c', ';maddr=[::1]', '');
    fc.assert(
      fc.property(part, fc.array(param, { maxLength: 4 }), (p, ps) => {
        const f = p + ps.join('');
        const parsed = parseNameAddr(f);
        let m: SipRequest;
        try {
          m = req(f, f);
        } catch {
          return; // the parser refused it: nothing to read
        }
        const want = parsed.ok ? (parsed.value.params.get('tag') ?? undefined) : undefined;
        expect(m.fromTag).toBe(want);
      }),
      { numRuns: 500 },
    );
  });
});
