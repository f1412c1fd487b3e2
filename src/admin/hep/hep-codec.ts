/**
 * HEPv3 (HEP/EEP, the Homer encapsulation protocol) as Homer and heplify-server accept it.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |      "H"      |      "E"      |      "P"      |      "3"      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     total length (header included)  |  chunks ...             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * chunk:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        vendor id (0)          |          type id              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  length (6-byte head included)|  value ...                    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 *
 * Generic chunk types (vendor 0): 1 IP family (u8: 2 IPv4, 10 IPv6), 2 IP protocol (u8: 17 UDP,
 * 6 TCP), 3/4 IPv4 source/destination, 5/6 IPv6 source/destination, 7/8 ports (u16), 9 seconds,
 * 10 microseconds (u32), 11 protocol type (u8: 1 SIP, 5 RTCP), 12 capture agent id (u32), 14 auth
 * key (password), 15 payload, 17 correlation id, 19 capture node name. All integers big-endian.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { fail, ok, type Result } from '../../util/result.js';

export const HEP_PROTO_SIP = 1;
export const HEP_PROTO_RTCP = 5;

/** One captured packet. */
export interface HepPacket {
  /** 2 (IPv4) or 10 (IPv6). */
  family: number;
  /** 17 (UDP) or 6 (TCP). */
  ipProtocol: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  timeSec: number;
  timeUsec: number;
  /** 1 SIP, 5 RTCP. */
  protoType: number;
  captureId: number;
  password?: string;
  nodeName?: string;
  correlationId?: string;
  payload: Buffer;
}

/** The 16 bytes of an IPv6 address; undefined when it is not one. */
export function ipv6Bytes(address: string): Buffer | undefined {
  const a = address.replace(/^\[|\]$/g, '').split('%')[0]!;
  if (!isIPv6(a)) return undefined;
  let head = a;
  let tail = '';
  const dbl = a.indexOf('::');
  if (dbl >= 0) {
    head = a.slice(0, dbl);
    tail = a.slice(dbl + 2);
  }
  const words = (part: string): number[] => {
    if (!part) return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (isIPv4(g)) {
        const [b0, b1, b2, b3] = g.split('.').map(Number) as [number, number, number, number];
        out.push((b0 << 8) | b1, (b2 << 8) | b3);
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  const all = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  if (all.length !== 8) return undefined;
  const buf = Buffer.alloc(16);
  all.forEach((w, i) => buf.writeUInt16BE(w & 0xffff, i * 2));
  return buf;
}

function ipv4Bytes(address: string): Buffer | undefined {
  if (!isIPv4(address)) return undefined;
  return Buffer.from(address.split('.').map(Number));
}

function chunk(type: number, value: Buffer): Buffer {
  const head = Buffer.allocUnsafe(6);
  head.writeUInt16BE(0, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(6 + value.length, 4);
  return Buffer.concat([head, value]);
}

function u8(type: number, v: number): Buffer {
  return chunk(type, Buffer.from([v & 0xff]));
}

function u16(type: number, v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v & 0xffff);
  return chunk(type, b);
}

function u32(type: number, v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0);
  return chunk(type, b);
}

/** Largest HEP packet: the length field is 16 bits. */
export const HEP_MAX_BYTES = 65535;

/**
 * Encodes one packet. Addresses of the other family than `family` (a wildcard bind, a name) are
 * sent as the family's unspecified address. Fails when the result would exceed 65,535 bytes.
 */
export function encodeHep(p: HepPacket): Result<Buffer> {
  const variable = p.payload.length + (p.password?.length ?? 0) * 4 + (p.nodeName?.length ?? 0) * 4 + (p.correlationId?.length ?? 0) * 4;
  // Fixed chunks take 6 + 7 + 7 + 2 * 22 + 8 + 8 + 10 + 10 + 7 + 10 bytes at most; each variable one 6 more.
  if (variable + 150 > HEP_MAX_BYTES) return fail('HEP_ERR_TOO_BIG', `HEP packet for a ${p.payload.length}-byte payload exceeds ${HEP_MAX_BYTES} bytes`);
  const v6 = p.family === 10;
  const addr = (ip: string): Buffer => (v6 ? (ipv6Bytes(ip) ?? Buffer.alloc(16)) : (ipv4Bytes(ip) ?? Buffer.alloc(4)));
  const parts = [
    Buffer.from('HEP3\0\0', 'latin1'),
    u8(1, v6 ? 10 : 2),
    u8(2, p.ipProtocol),
    chunk(v6 ? 5 : 3, addr(p.srcIp)),
    chunk(v6 ? 6 : 4, addr(p.dstIp)),
    u16(7, p.srcPort),
    u16(8, p.dstPort),
    u32(9, p.timeSec),
    u32(10, p.timeUsec),
    u8(11, p.protoType),
    u32(12, p.captureId),
  ];
  if (p.password) parts.push(chunk(14, Buffer.from(p.password, 'utf8')));
  if (p.correlationId) parts.push(chunk(17, Buffer.from(p.correlationId, 'utf8')));
  if (p.nodeName) parts.push(chunk(19, Buffer.from(p.nodeName, 'utf8')));
  parts.push(chunk(15, p.payload));
  const total = parts.reduce((n, b) => n + b.length, 0);
  if (total > HEP_MAX_BYTES) return fail('HEP_ERR_TOO_BIG', `HEP packet of ${total} bytes exceeds ${HEP_MAX_BYTES}`);
  const out = Buffer.concat(parts, total);
  out.writeUInt16BE(total, 4);
  return ok(out);
}

function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const words: string[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) words.push(b.readUInt16BE(i).toString(16));
  return words.join(':');
}

