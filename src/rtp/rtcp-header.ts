import { fail, ok, type Result } from '../util/result.js';

/**
 * RTCP common header (RFC 3550 section 6.4.1 ff.), followed by the sender SSRC in SR, RR,
 * BYE (first source), APP, RTPFB/PSFB (RFC 4585) and XR (RFC 3611):
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|  RC/FMT |      PT       |             length            |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         SSRC of sender                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 * `length` is the packet length in 32-bit words minus one, header included. A compound packet
 * is several of these back to back (RFC 3550 6.1).
 */
export interface RtcpHeader {
  version: number;
  padding: boolean;
  /** Reception report count, or FMT for feedback packets. */
  count: number;
  packetType: number;
  /** Length of this packet in octets (header included). */
  byteLength: number;
  /** Sender SSRC; undefined for a 4-octet packet (empty BYE/RR without SSRC cannot exist, but SDES may). */
  ssrc?: number;
}

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const RTCP_APP = 204;

/** Minimum size of an RTCP packet the relay forwards: common header + sender SSRC. */
export const RTCP_HEADER_MIN = 8;

/** Cheap check on the forwarding path: ≥ 8 octets, version 2, packet type 192..223. */
export function isRtcpLike(buf: Uint8Array): boolean {
  if (buf.length < RTCP_HEADER_MIN || (buf[0]! & 0xc0) !== 0x80) return false;
  const pt = buf[1]!;
  return pt >= 192 && pt <= 223;
}

/** Parses the first RTCP packet header at `offset`. Never throws. */
export function parseRtcpHeader(buf: Buffer, offset = 0): Result<RtcpHeader> {
  if (buf.length - offset < 4) return fail('RTCP_ERR_SHORT', `RTCP packet of ${buf.length - offset} octets is shorter than its header`);
  const b0 = buf[offset]!;
  const version = b0 >> 6;
  if (version !== 2) return fail('RTCP_ERR_VERSION', `RTCP version ${version} is not 2`);
  const packetType = buf[offset + 1]!;
  if (packetType < 192 || packetType > 223) return fail('RTCP_ERR_TYPE', `packet type ${packetType} is not RTCP`);
  const byteLength = (buf.readUInt16BE(offset + 2) + 1) * 4;
  if (offset + byteLength > buf.length) return fail('RTCP_ERR_SHORT', `RTCP length ${byteLength} exceeds the ${buf.length - offset} octets received`);
  return ok({
    version,
    padding: (b0 & 0x20) !== 0,
    count: b0 & 0x1f,
    packetType,
    byteLength,
    ...(byteLength >= 8 ? { ssrc: buf.readUInt32BE(offset + 4) } : {}),
  });
}

/** Parses every packet of a compound RTCP packet (RFC 3550 6.1). Fails on the first bad one. */
export function parseRtcpCompound(buf: Buffer): Result<RtcpHeader[]> {
  const out: RtcpHeader[] = [];
  let off = 0;
  while (off < buf.length) {
    const h = parseRtcpHeader(buf, off);
    if (!h.ok) return h;
    out.push(h.value);
    off += h.value.byteLength;
  }
  if (out.length === 0) return fail('RTCP_ERR_SHORT', 'empty RTCP packet');
  return ok(out);
}
