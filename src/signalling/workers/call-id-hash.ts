/**
 * The Call-ID of a raw SIP message, found with a byte scan (no parse), hashed: what the receiving
 * step of `tandem start --workers N` steers each message by, so that every message of a call
 * (its transactions, their retransmissions, CANCEL, ACK, the responses, the in-dialog requests)
 * reaches the one worker holding its state.
 *
 * RFC 3261 §7.3.1: header names are case-insensitive, `i` is Call-ID's compact form (§20.8),
 * whitespace may precede the colon; §7.3.1 also allows folded values, which Call-ID (a single
 * `word`) never needs: the value ends at the line end or at whitespace.
 */

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** Lower-cased `call-id` as bytes. */
const CALL_ID = [0x63, 0x61, 0x6c, 0x6c, 0x2d, 0x69, 0x64];

/**
 * FNV-1a (32-bit) of the Call-ID value of `data`, or -1 when the header section has no Call-ID
 * (the message is then handled where it arrived; the parser answers 400 or drops it). A Call-ID
 * a worker made up itself (`tdmw<k>.`, see util/worker-tag.ts: its OPTIONS probes) gives
 * `-2 - k`: the answers go to the worker that asked.
 */
export function callIdHash(data: Buffer): number {
  const n = data.length;
  // Lines start after each LF; the first line is the start line, never a header.
  let i = data.indexOf(LF);
  while (i !== -1 && i + 1 < n) {
    const start = i + 1;
    const c0 = data[start]!;
    if (c0 === CR || c0 === LF) return -1; // end of the header section
    let p = -1;
    if ((c0 | 0x20) === 0x69) {
      // `i` (compact) or `Call-ID` never start alike; `i` then optional whitespace and a colon.
      p = afterName(data, start + 1, n);
    } else if ((c0 | 0x20) === 0x63 && start + 7 <= n) {
      let k = 1;
      while (k < 7 && (data[start + k]! | 0x20) === CALL_ID[k]) k++;
      if (k === 7) p = afterName(data, start + 7, n);
    }
    if (p !== -1) return hashValue(data, p, n);
    i = data.indexOf(LF, start);
  }
  return -1;
}

/** After a header name: optional whitespace, a colon; the index after the colon, or -1. */
function afterName(data: Buffer, at: number, n: number): number {
  let p = at;
  while (p < n && (data[p] === SP || data[p] === HTAB)) p++;
  return p < n && data[p] === COLON ? p + 1 : -1;
}

function hashValue(data: Buffer, at: number, n: number): number {
  let p = at;
  while (p < n && (data[p] === SP || data[p] === HTAB)) p++;
  // `tdmw` + decimal worker index + `.`
  if (p + 5 < n && data[p] === 0x74 && data[p + 1] === 0x64 && data[p + 2] === 0x6d && data[p + 3] === 0x77) {
    let k = 0;
    let q = p + 4;
    while (q < n && q < p + 8 && data[q]! >= 0x30 && data[q]! <= 0x39) k = k * 10 + data[q++]! - 0x30;
    if (q > p + 4 && data[q] === 0x2e) return -2 - k;
  }
  let h = 0x811c9dc5;
  let len = 0;
  for (; p < n; p++) {
    const c = data[p]!;
    if (c === CR || c === LF || c === SP || c === HTAB) break;
    h ^= c;
    h = Math.imul(h, 0x01000193);
    len++;
  }
  return len === 0 ? -1 : h >>> 0;
}

/** The same hash over a Call-ID string (tests, and Call-IDs this node makes up). */
export function callIdHashOf(callId: string): number {
  return callIdHash(Buffer.from(`X\nCall-ID: ${callId}\r\n`));
}
