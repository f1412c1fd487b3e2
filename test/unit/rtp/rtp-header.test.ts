import { describe, expect, it } from 'vitest';
import { isRtcpMuxed, isRtpLike, parseRtpHeader, staticClockRate, writeRtpHeader } from '../../../src/rtp/rtp-header.js';

// PCMU packet: V=2, M=1, PT=0, seq=0x1234, ts=0xdeadbeef, SSRC=0x01020304, 4 payload octets.
const PCMU = Buffer.from('80801234deadbeef01020304ffeeddcc', 'hex');

describe('parseRtpHeader', () => {
  it('parses the fixed header', () => {
    const r = parseRtpHeader(PCMU);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({
      version: 2,
      padding: false,
      extension: false,
      csrcCount: 0,
      marker: true,
      payloadType: 0,
      sequenceNumber: 0x1234,
      timestamp: 0xdeadbeef,
      ssrc: 0x01020304,
      payloadOffset: 12,
      payloadLength: 4,
    });
  });

  it('walks CSRCs, a header extension and padding', () => {
    // V=2 P=1 X=1 CC=2, PT=8; 2 CSRCs; extension profile 0xbede, 1 word; payload 2 octets; 2 padding octets.
    const pkt = Buffer.from('b20800010000000a0000000b' + '00000001' + '00000002' + 'bede0001' + '10ff0000' + 'aabb' + '0002', 'hex');
    const r = parseRtpHeader(pkt);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.csrcs).toEqual([1, 2]);
    expect(r.value.headerExtension?.profile).toBe(0xbede);
    expect(r.value.headerExtension?.data.toString('hex')).toBe('10ff0000');
    expect(r.value.payloadOffset).toBe(12 + 8 + 8);
    expect(r.value.paddingLength).toBe(2);
    expect(r.value.payloadLength).toBe(2);
  });

  it('rejects short, wrong-version, truncated and badly padded packets without throwing', () => {
    expect(parseRtpHeader(Buffer.alloc(0))).toMatchObject({ ok: false, code: 'RTP_ERR_SHORT' });
    expect(parseRtpHeader(PCMU.subarray(0, 11))).toMatchObject({ ok: false, code: 'RTP_ERR_SHORT' });
    const v1 = Buffer.from(PCMU);
    v1[0] = 0x40;
    expect(parseRtpHeader(v1)).toMatchObject({ ok: false, code: 'RTP_ERR_VERSION' });
    const cc = Buffer.from(PCMU);
    cc[0] = 0x8f; // 15 CSRCs announced, none present
    expect(parseRtpHeader(cc)).toMatchObject({ ok: false, code: 'RTP_ERR_SHORT' });
    const ext = Buffer.from('90000001000000000000000bbede00ff', 'hex'); // extension of 255 words
    expect(parseRtpHeader(ext)).toMatchObject({ ok: false, code: 'RTP_ERR_SHORT' });
    const pad = Buffer.from(PCMU);
    pad[0] = 0xa0;
    pad[pad.length - 1] = 200;
    expect(parseRtpHeader(pad)).toMatchObject({ ok: false, code: 'RTP_ERR_PADDING' });
  });

  it('never throws on random bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(i % 40);
      for (let j = 0; j < b.length; j++) b[j] = (Math.random() * 256) | 0;
      if (b.length > 0) b[0] = (b[0]! & 0x3f) | 0x80;
      expect(() => parseRtpHeader(b)).not.toThrow();
    }
  });

  it('round-trips writeRtpHeader', () => {
    const b = Buffer.alloc(172);
    writeRtpHeader(b, { payloadType: 8, sequenceNumber: 65535, timestamp: 4294967295, ssrc: 0xcafebabe, marker: true });
    const r = parseRtpHeader(b);
    expect(r.ok && r.value).toMatchObject({ payloadType: 8, sequenceNumber: 65535, timestamp: 4294967295, ssrc: 0xcafebabe, marker: true, payloadLength: 160 });
  });
});

describe('helpers', () => {
  it('isRtpLike checks length and version', () => {
    expect(isRtpLike(PCMU)).toBe(true);
    expect(isRtpLike(PCMU.subarray(0, 11))).toBe(false);
    expect(isRtpLike(Buffer.from('00'.repeat(12), 'hex'))).toBe(false);
  });
  it('isRtcpMuxed follows RFC 5761 (second octet 192..223)', () => {
    expect(isRtcpMuxed(Buffer.from([0x80, 200]))).toBe(true);
    expect(isRtcpMuxed(Buffer.from([0x80, 0x80]))).toBe(false);
    expect(isRtcpMuxed(Buffer.from([0x80, 0xe0]))).toBe(false);
  });
  it('knows static clock rates', () => {
    expect(staticClockRate(0)).toBe(8000);
    expect(staticClockRate(9)).toBe(8000);
    expect(staticClockRate(6)).toBe(16000);
    expect(staticClockRate(34)).toBe(90000);
    expect(staticClockRate(96)).toBeUndefined();
  });
});
