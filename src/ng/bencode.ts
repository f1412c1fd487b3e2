import { fail, ok, type Result } from '../util/result.js';

/**
 * Bencode value as used by the ng control protocol.
 *
 * Byte strings decode to JS strings in the chosen encoding: `latin1` maps every byte to one
 * char so a string re-encoded with `latin1` is byte-for-byte what arrived (SDP bodies pass
 * through unchanged even when they are not valid UTF-8); `utf8` suits clients; `buffer`
 * keeps raw Buffers.
 */
export type BValue = string | number | bigint | Buffer | BValue[] | BDict;
export interface BDict {
  [key: string]: BValue;
}

export type StringEncoding = 'latin1' | 'utf8' | 'buffer';

export interface DecodeOptions {
  /** How byte strings are returned. @default 'latin1' */
  strings?: StringEncoding;
  /** Deepest list/dict nesting accepted. @default 32 */
  maxDepth?: number;
  /** Largest input accepted, in bytes. @default 1 MiB */
  maxBytes?: number;
}

const D = 0x64; // d
const L = 0x6c; // l
const I = 0x69; // i
const E = 0x65; // e
const COLON = 0x3a;

class DecodeError {
  constructor(readonly code: string, readonly reason: string) {}
}

/**
 * Decodes one bencoded value from `buf`. Never throws: garbage gives `{ ok: false }`.
 * Returns the value and the number of bytes consumed (`end`), so a stream reader can find the
 * end of a self-delimiting dictionary.
 *
 * ```
 * string   <len>:<bytes>      "4:ping"
 * integer  i<n>e              "i42e"
 * list     l<values>e         "l4:spami42ee"
 * dict     d(<str><value>)*e  "d3:cow3:mooe"
 * ```
 * Dictionary key order is not enforced (rtpengine does not enforce it either).
 */
export function bdecodePrefix(buf: Buffer, start = 0, opts: DecodeOptions = {}): Result<{ value: BValue; end: number }> {
  const strings = opts.strings ?? 'latin1';
  const maxDepth = opts.maxDepth ?? 32;
  const maxBytes = opts.maxBytes ?? 1 << 20;
  if (buf.length - start > maxBytes) return fail('BENC_ERR_TOO_LARGE', `input larger than ${maxBytes} bytes`);
  let pos = start;
  const len = buf.length;

  const readString = (): string | Buffer => {
    let n = 0;
    let digits = 0;
    while (pos < len && buf[pos] !== COLON) {
      const c = buf[pos]!;
      if (c < 0x30 || c > 0x39) throw new DecodeError('BENC_ERR_STRING_LENGTH', `bad string length at ${pos}`);
      n = n * 10 + (c - 0x30);
      if (++digits > 9) throw new DecodeError('BENC_ERR_STRING_LENGTH', `string length too long at ${pos}`);
      pos++;
    }
    if (digits === 0 || pos >= len) throw new DecodeError('BENC_ERR_STRING_LENGTH', `bad string at ${pos}`);
    pos++; // colon
    if (pos + n > len) throw new DecodeError('BENC_ERR_TRUNCATED', `string of ${n} bytes runs past the end`);
    const start = pos;
    pos += n;
    if (strings === 'buffer') return Buffer.from(buf.subarray(start, pos));
    return buf.toString(strings, start, pos);
  };

  const readInt = (): number | bigint => {
    pos++; // i
    const begin = pos;
    while (pos < len && buf[pos] !== E) pos++;
    if (pos >= len) throw new DecodeError('BENC_ERR_TRUNCATED', 'unterminated integer');
    const text = buf.toString('latin1', begin, pos);
    pos++;
    if (!/^(0|-?[1-9][0-9]*)$/.test(text) || text.length > 40) throw new DecodeError('BENC_ERR_INTEGER', `bad integer ${JSON.stringify(text.slice(0, 20))}`);
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  };

  const readValue = (depth: number): BValue => {
    if (pos >= len) throw new DecodeError('BENC_ERR_TRUNCATED', 'unexpected end of input');
    const c = buf[pos]!;
    if (c === I) return readInt();
    if (c >= 0x30 && c <= 0x39) return readString();
    if (c === L) {
      if (depth >= maxDepth) throw new DecodeError('BENC_ERR_DEPTH', 'nesting too deep');
      pos++;
      const list: BValue[] = [];
      while (pos < len && buf[pos] !== E) list.push(readValue(depth + 1));
      if (pos >= len) throw new DecodeError('BENC_ERR_TRUNCATED', 'unterminated list');
      pos++;
      return list;
    }
    if (c === D) {
      if (depth >= maxDepth) throw new DecodeError('BENC_ERR_DEPTH', 'nesting too deep');
      pos++;
      const dict: BDict = Object.create(null) as BDict;
      while (pos < len && buf[pos] !== E) {
        const c2 = buf[pos]!;
        if (c2 < 0x30 || c2 > 0x39) throw new DecodeError('BENC_ERR_KEY', `dictionary key is not a string at ${pos}`);
        const key = readString();
        const k = typeof key === 'string' ? key : key.toString('latin1');
        dict[k] = readValue(depth + 1);
      }
      if (pos >= len) throw new DecodeError('BENC_ERR_TRUNCATED', 'unterminated dictionary');
      pos++;
      return dict;
    }
    throw new DecodeError('BENC_ERR_TYPE', `unexpected byte 0x${c.toString(16)} at ${pos}`);
  };

  try {
    const value = readValue(0);
    return ok({ value, end: pos });
  } catch (err) {
    if (err instanceof DecodeError) return fail(err.code, err.reason);
    return fail('BENC_ERR_INTERNAL', String(err));
  }
}

