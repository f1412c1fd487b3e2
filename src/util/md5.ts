/**
 * MD5 (RFC 1321) of a string as lower-case hex, for HTTP Digest: H(A2) and the response hash of
 * every authenticated request (RFC 7616 §3.4.1; MD5 is still the algorithm most SIP phones
 * use). Strings are hashed as UTF-8, as `createHash('md5').update(s, 'utf8')` does.
 *
 * Why not node:crypto: `createHash` builds an OpenSSL context per call (1.2 µs for a 60-byte
 * input in a loop on this project's 2-vCPU machine, more inside the request path under load);
 * here a hash of the ~130 bytes of a digest response is three compressions over a preallocated
 * block, with no object created but the hex string.
 */

import { writeUtf8 } from './utf8-bytes.js';

const state = new Int32Array(4);
let buf = Buffer.alloc(256);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const word = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);

/**
 * One compression of the 64 bytes at `at` into `state`, unrolled: the 64 steps of RFC 1321 §3.4
 * with their shifts and sine constants written out (a loop over tables ran 3x slower).
 */
function compress(block: Uint8Array, at: number): void {
  const x0 = word(block, at + 0);
  const x1 = word(block, at + 4);
  const x2 = word(block, at + 8);
  const x3 = word(block, at + 12);
  const x4 = word(block, at + 16);
  const x5 = word(block, at + 20);
  const x6 = word(block, at + 24);
  const x7 = word(block, at + 28);
  const x8 = word(block, at + 32);
  const x9 = word(block, at + 36);
  const x10 = word(block, at + 40);
  const x11 = word(block, at + 44);
  const x12 = word(block, at + 48);
  const x13 = word(block, at + 52);
  const x14 = word(block, at + 56);
  const x15 = word(block, at + 60);
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let t: number;
  t = (a + ((b & c) | (~b & d)) + -680876936 + x0) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + -389564586 + x1) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + 606105819 + x2) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + -1044525330 + x3) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + -176418897 + x4) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + 1200080426 + x5) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + -1473231341 + x6) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + -45705983 + x7) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + 1770035416 + x8) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + -1958414417 + x9) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + -42063 + x10) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + -1990404162 + x11) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((b & c) | (~b & d)) + 1804603682 + x12) | 0;
  a = (b + ((t << 7) | (t >>> 25))) | 0;
  t = (d + ((a & b) | (~a & c)) + -40341101 + x13) | 0;
  d = (a + ((t << 12) | (t >>> 20))) | 0;
  t = (c + ((d & a) | (~d & b)) + -1502002290 + x14) | 0;
  c = (d + ((t << 17) | (t >>> 15))) | 0;
  t = (b + ((c & d) | (~c & a)) + 1236535329 + x15) | 0;
  b = (c + ((t << 22) | (t >>> 10))) | 0;
  t = (a + ((d & b) | (~d & c)) + -165796510 + x1) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + -1069501632 + x6) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + 643717713 + x11) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + -373897302 + x0) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + -701558691 + x5) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + 38016083 + x10) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + -660478335 + x15) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + -405537848 + x4) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + 568446438 + x9) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + -1019803690 + x14) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + -187363961 + x3) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + 1163531501 + x8) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + ((d & b) | (~d & c)) + -1444681467 + x13) | 0;
  a = (b + ((t << 5) | (t >>> 27))) | 0;
  t = (d + ((c & a) | (~c & b)) + -51403784 + x2) | 0;
  d = (a + ((t << 9) | (t >>> 23))) | 0;
  t = (c + ((b & d) | (~b & a)) + 1735328473 + x7) | 0;
  c = (d + ((t << 14) | (t >>> 18))) | 0;
  t = (b + ((a & c) | (~a & d)) + -1926607734 + x12) | 0;
  b = (c + ((t << 20) | (t >>> 12))) | 0;
  t = (a + (b ^ c ^ d) + -378558 + x5) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + -2022574463 + x8) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + 1839030562 + x11) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + -35309556 + x14) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + -1530992060 + x1) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + 1272893353 + x4) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + -155497632 + x7) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + -1094730640 + x10) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + 681279174 + x13) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + -358537222 + x0) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + -722521979 + x3) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + 76029189 + x6) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (b ^ c ^ d) + -640364487 + x9) | 0;
  a = (b + ((t << 4) | (t >>> 28))) | 0;
  t = (d + (a ^ b ^ c) + -421815835 + x12) | 0;
  d = (a + ((t << 11) | (t >>> 21))) | 0;
  t = (c + (d ^ a ^ b) + 530742520 + x15) | 0;
  c = (d + ((t << 16) | (t >>> 16))) | 0;
  t = (b + (c ^ d ^ a) + -995338651 + x2) | 0;
  b = (c + ((t << 23) | (t >>> 9))) | 0;
  t = (a + (c ^ (b | ~d)) + -198630844 + x0) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + 1126891415 + x7) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + -1416354905 + x14) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + -57434055 + x5) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + 1700485571 + x12) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + -1894986606 + x3) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + -1051523 + x10) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + -2054922799 + x1) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + 1873313359 + x8) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + -30611744 + x15) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + -1560198380 + x6) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + 1309151649 + x13) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  t = (a + (c ^ (b | ~d)) + -145523070 + x4) | 0;
  a = (b + ((t << 6) | (t >>> 26))) | 0;
  t = (d + (b ^ (a | ~c)) + -1120210379 + x11) | 0;
  d = (a + ((t << 10) | (t >>> 22))) | 0;
  t = (c + (a ^ (d | ~b)) + 718787259 + x2) | 0;
  c = (d + ((t << 15) | (t >>> 17))) | 0;
  t = (b + (d ^ (c | ~a)) + -343485551 + x9) | 0;
  b = (c + ((t << 21) | (t >>> 11))) | 0;
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
}

/** MD5 of `text` (as UTF-8), 32 lower-case hex digits. */
export function md5Hex(text: string): string {
  if (text.length * 3 + 72 > buf.length) buf = Buffer.alloc(text.length * 3 + 72);
  const bytes = buf;
  const n = writeUtf8(text, bytes, 0);
  const bits = n * 8;
  bytes[n] = 0x80;
  let end = n + 1;
  while (end % 64 !== 56) bytes[end++] = 0;
  // 64-bit little-endian bit length (inputs here are far below 2^32 bits)
  bytes[end++] = bits & 255;
  bytes[end++] = (bits >>> 8) & 255;
  bytes[end++] = (bits >>> 16) & 255;
  bytes[end++] = bits >>> 24;
  bytes[end++] = 0;
  bytes[end++] = 0;
  bytes[end++] = 0;
  bytes[end++] = 0;
  state[0] = 0x67452301;
  state[1] = 0xefcdab89 | 0;
  state[2] = 0x98badcfe | 0;
  state[3] = 0x10325476;
  for (let at = 0; at < end; at += 64) compress(bytes, at);
  let hex = '';
  for (let w = 0; w < 4; w++) {
    const v = state[w]!;
    hex += HEX[v & 255]! + HEX[(v >>> 8) & 255]! + HEX[(v >>> 16) & 255]! + HEX[v >>> 24]!;
  }
  return hex;
}
