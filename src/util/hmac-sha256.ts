/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) with a fixed key, for the short MACs computed on every
 * request: digest nonces, route tokens and flow tokens. Results are byte for byte those of
 * `createHmac('sha256', key)` (strings are hashed as UTF-8), so tokens issued by a node that
 * used node:crypto still verify.
 *
 * Why not node:crypto: `createHmac` builds an OpenSSL context and imports the key on every call.
 * Measured on this project's 2-vCPU machine: 2.9 µs per MAC of 30 bytes in a loop, and 8-11 µs
 * per MAC inside the REGISTER path under load (perf), against 1.2 µs here, where the key's
 * inner and outer blocks are hashed once in the constructor and a MAC is two or three
 * compressions on preallocated arrays, with no object created but the result.
 *
 * Use: `mac.start().add(a).add(b).digest()`. The builder is the instance itself (one MAC at a
 * time; JavaScript runs it to the end before anything else can start another).
 */
import { createHash } from 'node:crypto';
import { writeUtf8 } from './utf8-bytes.js';

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const INITIAL_STATE = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const BLOCK = 64;
/** Message schedule, shared: compressions never overlap. */
const W = new Int32Array(64);

/** One SHA-256 compression of the 64 bytes of `block` at `at` into `state`. */
function compress(state: Int32Array, block: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++) {
    const o = at + 4 * i;
    W[i] = (block[o]! << 24) | (block[o + 1]! << 16) | (block[o + 2]! << 8) | block[o + 3]!;
  }
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!;
    const y = W[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let e = state[4]!;
  let f = state[5]!;
  let g = state[6]!;
  let h = state[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}

/** Pads the `length` message bytes in `buf` (after one block already hashed) and hashes them into `state`. */
function finish(state: Int32Array, buf: Uint8Array, length: number): void {
  const bits = (length + BLOCK) * 8;
  buf[length] = 0x80;
  let end = length + 1;
  while (end % BLOCK !== 56) buf[end++] = 0;
  // 64-bit big-endian bit length; messages here are far below 2^32 bits.
  buf[end++] = 0;
  buf[end++] = 0;
  buf[end++] = 0;
  buf[end++] = 0;
  buf[end++] = bits >>> 24;
  buf[end++] = (bits >>> 16) & 255;
  buf[end++] = (bits >>> 8) & 255;
  buf[end++] = bits & 255;
  for (let at = 0; at < end; at += BLOCK) compress(state, buf, at);
}

export class HmacSha256 {
  readonly #inner = new Int32Array(8);
  readonly #outer = new Int32Array(8);
  readonly #state = new Int32Array(8);
  #buf = Buffer.alloc(256);
  #length = 0;

  constructor(key: string | Uint8Array) {
    let k: Uint8Array = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    if (k.length > BLOCK) k = createHash('sha256').update(k).digest();
    const pad = new Uint8Array(BLOCK);
    for (let i = 0; i < BLOCK; i++) pad[i] = (k[i] ?? 0) ^ 0x36;
    this.#inner.set(INITIAL_STATE);
    compress(this.#inner, pad, 0);
    for (let i = 0; i < BLOCK; i++) pad[i] = (k[i] ?? 0) ^ 0x5c;
    this.#outer.set(INITIAL_STATE);
    compress(this.#outer, pad, 0);
  }

  /** Begins a MAC (forgetting any unfinished one). */
  start(): this {
    this.#length = 0;
    return this;
  }

  /** Appends bytes, or a string as UTF-8. */
  add(part: string | Uint8Array): this {
    if (typeof part === 'string') {
      this.#room(part.length * 3);
      this.#length = writeUtf8(part, this.#buf, this.#length);
      return this;
    }
    this.#room(part.length);
    this.#buf.set(part, this.#length);
    this.#length += part.length;
    return this;
  }

  /** The 32-byte MAC of what was added since `start()`. */
  digest(): Buffer {
    const s = this.#state;
    s.set(this.#inner);
    this.#room(0);
    finish(s, this.#buf, this.#length);
    const buf = this.#buf;
    for (let i = 0; i < 8; i++) {
      const v = s[i]!;
      buf[4 * i] = v >>> 24;
      buf[4 * i + 1] = (v >>> 16) & 255;
      buf[4 * i + 2] = (v >>> 8) & 255;
      buf[4 * i + 3] = v & 255;
    }
    s.set(this.#outer);
    finish(s, buf, 32);
    const out = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) out.writeInt32BE(s[i]!, 4 * i);
    this.#length = 0;
    return out;
  }

  /** Ensures room for `more` bytes plus the padding (up to 72 bytes). */
  #room(more: number): void {
    const need = this.#length + more + BLOCK + 8;
    if (need <= this.#buf.length) return;
    const bigger = Buffer.alloc(Math.max(need, this.#buf.length * 2));
    bigger.set(this.#buf.subarray(0, this.#length));
    this.#buf = bigger;
  }
}
