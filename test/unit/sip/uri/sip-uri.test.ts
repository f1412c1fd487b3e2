import { describe, expect, it } from 'vitest';
import {
  formatNameAddr,
  formatUri,
  isValidHost,
  parseNameAddr,
  parseUri,
  urisEqual,
  type SipUri,
} from '../../../../src/sip/uri/sip-uri.js';

function uri(text: string): SipUri {
  const r = parseUri(text);
  if (!r.ok) throw new Error(`${text}: ${r.reason}`);
  return r.value;
}

describe('parseUri', () => {
  it('parses every part of a sip URI', () => {
    const u = uri('sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent');
    expect(u).toMatchObject({ scheme: 'sips', user: 'alice', password: 'secret', host: 'atlanta.example.com', port: 5061 });
    expect([...u.params]).toEqual([
      ['transport', 'tcp'],
      ['lr', null],
      ['maddr', '239.255.255.1'],
    ]);
    expect([...u.headers]).toEqual([
      ['subject', 'project%20x'],
      ['priority', 'urgent'],
    ]);
  });

  it('hosts: IPv4, IPv6 reference, hostname, FQDN with trailing dot', () => {
    expect(uri('sip:192.0.2.4').host).toBe('192.0.2.4');
    expect(uri('sip:alice@[2001:db8::10]:5070').host).toBe('[2001:db8::10]');
    expect(uri('sip:alice@[2001:db8::10]:5070').port).toBe(5070);
    expect(uri('sip:[::ffff:192.0.2.1];transport=udp').host).toBe('[::ffff:192.0.2.1]');
    expect(uri('sip:example.com.').host).toBe('example.com.');
    for (const bad of ['sip:', 'sip:@x.com', 'sip:a@', 'sip:a@b..c', 'sip:a@[1:2', 'sip:a@[::g]', 'sip:a@x.com:99999', 'sip:a@x.com:', 'sip:a b@x.com', 'sip:a@x.com;=v', 'sip:a@1.2.3.256', 'sip:a%zz@x.com']) {
      expect(parseUri(bad).ok, bad).toBe(false);
    }
  });

  it('tel URIs (RFC 3966)', () => {
    expect(uri('tel:+1-201-555-0123')).toMatchObject({ scheme: 'tel', user: '+1-201-555-0123', host: '' });
    expect(uri('tel:7042;phone-context=example.com').params.get('phone-context')).toBe('example.com');
    expect(parseUri('tel:').ok).toBe(false);
  });

  it('other schemes are refused with a code that maps to 416', () => {
    expect(parseUri('http://www.example.com')).toMatchObject({ ok: false, code: 'SIP_ERR_UNSUPPORTED_URI_SCHEME' });
    expect(parseUri('nonsense')).toMatchObject({ ok: false, code: 'SIP_ERR_BAD_URI' });
  });

  it('formatUri round-trips', () => {
    for (const t of ['sip:alice@atlanta.example.com', 'sips:a:b@[2001:db8::1]:5061;transport=tls;lr?x=1&y=2', 'tel:+12015550123;ext=7', 'sip:%61lice@x.com;maddr=1.2.3.4']) {
      expect(formatUri(uri(t))).toBe(t);
    }
  });

  it('isValidHost', () => {
    expect(isValidHost('a-b.example.com')).toBe(true);
    expect(isValidHost('-ab.example.com')).toBe(false);
    expect(isValidHost('example.123')).toBe(false);
  });
});

