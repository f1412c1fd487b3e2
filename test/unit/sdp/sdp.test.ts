import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { describeSdp, parseSdp, rewriteSdp, serializeSdp, type SdpRewriteOptions } from '../../../src/sdp/sdp.js';

const CRLF = (lines: string[]): string => lines.join('\r\n') + '\r\n';

const OFFER = CRLF([
  'v=0',
  'o=alice 2890844526 2890844526 IN IP4 192.0.2.10',
  's=Talk é',
  'c=IN IP4 192.0.2.10',
  't=0 0',
  'a=ice-options:trickle',
  'm=audio 49170 RTP/AVP 0 8 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:efghijklmnopqrstuvwxyz12',
  'a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host',
  'a=rtcp:49171',
  'a=sendrecv',
  'm=video 0 RTP/AVP 96',
  'a=rtpmap:96 H264/90000',
]);

const base: SdpRewriteOptions = {
  address: '203.0.113.5',
  family: 'IP4',
  media: [{ rtpPort: 30000, rtcpPort: 30001 }, { rtpPort: 30002, rtcpPort: 30003 }],
  ice: 'remove',
  replaceOrigin: false,
  rtcpAttribute: 'auto',
};

describe('sdp', () => {
  it('parse -> serialize is byte-exact', () => {
    for (const text of [OFFER, OFFER.replace(/\r\n/g, '\n'), 'v=0\r\ns=-\r\nweird line\r\nm=audio 1 RTP/AVP 0']) {
      const r = parseSdp(text);
      expect(r.ok).toBe(true);
      if (r.ok) expect(serializeSdp(r.value)).toBe(text);
    }
  });

  it('describes media', () => {
    const r = parseSdp(OFFER);
    if (!r.ok) throw new Error(r.reason);
    const d = describeSdp(r.value);
    expect(d.media[0]).toMatchObject({ type: 'audio', port: 49170, proto: 'RTP/AVP', connection: { address: '192.0.2.10' }, rtcp: { port: 49171 }, hasIce: true, direction: 'sendrecv' });
    expect(d.media[1]).toMatchObject({ type: 'video', port: 0 });
  });

  it('rewrites c=, ports, a=rtcp, drops ICE, keeps everything else', () => {
    const r = parseSdp(OFFER);
    if (!r.ok) throw new Error(r.reason);
    const out = serializeSdp(rewriteSdp(r.value, base));
    expect(out).toBe(
      CRLF([
        'v=0',
        'o=alice 2890844526 2890844526 IN IP4 192.0.2.10',
        's=Talk é',
        'c=IN IP4 203.0.113.5',
        't=0 0',
        'm=audio 30000 RTP/AVP 0 8 101',
        'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:101 telephone-event/8000',
        'a=fmtp:101 0-15',
        'a=rtcp:30001',
        'a=sendrecv',
        'm=video 0 RTP/AVP 96',
        'a=rtpmap:96 H264/90000',
      ]),
    );
  });

  it('replace origin, keep ICE, full rtcp attribute', () => {
    const r = parseSdp(OFFER);
    if (!r.ok) throw new Error(r.reason);
    const out = serializeSdp(rewriteSdp(r.value, { ...base, ice: 'keep', replaceOrigin: true, rtcpAttribute: 'full' }));
    expect(out).toContain('o=alice 2890844526 2890844526 IN IP4 203.0.113.5\r\n');
    expect(out).toContain('a=candidate:1 1 UDP');
    expect(out).toContain('a=rtcp:30001 IN IP4 203.0.113.5\r\n');
  });

  it('adds media-level c= when there is no session c=, and a=rtcp when RTCP is not RTP+1', () => {
    const text = 'v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.1\nm=audio 4002 RTP/AVP 0\na=sendrecv';
    const r = parseSdp(text);
    if (!r.ok) throw new Error(r.reason);
    const out = serializeSdp(rewriteSdp(r.value, { ...base, media: [{ rtpPort: 30000, rtcpPort: 30001 }, { rtpPort: 30010, rtcpPort: 30021 }] }));
    expect(out).toBe('v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 30000 RTP/AVP 0\nc=IN IP4 203.0.113.5\nm=audio 30010 RTP/AVP 0\nc=IN IP4 203.0.113.5\na=sendrecv\na=rtcp:30021');
  });

  it('rejects bodies without v=', () => {
    expect(parseSdp('')).toMatchObject({ ok: false });
    expect(parseSdp('hello')).toMatchObject({ ok: false, code: 'SDP_ERR_NO_VERSION' });
    expect(parseSdp('v=0\r\nm=audio x RTP/AVP 0\r\n')).toMatchObject({ ok: false, code: 'SDP_ERR_BAD_MEDIA' });
  });

  it('never throws on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        const r = parseSdp('v=0\r\n' + s);
        if (r.ok) {
          expect(serializeSdp(r.value)).toBe('v=0\r\n' + s);
          rewriteSdp(r.value, base);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
