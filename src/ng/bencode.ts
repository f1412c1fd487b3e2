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
 * Keys and short values every ng message carries, returned as these very strings instead of
 * a new one decoded from the bytes: a command then makes ~10 fewer strings (and calls into C++),
 * which counts most when its caches are cold (bench/ng-path.bench.ts, after idle). Indexed by
 * length; each entry is the token's bytes and its text.
 */
const KNOWN_TOKENS: Array<Array<{ bytes: Buffer; text: string }> | undefined> = [];
for (const text of [
  // keys
  'command', 'call-id', 'from-tag', 'to-tag', 'via-branch', 'sdp', 'flags', 'replace', 'direction', 'ICE',
  'received-from', 'transport-protocol', 'label', 'supports', 'delete-delay', 'media-address', 'address-family',
  'rtpp-flags', 'record-call', 'result', 'error-reason', 'warning', 'created', 'last signal', 'totals', 'tags',
  // values
  'ping', 'pong', 'offer', 'answer', 'delete', 'query', 'list', 'statistics', 'ok', 'error',
  'trust-address', 'symmetric', 'asymmetric', 'strict-source', 'SIP-source-address', 'port-latching',
  'origin', 'session-connection', 'remove', 'force', 'IP4', 'IP6', 'RTP/AVP', 'RTP/AVPF', 'load-limit',
]) {
  const bytes = Buffer.from(text, 'latin1');
  (KNOWN_TOKENS[bytes.length] ??= []).push({ bytes, text });
}
/** Longest token in {@link KNOWN_TOKENS}. */
const KNOWN_MAX = KNOWN_TOKENS.length - 1;

function knownToken(buf: Buffer, start: number, end: number): string | undefined {
  const n = end - start;
  if (n > KNOWN_MAX) return undefined;
  const candidates = KNOWN_TOKENS[n];
  if (candidates === undefined) return undefined;
  for (const c of candidates) {
    const b = c.bytes;
    let i = 0;
    while (i < n && buf[start + i] === b[i]) i++;
    if (i === n) return c.text;
  }
  return undefined;
}

// The decoder's state: decoding is synchronous and never re-entered, so one set of module
// variables serves every call (no closures made per message).
let dBuf: Buffer = Buffer.alloc(0);
let dPos = 0;
let dLen = 0;
let dStrings: StringEncoding = 'latin1';
let dMaxDepth = 32;

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
  const maxBytes = opts.maxBytes ?? 1 << 20;
  if (buf.length - start > maxBytes) return fail('BENC_ERR_TOO_LARGE', `input larger than ${maxBytes} bytes`);
  dBuf = buf;
  dPos = start;
  dLen = buf.length;
  dStrings = opts.strings ?? 'latin1';
  dMaxDepth = opts.maxDepth ?? 32;
  try {
    const value = readValue(0);
    return ok({ value, end: dPos });
  } catch (err) {
    if (err instanceof DecodeError) return fail(err.code, err.reason);
    return fail('BENC_ERR_INTERNAL', String(err));
  } finally {
    dBuf = EMPTY; // not kept alive by the decoder
  }
}

const EMPTY = Buffer.alloc(0);

function readString(): string | Buffer {
  const buf = dBuf;
  let pos = dPos;
  let n = 0;
  let digits = 0;
  while (pos < dLen && buf[pos] !== COLON) {
    const c = buf[pos]!;
    if (c < 0x30 || c > 0x39) throw new DecodeError('BENC_ERR_STRING_LENGTH', `bad string length at ${pos}`);
    n = n * 10 + (c - 0x30);
    if (++digits > 9) throw new DecodeError('BENC_ERR_STRING_LENGTH', `string length too long at ${pos}`);
    pos++;
  }
  if (digits === 0 || pos >= dLen) throw new DecodeError('BENC_ERR_STRING_LENGTH', `bad string at ${pos}`);
  pos++; // colon
  if (pos + n > dLen) throw new DecodeError('BENC_ERR_TRUNCATED', `string of ${n} bytes runs past the end`);
  const from = pos;
  dPos = pos + n;
  if (dStrings === 'buffer') return Buffer.from(buf.subarray(from, dPos));
  return knownToken(buf, from, dPos) ?? buf.toString(dStrings, from, dPos);
}

/** `i<n>e`: 0, or an optional minus and digits without a leading zero; beyond 2^53 a BigInt. */
function readInt(): number | bigint {
  const buf = dBuf;
  const begin = ++dPos; // past the i
  let end = begin;
  while (end < dLen && buf[end] !== E) end++;
  if (end >= dLen) throw new DecodeError('BENC_ERR_TRUNCATED', 'unterminated integer');
  dPos = end + 1;
  const negative = buf[begin] === 0x2d;
  const first = negative ? begin + 1 : begin;
  const digits = end - first;
  if (digits === 0 || end - begin > 40 || (buf[first] === 0x30 && (digits > 1 || negative))) throw badInt(begin, end);
  let n = 0;
  for (let p = first; p < end; p++) {
    const c = buf[p]!;
    if (c < 0x30 || c > 0x39) throw badInt(begin, end);
    n = n * 10 + (c - 0x30);
  }
  if (n <= Number.MAX_SAFE_INTEGER) return negative ? -n : n;
  return BigInt(buf.toString('latin1', begin, end));
}

function badInt(begin: number, end: number): DecodeError {
  const text = dBuf.toString('latin1', begin, end);
  return new DecodeError('BENC_ERR_INTEGER', `bad integer ${JSON.stringify(text.slice(0, 20))}`);
}

function readValue(depth: number): BValue {
  if (dPos >= dLen) throw new DecodeError('BENC_ERR_TRUNCATED', 'unexpected end of input');
  const c = dBuf[dPos]!;
  if (c === I) return readInt();
  if (c >= 0x30 && c <= 0x39) return readString();
  if (c === L) {
    if (depth >= dMaxDepth) throw new DecodeError('BENC_ERR_DEPTH', 'nesting too deep');
    dPos++;
    const list: BValue[] = [];
    while (dPos < dLen && dBuf[dPos] !== E) list.push(readValue(depth + 1));
    if (dPos >= dLen) throw new DecodeError('BENC_ERR_TRUNCATED', 'unterminated list');
    dPos++;
    return list;
  }
  if (c === D) {
    if (depth >= dMaxDepth) throw new DecodeError('BENC_ERR_DEPTH', 'nesting too deep');
    dPos++;
    const dict: BDict = Object.create(null) as BDict;
    while (dPos < dLen && dBuf[dPos] !== E) {
      const c2 = dBuf[dPos]!;
      if (c2 < 0x30 || c2 > 0x39) throw new DecodeError('BENC_ERR_KEY', `dictionary key is not a string at ${dPos}`);
      const key = readString();
      const k = typeof key === 'string' ? key : key.toString('latin1');
      dict[k] = readValue(depth + 1);
    }
    if (dPos >= dLen) throw new DecodeError('BENC_ERR_TRUNCATED', 'unterminated dictionary');
    dPos++;
    return dict;
  }
  throw new DecodeError('BENC_ERR_TYPE', `unexpected byte 0x${c.toString(16)} at ${dPos}`);
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
