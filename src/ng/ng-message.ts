import { fail, ok, type Result } from '../util/result.js';
import { bdecodePrefix, bencodeWithPrefix, type BDict, type BValue } from './bencode.js';

/** Wire encoding of the dictionary that follows the cookie; a reply uses the request's. */
export type NgEncoding = 'bencode' | 'json';

/** A framed ng message: `<cookie><SP><dictionary>`. */
export interface NgMessage {
  /** Cookie bytes exactly as received; echoed byte for byte in the reply. */
  cookie: Buffer;
  encoding: NgEncoding;
  dict: BDict;
}

/** Largest message accepted, in bytes (a UDP datagram cannot be larger anyway). */
export const NG_MAX_MESSAGE_BYTES = 65_535;

const SPACE = 0x20;

/**
 * Splits an ng message at the first space into cookie and dictionary.
 *
 * rtpengine's ng protocol: the cookie is any token without a space; the dictionary encoding is
 * told by its first byte: `d` is bencode, `{` is JSON. A message without a cookie is dropped
 * (`NG_ERR_NO_COOKIE`, no reply is possible); other failures can be answered with an error.
 */
export function parseNgMessage(buf: Buffer): Result<NgMessage> & { cookie?: Buffer; encoding?: NgEncoding } {
  if (buf.length > NG_MAX_MESSAGE_BYTES) return fail('NG_ERR_TOO_LARGE', 'message too large');
  const idx = buf.indexOf(SPACE);
  if (idx <= 0) return fail('NG_ERR_NO_COOKIE', 'no cookie');
  const cookie = Buffer.from(buf.subarray(0, idx));
  const payload = buf.subarray(idx + 1);
  const first = payload[0];
  if (first === 0x64 /* d */) {
    const r = bdecodePrefix(payload, 0, { strings: 'latin1', maxBytes: NG_MAX_MESSAGE_BYTES });
    if (!r.ok) return { ...fail('NG_ERR_DECODE', `Failed to decode bencode: ${r.reason}`), cookie, encoding: 'bencode' };
    // Trailing whitespace (a stray CRLF from a hand-written client) is tolerated, anything else is not.
    if (r.value.end < payload.length && !/^\s*$/.test(payload.toString('latin1', r.value.end))) {
      return { ...fail('NG_ERR_DECODE', 'Failed to decode bencode: trailing bytes'), cookie, encoding: 'bencode' };
    }
    if (!isDict(r.value.value)) return { ...fail('NG_ERR_DECODE', 'Message is not a dictionary'), cookie, encoding: 'bencode' };
    return ok({ cookie, encoding: 'bencode', dict: r.value.value });
  }
  if (first === 0x7b /* { */) {
    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch {
      return { ...fail('NG_ERR_DECODE', 'Failed to decode JSON'), cookie, encoding: 'json' };
    }
    const dict = fromJson(value, 0);
    if (dict === undefined || !isDict(dict)) return { ...fail('NG_ERR_DECODE', 'Message is not a dictionary'), cookie, encoding: 'json' };
    return ok({ cookie, encoding: 'json', dict });
  }
  return { ...fail('NG_ERR_DECODE', 'Unknown message encoding'), cookie, encoding: 'bencode' };
}

/** Builds `<cookie><SP><dict>` in the given encoding. */
export function formatNgMessage(cookie: Buffer | string, encoding: NgEncoding, dict: Record<string, unknown>): Buffer {
  const c = typeof cookie === 'string' ? cookie : cookie.toString('latin1');
  if (encoding === 'json') return Buffer.concat([Buffer.from(`${c} `, 'latin1'), Buffer.from(JSON.stringify(toJson(dict)), 'utf8')]);
  // Strings decoded from bencode are latin1 (one char per byte), so latin1 re-encodes them exactly;
  // the cookie too.
  return bencodeWithPrefix(`${c} `, dict, 'latin1');
}

export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function fromJson(v: unknown, depth: number): BValue | undefined {
  if (depth > 32) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Math.trunc(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (Array.isArray(v)) {
    const out: BValue[] = [];
    for (const item of v) {
      const x = fromJson(item, depth + 1);
      if (x !== undefined) out.push(x);
    }
    return out;
  }
  if (v !== null && typeof v === 'object') {
    const out: BDict = Object.create(null) as BDict;
    for (const [k, item] of Object.entries(v)) {
      const x = fromJson(item, depth + 1);
      if (x !== undefined) out[k] = x;
    }
    return out;
  }
  return undefined;
}

function toJson(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) if (item !== undefined) out[k] = toJson(item);
    return out;
  }
  return v;
}