/**
 * Decodes a HEPv3 packet (for tests and a collector). Checks every length before reading; never
 * throws. Unknown chunks are skipped.
 */
export function decodeHep(buf: Buffer): Result<HepPacket> {
  if (buf.length < 6 || buf.toString('latin1', 0, 4) !== 'HEP3') return fail('HEP_ERR_MALFORMED', 'not HEP3');
  const total = buf.readUInt16BE(4);
  if (total < 6 || total > buf.length) return fail('HEP_ERR_MALFORMED', `bad total length ${total} for ${buf.length} bytes`);
  const p: Partial<HepPacket> = {};
  let off = 6;
  while (off < total) {
    if (off + 6 > total) return fail('HEP_ERR_MALFORMED', `truncated chunk head at ${off}`);
    const vendor = buf.readUInt16BE(off);
    const type = buf.readUInt16BE(off + 2);
    const len = buf.readUInt16BE(off + 4);
    if (len < 6 || off + len > total) return fail('HEP_ERR_MALFORMED', `bad chunk length ${len} at ${off}`);
    const v = buf.subarray(off + 6, off + len);
    off += len;
    if (vendor !== 0) continue;
    const need = (n: number): boolean => v.length >= n;
    switch (type) {
      case 1: if (need(1)) p.family = v.readUInt8(0); break;
      case 2: if (need(1)) p.ipProtocol = v.readUInt8(0); break;
      case 3: case 5: p.srcIp = ipText(v); break;
      case 4: case 6: p.dstIp = ipText(v); break;
      case 7: if (need(2)) p.srcPort = v.readUInt16BE(0); break;
      case 8: if (need(2)) p.dstPort = v.readUInt16BE(0); break;
      case 9: if (need(4)) p.timeSec = v.readUInt32BE(0); break;
      case 10: if (need(4)) p.timeUsec = v.readUInt32BE(0); break;
      case 11: if (need(1)) p.protoType = v.readUInt8(0); break;
      case 12: if (need(4)) p.captureId = v.readUInt32BE(0); break;
      case 14: p.password = v.toString('utf8'); break;
      case 15: p.payload = Buffer.from(v); break;
      case 17: p.correlationId = v.toString('utf8'); break;
      case 19: p.nodeName = v.toString('utf8'); break;
      default: break;
    }
  }
  if (p.payload === undefined) return fail('HEP_ERR_MALFORMED', 'no payload chunk');
  return {
    ok: true,
    value: {
      family: p.family ?? 0, ipProtocol: p.ipProtocol ?? 0, srcIp: p.srcIp ?? '', dstIp: p.dstIp ?? '', srcPort: p.srcPort ?? 0, dstPort: p.dstPort ?? 0,
      timeSec: p.timeSec ?? 0, timeUsec: p.timeUsec ?? 0, protoType: p.protoType ?? 0, captureId: p.captureId ?? 0, payload: p.payload,
      ...(p.password !== undefined ? { password: p.password } : {}), ...(p.nodeName !== undefined ? { nodeName: p.nodeName } : {}),
      ...(p.correlationId !== undefined ? { correlationId: p.correlationId } : {}),
    },
  };
}
