import { describe, expect, it } from 'vitest';
import { isRtcpLike, parseRtcpCompound, parseRtcpHeader, RTCP_RR, RTCP_SDES } from '../../../src/rtp/rtcp-header.js';

// RR with no report blocks (8 octets) followed by an SDES with one chunk: SSRC + CNAME "ab" + end (12 octets).
const RR = '80c9000101020304';
const SDES = '81ca00020102030401026162';

describe('parseRtcpHeader', () => {
  it('parses a receiver report', () => {
    const r = parseRtcpHeader(Buffer.from(RR, 'hex'));
    expect(r).toEqual({ ok: true, value: { version: 2, padding: false, count: 0, packetType: RTCP_RR, byteLength: 8, ssrc: 0x01020304 } });
  });
  it('walks a compound packet', () => {
    const r = parseRtcpCompound(Buffer.from(RR + SDES, 'hex'));
    expect(r.ok && r.value.map((h) => h.packetType)).toEqual([RTCP_RR, RTCP_SDES]);
  });
  it('rejects short, non-RTCP and overlong packets', () => {
    expect(parseRtcpHeader(Buffer.from('80c9', 'hex'))).toMatchObject({ ok: false, code: 'RTCP_ERR_SHORT' });
    expect(parseRtcpHeader(Buffer.from('80000001', 'hex'))).toMatchObject({ ok: false, code: 'RTCP_ERR_TYPE' });
    expect(parseRtcpHeader(Buffer.from('40c90001', 'hex'))).toMatchObject({ ok: false, code: 'RTCP_ERR_VERSION' });
    expect(parseRtcpHeader(Buffer.from('80c9ffff01020304', 'hex'))).toMatchObject({ ok: false, code: 'RTCP_ERR_SHORT' });
    expect(parseRtcpCompound(Buffer.alloc(0))).toMatchObject({ ok: false });
  });
  it('isRtcpLike', () => {
    expect(isRtcpLike(Buffer.from(RR, 'hex'))).toBe(true);
    expect(isRtcpLike(Buffer.from('8000000101020304', 'hex'))).toBe(false);
  });
  it('never throws on random bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(i % 30);
      for (let j = 0; j < b.length; j++) b[j] = (Math.random() * 256) | 0;
      expect(() => parseRtcpCompound(b)).not.toThrow();
    }
  });
});
