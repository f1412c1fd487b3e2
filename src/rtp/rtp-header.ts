import { fail, ok, type Result } from '../util/result.js';

/**
 * RTP fixed header (RFC 3550 section 5.1):
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           timestamp                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           synchronization source (SSRC) identifier            |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |            contributing source (CSRC) identifiers             |
 * |                             ....                              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |      defined by profile       |           length              |  (if X)
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                        header extension                       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 * Padding (P): the last payload octet counts the padding octets, itself included.
 */
export interface RtpHeader {
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrcs: number[];
  /** Present when X is set. */
  headerExtension?: { profile: number; data: Buffer };
  /** Offset of the payload in the packet. */
  payloadOffset: number;
  /** Payload length without padding. */
  payloadLength: number;
  /** Padding octets at the end (0 without P). */
  paddingLength: number;
}

/** Size of the fixed RTP header. */
export const RTP_HEADER_MIN = 12;

/**
 * Cheap check used on the forwarding path: at least 12 octets and version 2 (RFC 3550 5.1).
 * Does not walk CSRCs or extensions.
 */
export function isRtpLike(buf: Uint8Array): boolean {
  return buf.length >= RTP_HEADER_MIN && (buf[0]! & 0xc0) === 0x80;
}

/**
 * RFC 5761 section 4: on a multiplexed port, a packet whose second octet is 192..223 (RTCP
 * packet types 192-223; RTP payload types 64-95 with the marker bit) is RTCP.
 */
export function isRtcpMuxed(buf: Uint8Array): boolean {
  const b = buf[1]!;
  return b >= 192 && b <= 223;
}

/** Full parse of an RTP header with every length checked. Never throws. */
export function parseRtpHeader(buf: Buffer): Result<RtpHeader> {
  if (buf.length < RTP_HEADER_MIN) return fail('RTP_ERR_SHORT', `packet of ${buf.length} octets is shorter than the RTP header`);
  const b0 = buf[0]!;
  const version = b0 >> 6;
  if (version !== 2) return fail('RTP_ERR_VERSION', `RTP version ${version} is not 2`);
  const padding = (b0 & 0x20) !== 0;
  const extension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  const b1 = buf[1]!;
  let off = RTP_HEADER_MIN + csrcCount * 4;
  if (buf.length < off) return fail('RTP_ERR_SHORT', `${csrcCount} CSRCs do not fit in ${buf.length} octets`);
  const csrcs: number[] = [];
  for (let i = 0; i < csrcCount; i++) csrcs.push(buf.readUInt32BE(RTP_HEADER_MIN + i * 4));
  let headerExtension: RtpHeader['headerExtension'];
  if (extension) {
    if (buf.length < off + 4) return fail('RTP_ERR_SHORT', 'header extension header is truncated');
    const profile = buf.readUInt16BE(off);
    const words = buf.readUInt16BE(off + 2);
    const end = off + 4 + words * 4;
    if (buf.length < end) return fail('RTP_ERR_SHORT', `header extension of ${words} words is truncated`);
    headerExtension = { profile, data: buf.subarray(off + 4, end) };
    off = end;
  }
  let paddingLength = 0;
  if (padding) {
    if (buf.length === off) return fail('RTP_ERR_PADDING', 'padding bit set but no padding octet');
    paddingLength = buf[buf.length - 1]!;
    if (paddingLength === 0 || off + paddingLength > buf.length) return fail('RTP_ERR_PADDING', `bad padding length ${paddingLength}`);
  }
  return ok({
    version,
    padding,
    extension,
    csrcCount,
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    csrcs,
    ...(headerExtension ? { headerExtension } : {}),
    payloadOffset: off,
    payloadLength: buf.length - off - paddingLength,
    paddingLength,
  });
}

/** Writes a fixed 12-octet RTP header (no CSRC, no extension) into `buf` at `offset`. */
export function writeRtpHeader(
  buf: Buffer,
  h: { payloadType: number; sequenceNumber: number; timestamp: number; ssrc: number; marker?: boolean },
  offset = 0,
): void {
  buf[offset] = 0x80;
  buf[offset + 1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
  buf.writeUInt16BE(h.sequenceNumber & 0xffff, offset + 2);
  buf.writeUInt32BE(h.timestamp >>> 0, offset + 4);
  buf.writeUInt32BE(h.ssrc >>> 0, offset + 8);
}

const STATIC_CLOCK_RATES: Record<number, number> = {
  0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000, 10: 44100, 11: 44100, 12: 8000,
  13: 8000, 14: 90000, 15: 8000, 16: 11025, 17: 22050, 18: 8000, 25: 90000, 26: 90000, 28: 90000,
  31: 90000, 32: 90000, 33: 90000, 34: 90000,
};

/** RTP clock rate of a static payload type (RFC 3551 tables 4 and 5); undefined if dynamic or unassigned. */
export function staticClockRate(payloadType: number): number | undefined {
  return STATIC_CLOCK_RATES[payloadType];
}
