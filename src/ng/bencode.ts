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
  const text = bencodeText(value, stringEncoding);
  if (text !== undefined) return Buffer.from(text, stringEncoding);
  const w = new Writer(stringEncoding);
  w.value(value, 0);
  return w.result();
}

/**
 * The encoding of `value` as a JS string, to be written out with `Buffer.from(text,
 * stringEncoding)` (so a caller can prepend a cookie and make one buffer). One string is built
 * (V8 joins the pieces once, at the write): far cheaper than a write per token. undefined when
 * the value holds raw bytes and the encoding is utf8 (bytes cannot ride in a UTF-8 string); then
 * use {@link bencode}.
 */
export function bencodeText(value: unknown, stringEncoding: 'latin1' | 'utf8' = 'utf8'): string | undefined {
  try {
    return encodeText(value, 0, stringEncoding === 'latin1');
  } catch (err) {
    if (err === NEEDS_BYTES) return undefined;
    throw err;
  }
}

const NEEDS_BYTES = Symbol('bencode: raw bytes in a utf8 string');

function encodeText(v: unknown, depth: number, latin1: boolean): string {
  if (typeof v === 'string') return `${latin1 ? v.length : Buffer.byteLength(v, 'utf8')}:${v}`;
  if (typeof v === 'number') return `i${Number.isFinite(v) ? Math.trunc(v) : 0}e`;
  if (depth > 64) throw new Error('bencode: value nested too deeply');
  if (typeof v === 'object' && v !== null) {
    if (Array.isArray(v)) {
      let s = 'l';
      for (const item of v) if (item !== undefined && item !== null) s += encodeText(item, depth + 1, latin1);
      return `${s}e`;
    }
    if (v instanceof Uint8Array) {
      if (!latin1) throw NEEDS_BYTES;
      return `${v.length}:${Buffer.from(v.buffer, v.byteOffset, v.length).toString('latin1')}`;
    }
    const keys = Object.keys(v);
    sortKeys(keys);
    let s = 'd';
    for (const k of keys) {
      const item = (v as Record<string, unknown>)[k];
      if (item === undefined || item === null) continue;
      s += `${latin1 ? k.length : Buffer.byteLength(k, 'utf8')}:${k}`;
      s += encodeText(item, depth + 1, latin1);
    }
    return `${s}e`;
  }
  if (typeof v === 'bigint') return `i${v}e`;
  if (typeof v === 'boolean') return v ? 'i1e' : 'i0e';
  throw new Error(`bencode: cannot encode ${typeof v}`);
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

/** Appends into one growing buffer (the path for raw bytes in a utf8 message). */
class Writer {
  #buf = Buffer.allocUnsafe(1024);
  #pos = 0;
  constructor(readonly enc: 'latin1' | 'utf8') {}

  #reserve(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  #ascii(s: string): void {
    this.#reserve(s.length);
    this.#pos += this.#buf.write(s, this.#pos, 'latin1');
  }

  string(s: string): void {
    const len = this.enc === 'latin1' ? s.length : Buffer.byteLength(s, 'utf8');
    this.#ascii(`${len}:`);
    this.#reserve(len);
    this.#pos += this.#buf.write(s, this.#pos, this.enc);
  }

  bytes(b: Uint8Array): void {
    this.#ascii(`${b.length}:`);
    this.#reserve(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
  }

  value(v: unknown, depth: number): void {
    if (depth > 64) throw new Error('bencode: value nested too deeply');
    if (typeof v === 'string') this.string(v);
    else if (typeof v === 'number') this.#ascii(`i${Number.isFinite(v) ? Math.trunc(v) : 0}e`);
    else if (typeof v === 'bigint') this.#ascii(`i${v}e`);
    else if (typeof v === 'boolean') this.#ascii(v ? 'i1e' : 'i0e');
    else if (v instanceof Uint8Array) this.bytes(v);
    else if (Array.isArray(v)) {
      this.#ascii('l');
      for (const item of v) if (item !== undefined && item !== null) this.value(item, depth + 1);
      this.#ascii('e');
    } else if (v !== null && typeof v === 'object') {
      this.#ascii('d');
      const keys = Object.keys(v);
      sortKeys(keys);
      for (const k of keys) {
        const item = (v as Record<string, unknown>)[k];
        if (item === undefined || item === null) continue;
        this.string(k);
        this.value(item, depth + 1);
      }
      this.#ascii('e');
    } else {
      throw new Error(`bencode: cannot encode ${typeof v}`);
    }
  }

  result(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#pos));
  }
}