describe('urisEqual (RFC 3261 §19.1.4 examples)', () => {
  const eq = (a: string, b: string) => urisEqual(uri(a), uri(b));
  it('equivalent pairs', () => {
    expect(eq('sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp')).toBe(true);
    expect(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5')).toBe(true);
    expect(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;security=on')).toBe(true);
    expect(eq('sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on')).toBe(true);
    expect(eq('sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com')).toBe(true);
    expect(eq('sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x')).toBe(true);
    expect(eq('tel:+1-201-555-0123', 'tel:+12015550123')).toBe(true);
  });
  it('non-equivalent pairs', () => {
    expect(eq('SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP')).toBe(false);
    expect(eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060')).toBe(false);
    expect(eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp')).toBe(false);
    expect(eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp')).toBe(false);
    expect(eq('sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting')).toBe(false);
    expect(eq('sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4')).toBe(false);
    expect(eq('sip:carol@chicago.com;security=on', 'sip:carol@chicago.com;security=off')).toBe(false);
    expect(eq('sip:a@x.com;user=phone', 'sip:a@x.com')).toBe(false);
    expect(eq('sip:a@x.com', 'sips:a@x.com')).toBe(false);
    expect(eq('sip:a:p1@x.com', 'sip:a:p2@x.com')).toBe(false);
  });
});

describe('parseNameAddr / formatNameAddr', () => {
  it('name-addr with quoted display name and escapes', () => {
    const r = parseNameAddr('"Alice \\"A\\" Smith" <sip:alice@atlanta.example.com;transport=tcp> ;tag=88sja8x;expires=60');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.displayName).toBe('Alice "A" Smith');
    expect(r.value.uri.params.get('transport')).toBe('tcp');
    expect([...r.value.params]).toEqual([
      ['tag', '88sja8x'],
      ['expires', '60'],
    ]);
    const again = parseNameAddr(formatNameAddr(r.value));
    expect(again.ok && again.value).toEqual(r.value);
  });
  it('token display name, addr-spec with header params, quoted param values', () => {
    const a = parseNameAddr('Bob  Smith <sip:bob@b.example.com>');
    expect(a.ok && a.value.displayName).toBe('Bob Smith');
    const b = parseNameAddr('sip:bob@b.example.com;tag=x;q=0.7');
    expect(b.ok && b.value.uri.params.size).toBe(0);
    expect(b.ok && [...b.value.params]).toEqual([
      ['tag', 'x'],
      ['q', '0.7'],
    ]);
    const c = parseNameAddr('<sip:x@y.com>;foo="a;b,c"');
    expect(c.ok && c.value.params.get('foo')).toBe('"a;b,c"');
  });
  it('rejects malformed addresses', () => {
    for (const bad of ['"unterminated <sip:a@b>', '<sip:a@b', 'Bell, A <sip:a@b>', '< sip:a@b >', 'sip:a@b?x=1', '<sip:a@b>;', '<sip:a@b>;=1', '']) {
      expect(parseNameAddr(bad).ok, bad).toBe(false);
    }
  });
});

describe('IPv6 references (RFC 5118 cases)', () => {
  it('valid IPv6 references, with and without port', () => {
    expect(uri('sip:[2001:db8::10]').host).toBe('[2001:db8::10]');
    expect(uri('sip:user@[2001:db8::10]:5070').port).toBe(5070);
    // §4.3: port-ambiguous — the last group is part of the address, there is no port
    const amb = uri('sip:[2001:db8::10:5070]');
    expect(amb.host).toBe('[2001:db8::10:5070]');
    expect(amb.port).toBeUndefined();
    expect(uri('sip:[::ffff:192.0.2.10]').host).toBe('[::ffff:192.0.2.10]');
    expect(uri('sip:[1:2:3:4:5:6:7:8]').host).toBe('[1:2:3:4:5:6:7:8]');
    expect(uri('sip:[::]').host).toBe('[::]');
  });
  it('invalid: unbracketed IPv6 (§4.2), malformed groups', () => {
    for (const bad of ['sip:user@2001:db8::10', 'sip:[2001:db8::1::2]', 'sip:[1:2:3:4:5:6:7:8:9]', 'sip:[:1]', 'sip:[1:]', 'sip:[12345::1]', 'sip:[::ffff:192.0.2.256]']) {
      expect(parseUri(bad).ok, bad).toBe(false);
    }
  });
  it('comparison of IPv6 hosts is case-insensitive', () => {
    expect(urisEqual(uri('sip:[2001:DB8::10]'), uri('sip:[2001:db8::10]'))).toBe(true);
  });
});

describe('non-ASCII in a URI, as bytes and as decoded text', () => {
  // The parser validates header values on the received bytes (latin1 view); the getters parse the
  // UTF-8 decoded text. Both views must agree, or a message accepted as valid has no To.
  it('a user part with UTF-8 reads the same as bytes and as text (fuzz seed 1126847715)', async () => {
    const { parseMessage } = await import('../../../../src/sip/message/parser.js');
    const raw = Buffer.concat([
      Buffer.from('OPTIONS sip:user@example.com SIP/2.0\r\nTo: sip:'),
      Buffer.from([0xd8, 0x80]), // U+0600 in UTF-8
      Buffer.from(
        'j_user@example.com\r\nFrom: sip:caller@example.net;tag=1\r\nCall-ID: c1\r\nCSeq: 8 OPTIONS\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKx\r\nMax-Forwards: 6\r\nContent-Length: 0\r\n\r\n',
      ),
    ]);
    const r = parseMessage(raw);
    expect(r.ok).toBe(true);
    expect(r.ok && r.value.toOrUndefined?.uri.user).toBe('\u0600j_user');
  });
  it('a code unit above 0xff is not taken for the latin1 character it masks to', () => {
    // U+0140 & 0xff is '@', U+013A & 0xff is ':', U+0120 & 0xff is a space
    expect(parseUri('sip:a\u0140b@example.com').ok && (parseUri('sip:a\u0140b@example.com') as { value: { user?: string } }).value.user).toBe('a\u0140b');
    expect(parseUri('sip:x\u0120y@example.com').ok).toBe(true);
  });
});