/** Decodes a complete bencoded value; trailing bytes are an error. */
export function bdecode(buf: Buffer, opts: DecodeOptions = {}): Result<BValue> {
  const r = bdecodePrefix(buf, 0, opts);
  if (!r.ok) return r;
  if (r.value.end !== buf.length) return fail('BENC_ERR_TRAILING', `${buf.length - r.value.end} trailing bytes`);
  return ok(r.value.value);
}

/**
 * Encodes a value. Strings are written in `stringEncoding` (use `latin1` to send back strings
 * that were decoded with `latin1`). Dictionary keys are sorted as the bencode spec asks (by
 * UTF-16 code units, which is byte order for latin1 and for UTF-8 outside astral characters);
 * `undefined`/`null` entries are skipped; booleans become 1/0; non-integral numbers are truncated.
 */
export function bencode(value: unknown, stringEncoding: 'latin1' | 'utf8' = 'utf8'): Buffer {
  return bencodeWithPrefix('', value, stringEncoding);
}

/**
 * `prefix` (latin1, e.g. an ng cookie and a space) followed by the encoding of `value`, in one
 * buffer of the exact size. Tokens are written byte by byte into a scratch buffer kept between
 * calls (encoding is synchronous), so the only allocation is the result: an ng reply makes no
 * garbage besides it (a write call or a string per token made the collector run every few
 * hundred commands).
 */
export function bencodeWithPrefix(prefix: string, value: unknown, stringEncoding: 'latin1' | 'utf8' = 'utf8'): Buffer {
  const w = writer;
  w.latin1 = stringEncoding === 'latin1';
  w.pos = 0;
  w.raw(prefix);
  w.value(value, 0);
  return Buffer.from(w.buf.subarray(0, w.pos));
}

/** Sorts in place by UTF-16 code units (as Array.prototype.sort does); insertion sort for the short key lists of ng dictionaries, no allocation. */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 32) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}

/** Strings up to this long are copied in JS; longer ones (SDP) with one Buffer.write. */
const SHORT_STRING = 48;

/** Appends into one scratch buffer that grows as needed and is reused by the next message. */
class Writer {
  buf = Buffer.allocUnsafe(16 * 1024);
  pos = 0;
  latin1 = true;

  #reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** One byte per char (latin1; the callers' text is ASCII or latin1). */
  raw(s: string): void {
    const n = s.length;
    this.#reserve(n);
    if (n > SHORT_STRING) {
      this.pos += this.buf.write(s, this.pos, n, 'latin1');
      return;
    }
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** Decimal digits of an integer (no string made for safe integers). */
  int(v: number): void {
    if (!Number.isSafeInteger(v)) {
      this.raw(String(v));
      return;
    }
    this.#reserve(17);
    const b = this.buf;
    if (v < 0) {
      b[this.pos++] = 0x2d;
      v = -v;
    }
    if (v < 10) {
      b[this.pos++] = 0x30 + v;
      return;
    }
    let digits = 1;
    for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
    let p = this.pos + digits;
    this.pos = p;
    while (v >= 10) {
      const q = Math.floor(v / 10);
      b[--p] = 0x30 + (v - q * 10);
      v = q;
    }
    b[--p] = 0x30 + v;
  }

  string(s: string): void {
    if (this.latin1) {
      this.int(s.length);
      this.buf[this.pos++] = COLON_BYTE;
      this.raw(s);
      return;
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.int(len);
    this.#reserve(1 + len);
    this.buf[this.pos++] = COLON_BYTE;
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  bytes(v: Uint8Array): void {
    this.int(v.length);
    this.#reserve(1 + v.length);
    this.buf[this.pos++] = COLON_BYTE;
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  #byte(c: number): void {
    this.#reserve(1);
    this.buf[this.pos++] = c;
  }

  value(v: unknown, depth: number): void {
    if (typeof v === 'string') return this.string(v);
    if (typeof v === 'number') {
      this.#byte(I);
      this.int(Number.isFinite(v) ? Math.trunc(v) : 0);
      return this.#byte(E);
    }
    if (depth > 64) throw new Error('bencode: value nested too deeply');
    if (typeof v === 'object' && v !== null) {
      if (Array.isArray(v)) {
        this.#byte(L);
        for (const item of v) if (item !== undefined && item !== null) this.value(item, depth + 1);
        return this.#byte(E);
      }
      if (v instanceof Uint8Array) return this.bytes(v);
      const keys = Object.keys(v);
      sortKeys(keys);
      this.#byte(D);
      for (const k of keys) {
        const item = (v as Record<string, unknown>)[k];
        if (item === undefined || item === null) continue;
        this.string(k);
        this.value(item, depth + 1);
      }
      return this.#byte(E);
    }
    if (typeof v === 'bigint') return this.raw(`i${v}e`);
    if (typeof v === 'boolean') return this.raw(v ? 'i1e' : 'i0e');
    throw new Error(`bencode: cannot encode ${typeof v}`);
  }
}

const COLON_BYTE = 0x3a;
const writer = new Writer();
