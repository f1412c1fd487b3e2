/**
 * SIP message parser (RFC 3261 §7, §20, §25).
 *
 * The parser splits the start line and header lines and indexes header names at once; header
 * values are sliced and parsed only when read. The headers a proxy needs to route or answer —
 * Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length (and the Request-URI) — are
 * validated here, so an `ok` message always has valid ones. Nothing here throws on peer input.
 */
import { validateNameAddr, validateUri } from '../uri/sip-uri.js';
import { isAscii } from 'node:buffer';
import type { SipErrorCode } from './errors.js';
import { HeaderEntry, HeaderList } from './header-list.js';
import { headerKey, matchKnownName } from './header-names.js';
import { parseCSeq, parseDigits, validateViaList, validateViaListKeepFirst, validCallId, viaSentByCount, type CSeq, type Via } from './header-values.js';
import { SipRequest, SipResponse, type SipMessage } from './sip-message.js';
import { methodConstant } from './methods.js';
import { latin1 } from '../../util/string-calls.js';

export interface ParseOptions {
  /** Messages larger than this are rejected before any other work. @default 65536 */
  maxBytes?: number;
  /** Stream transport (TCP/TLS): Content-Length is required. @default false */
  stream?: boolean;
}

export type ParseResult =
  | { ok: true; value: SipRequest | SipResponse }
  | {
      ok: false;
      code: SipErrorCode;
      /** Short text naming the fault, usable as a reason phrase (`Missing Call-ID`). */
      reason: string;
      /** Set for a request (not ACK) whose top Via sent-by parsed: enough to answer it (400/416/505). */
      partial?: SipRequest;
      /** True when the start line was a response (to be dropped, never answered). */
      response?: boolean;
    };

export const DEFAULT_MAX_MESSAGE_BYTES = 65536;

function err(code: SipErrorCode, reason: string): ParseResult {
  return { ok: false, code, reason };
}

/** token chars for method names: RFC 3261 §25.1 */
function isTokenCode(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= 48 && c <= 57) ||
    c === 45 || c === 46 || c === 33 || c === 37 || c === 42 || c === 95 || c === 43 || c === 96 || c === 39 || c === 126
  );
}

function isToken(s: string, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) if (!isTokenCode(s.charCodeAt(i))) return false;
  return true;
}


/** Header names already seen and known to be tokens -> lookup key (bounded). */
const validNameKeys = new Map<string, string>();

/**
 * Parses one SIP message from `buf` (a whole UDP datagram, or one frame cut by `frameStream`).
 * Leading CRLFs are ignored (RFC 3261 §7.5).
 */
export function parseMessage(buf: Buffer, opts?: ParseOptions): ParseResult {
  const maxBytes = opts?.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const stream = opts?.stream === true;
  // §18.1.1 / memory bound: refuse before looking at the bytes.
  if (buf.length > maxBytes) return err('SIP_ERR_TOO_LARGE', 'Message Too Large');
  let skip = 0;
  while (skip < buf.length && (buf[skip] === 13 || buf[skip] === 10)) skip++;
  if (skip === buf.length) return err('SIP_ERR_EMPTY', 'Empty message');
  if (skip > 0) buf = buf.subarray(skip);
  const n = buf.length;
  const s = latin1(buf, 0, n);
  // pure ASCII (the common case): header values need no UTF-8 decoding check
  const ascii = isAscii(buf);

  // ---- start line
  let le = s.indexOf('\n');
  if (le === -1) return err('SIP_ERR_INCOMPLETE', 'Incomplete message');
  const startLineEnd = le + 1;
  const slEnd = le > 0 && s.charCodeAt(le - 1) === 13 ? le - 1 : le;

  // ---- header lines
  const entries: HeaderEntry[] = [];
  let pos = startLineEnd;
  let bodyStart = -1;
  let last: HeaderEntry | undefined;
  while (pos < n) {
    const c = s.charCodeAt(pos);
    if (c === 13 && s.charCodeAt(pos + 1) === 10) {
      bodyStart = pos + 2;
      break;
    }
    if (c === 10) {
      bodyStart = pos + 1;
      break;
    }
    le = s.indexOf('\n', pos);
    if (le === -1) return err('SIP_ERR_INCOMPLETE', 'Incomplete message');
    let ve = le > pos && s.charCodeAt(le - 1) === 13 ? le - 1 : le;
    if (c === 32 || c === 9) {
      // RFC 3261 §7.3.1: "Header fields can be extended over multiple lines by preceding each
      // extra line with at least one SP or horizontal tab (HT)."
      if (last === undefined) return err('SIP_ERR_BAD_HEADER', 'Bad header folding');
      while (ve > pos && (s.charCodeAt(ve - 1) === 32 || s.charCodeAt(ve - 1) === 9)) ve--;
      if (ve > pos) {
        last.ve = ve;
        last.folded = true;
      }
      last.re = le + 1;
      pos = le + 1;
      continue;
    }
    const colon = s.indexOf(':', pos);
    if (colon === -1 || colon > le) return BAD_HEADER_LINE;
    let ne = colon;
    while (ne > pos && (s.charCodeAt(ne - 1) === 32 || s.charCodeAt(ne - 1) === 9)) ne--;
    let name: string;
    let key: string | undefined;
    const known = matchKnownName(s, pos, ne);
    if (known !== undefined) {
      name = known.name;
      key = known.key;
    } else {
      name = s.slice(pos, ne);
      key = validNameKeys.get(name);
      if (key === undefined) {
        if (!isToken(s, pos, ne)) return BAD_HEADER_LINE;
        key = headerKey(name);
        if (validNameKeys.size < 2048) validNameKeys.set(name, key);
      }
    }
    let vs = colon + 1;
    while (vs < ve && (s.charCodeAt(vs) === 32 || s.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (s.charCodeAt(ve - 1) === 32 || s.charCodeAt(ve - 1) === 9)) ve--;
    last = new HeaderEntry(name, key, s, pos, le + 1, vs, ve, undefined, ascii);
    entries.push(last);
    pos = le + 1;
  }
  if (bodyStart === -1) return err('SIP_ERR_INCOMPLETE', 'Missing end of headers');
  const headers = new HeaderList(entries);

  // ---- start line fields
  let msg: SipRequest | SipResponse;
  let startFault: { code: SipErrorCode; reason: string } | undefined;
  let uriStart = 0;
  let uriEnd = -1;
  let uriCheck: ReturnType<typeof validateUri> | undefined;
  let body = buf.subarray(bodyStart);
  const raw = { buf, src: s, startLineEnd, bodyStart, body };
  if (s.startsWith('SIP/', 0)) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    const sp1 = s.indexOf(' ', 0);
    if (sp1 === -1 || sp1 > slEnd) return { ok: false, code: 'SIP_ERR_BAD_START_LINE', reason: 'Bad status line', response: true };
    if (!isSip20(s, 0, sp1)) return { ok: false, code: 'SIP_ERR_BAD_VERSION', reason: 'Version Not Supported', response: true };
    const status = parseDigits(s.slice(sp1 + 1, sp1 + 4));
    if (status === undefined || status < 100 || status > 699 || (sp1 + 4 < slEnd && s.charCodeAt(sp1 + 4) !== 32)) {
      return { ok: false, code: 'SIP_ERR_BAD_START_LINE', reason: 'Bad status code', response: true };
    }
    let reason = sp1 + 5 <= slEnd ? s.slice(sp1 + 5, slEnd) : '';
    if (!ascii && /[\x80-\xff]/.test(reason)) reason = Buffer.from(reason, 'latin1').toString('utf8');
    msg = new SipResponse(status, reason, headers, body, raw);
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF (single SPs, §25.1). A request
    // whose method can be read is still examined below, so that it can be answered (400/505).
    const sp1 = s.indexOf(' ', 0);
    if (sp1 <= 0 || sp1 > slEnd || !isToken(s, 0, sp1)) return err('SIP_ERR_BAD_START_LINE', 'Bad request line');
    const sp2 = s.lastIndexOf(' ', slEnd - 1);
    let uri: string;
    uriStart = sp1 + 1;
    if (sp2 <= sp1) {
      uri = s.slice(sp1 + 1, slEnd);
      startFault = { code: 'SIP_ERR_BAD_START_LINE', reason: 'Bad request line' };
    } else {
      uri = s.slice(sp1 + 1, sp2);
      uriEnd = sp2;
      if (!isSip20(s, sp2 + 1, slEnd)) {
        startFault = /^SIP\/\d+\.\d+$/i.test(s.slice(sp2 + 1, slEnd))
          ? { code: 'SIP_ERR_BAD_VERSION', reason: 'Version Not Supported' }
          : { code: 'SIP_ERR_BAD_START_LINE', reason: 'Bad SIP version' };
      } else {
        // The URI grammar check (needed below) rejects controls, SP and DEL in a sip/sips/tel
        // URI, so when it passes on an all-ASCII message no character scan is needed here.
        uriCheck = validateUri(s, uriStart, uriEnd);
        if (typeof uriCheck !== 'number' || !ascii) {
          for (let i = 0; i < uri.length; i++) {
            const c = uri.charCodeAt(i);
            if (c <= 32 || c >= 127) {
              startFault = { code: 'SIP_ERR_BAD_URI', reason: 'Bad Request-URI' };
              break;
            }
          }
        }
      }
    }
    msg = new SipRequest(methodConstant(s.slice(0, sp1)), uri, headers, body, raw);
  }

  // ---- routing-critical headers, validated at once (one pass to find them)
  const isReq = msg instanceof SipRequest;
  let viaCount = 0;
  let fault = startFault;
  let eFrom: HeaderEntry | undefined;
  let eTo: HeaderEntry | undefined;
  let eCallId: HeaderEntry | undefined;
  let eCSeq: HeaderEntry | undefined;
  let eMaxFwd: HeaderEntry | undefined;
  let eLength: HeaderEntry | undefined;
  let dup = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const k = e.key;
    if (k === 'via') {
      // validate on the received text itself (no substring) unless the line was folded
      let ve: string | undefined;
      if (viaCount === 0 && ascii) {
        // the top Via is what routing reads first: keep it built (as `topVia` would parse it)
        // a fresh array: cheaper than emptying a shared scratch (setting length is a runtime call)
        const first: Via[] = [];
        ve = e.folded ? validateViaListKeepFirst(e.value, 0, e.value.length, first) : validateViaListKeepFirst(s, e.vs, e.ve, first);
        msg.primeTopVia(first[0]);
      } else ve = e.folded ? validateViaList(e.value) : validateViaList(s, e.vs, e.ve);
      // The response goes to the top Via's sent-by: a request can be answered when that much parsed.
      if (ve !== undefined) return failed(msg, fault?.code ?? 'SIP_ERR_BAD_VIA', fault?.reason ?? ve, viaCount > 0 || viaSentByCount > 0);
      viaCount++;
    } else if (k === 'from') {
      if (eFrom === undefined) eFrom = e;
      else dup |= DUP_FROM;
    } else if (k === 'to') {
      if (eTo === undefined) eTo = e;
      else dup |= DUP_TO;
    } else if (k === 'call-id') {
      if (eCallId === undefined) eCallId = e;
      else dup |= DUP_CALL_ID;
    } else if (k === 'cseq') {
      if (eCSeq === undefined) eCSeq = e;
      else dup |= DUP_CSEQ;
    } else if (k === 'max-forwards') {
      if (eMaxFwd === undefined) eMaxFwd = e;
      else dup |= DUP_MAX_FORWARDS;
    } else if (k === 'content-length') {
      if (eLength === undefined) eLength = e;
      else dup |= DUP_CONTENT_LENGTH;
    }
  }
  if (viaCount === 0) return failed(msg, fault?.code ?? 'SIP_ERR_MISSING_HEADER', fault?.reason ?? 'Missing Via', false);
  // From / To / Call-ID / CSeq: a request failing here can still be answered (its Via parsed).
  let cseq: CSeq | undefined;
  if (fault !== undefined) {
    /* keep the start-line fault */
  } else if (eFrom === undefined) fault = { code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing From' };
  else if ((dup & DUP_FROM) !== 0 || validateNameAddrOf(eFrom) !== undefined) fault = { code: 'SIP_ERR_BAD_FROM', reason: 'Bad From' };
  if (fault !== undefined) {
    /* keep the first fault */
  } else if (eTo === undefined) fault = { code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing To' };
  else if ((dup & DUP_TO) !== 0 || validateNameAddrOf(eTo) !== undefined) fault = { code: 'SIP_ERR_BAD_TO', reason: 'Bad To' };
  if (fault === undefined) {
    if (eCallId === undefined) fault = { code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing Call-ID' };
    else if ((dup & DUP_CALL_ID) !== 0 || !validCallIdOf(eCallId)) fault = { code: 'SIP_ERR_BAD_CALL_ID', reason: 'Bad Call-ID' };
  }
  if (fault === undefined) {
    if (eCSeq === undefined) fault = { code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing CSeq' };
    else {
      const r = (dup & DUP_CSEQ) !== 0 ? 'Bad CSeq' : cseqOf(eCSeq);
      if (typeof r === 'string') fault = { code: 'SIP_ERR_BAD_CSEQ', reason: r };
      else if (isReq && r.method !== (msg as SipRequest).method) fault = { code: 'SIP_ERR_BAD_CSEQ', reason: 'CSeq method mismatch' };
      else cseq = r;
    }
  }
  if (fault === undefined && eMaxFwd !== undefined) {
    const mf = (dup & DUP_MAX_FORWARDS) !== 0 ? undefined : digitsOf(eMaxFwd);
    if (mf === undefined || mf > 255) fault = { code: 'SIP_ERR_BAD_MAX_FORWARDS', reason: 'Bad Max-Forwards' };
  }
  // RFC 3261 §18.3: on stream transports "the Content-Length header field MUST be used to
  // indicate the size of the message-body"; on datagrams "If the message is a request [and
  // shorter than Content-Length], the server SHOULD respond with a 400".
  if (fault === undefined) {
    if (eLength === undefined) {
      if (stream) fault = { code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing Content-Length' };
    } else {
      const len = (dup & DUP_CONTENT_LENGTH) !== 0 ? undefined : digitsOf(eLength);
      if (len === undefined) fault = { code: 'SIP_ERR_BAD_CONTENT_LENGTH', reason: 'Bad Content-Length' };
      else if (len > body.length) fault = { code: 'SIP_ERR_BAD_CONTENT_LENGTH', reason: 'Content-Length exceeds body' };
      else if (len < body.length) {
        // §18.3: "any additional bytes in the transport packet beyond the end of the body
        // MUST be discarded"
        body = body.subarray(0, len);
        msg.body = body;
        raw.body = body;
      }
    }
  }
  if (fault === undefined && isReq) {
    const u = uriCheck ?? (uriEnd !== -1 ? validateUri(s, uriStart, uriEnd) : validateUri((msg as SipRequest).uri));
    if (typeof u !== 'number') {
      fault = { code: u.code as SipErrorCode, reason: u.code === 'SIP_ERR_UNSUPPORTED_URI_SCHEME' ? 'Unsupported URI Scheme' : 'Bad Request-URI' };
    } else if (u === 1) {
      // §19.1.1: headers are not allowed in a Request-URI
      fault = { code: 'SIP_ERR_BAD_URI', reason: 'Bad Request-URI' };
    }
  }
  // keep what was parsed, so that the typed getters do not parse it again
  if (cseq !== undefined) msg.primeCSeq(cseq);
  if (fault !== undefined) return failed(msg, fault.code, fault.reason, true);
  return { ok: true, value: msg };
}

const DUP_FROM = 1;
const DUP_TO = 2;
const DUP_CALL_ID = 4;
const DUP_CSEQ = 8;
const DUP_MAX_FORWARDS = 16;
const DUP_CONTENT_LENGTH = 32;

/** Call-ID = word [ "@" word ]: non-empty, no whitespace or controls (on the received text). */
function validCallIdOf(e: HeaderEntry): boolean {
  if (e.folded || e.src === undefined) return validCallId(e.value);
  const src = e.src;
  if (e.ve <= e.vs) return false;
  for (let i = e.vs; i < e.ve; i++) {
    const c = src.charCodeAt(i);
    if (c <= 32 || c === 127) return false;
  }
  return true;
}

/**
 * CSeq of a parsed line, read on the received text (no substrings but the method). Same rules
 * as parseCSeq: CSeq = 1*DIGIT LWS Method, the number below 2^31; the value is already
 * trimmed of SP/HT, and any other edge character (control or non-ASCII) takes the general path,
 * where it is refused unless it is LWS (parseCSeq trims SP, HT, CR, LF only: `trimLws`).
 */
function cseqOf(e: HeaderEntry): CSeq | string {
  const src = e.src;
  const vs = e.vs;
  const ve = e.ve;
  if (e.folded || src === undefined || ve - vs < 3) return parseCSeq(e.value);
  const first = src.charCodeAt(vs);
  const lastc = src.charCodeAt(ve - 1);
  if (first <= 32 || first >= 127 || lastc <= 32 || lastc >= 127) return parseCSeq(e.value);
  let i = vs;
  let seq = 0;
  for (; i < ve; i++) {
    const c = src.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + c - 48;
  }
  if (i === vs || i >= ve) return 'Bad CSeq';
  let c = src.charCodeAt(i);
  if (c !== 32 && c !== 9 && c !== 13 && c !== 10) return 'Bad CSeq';
  if (i - vs > 10 || !(seq < 2 ** 31)) return 'Bad CSeq';
  do c = src.charCodeAt(++i);
  while (c === 32 || c === 9 || c === 13 || c === 10);
  const ms = i;
  while (i < ve && isTokenCode(src.charCodeAt(i))) i++;
  if (i === ms || i !== ve) return 'Bad CSeq';
  return { seq, method: src.slice(ms, ve) };
}

/** 1*DIGIT value of a parsed line, undefined otherwise. */
function digitsOf(e: HeaderEntry): number | undefined {
  if (e.folded || e.src === undefined) return parseDigits(e.value);
  const src = e.src;
  if (e.ve <= e.vs || e.ve - e.vs > 15) return undefined;
  let v = 0;
  for (let i = e.vs; i < e.ve; i++) {
    const c = src.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    v = v * 10 + c - 48;
  }
  return v;
}

/** validateNameAddr on the received text of a parsed line (unfolded value for folded lines). */
function validateNameAddrOf(e: HeaderEntry): string | undefined {
  return e.folded || e.src === undefined ? validateNameAddr(e.value) : validateNameAddr(e.src, e.vs, e.ve);
}

function failed(msg: SipMessage, code: SipErrorCode, reason: string, answerable: boolean): ParseResult {
  if (!(msg instanceof SipRequest)) return { ok: false, code, reason, response: true };
  if (!answerable || msg.method === 'ACK') return { ok: false, code, reason };
  return { ok: false, code, reason, partial: msg };
}

const BAD_HEADER_LINE: ParseResult = Object.freeze({ ok: false, code: 'SIP_ERR_BAD_HEADER', reason: 'Bad header line' });

function isSip20(s: string, from: number, to: number): boolean {
  if (to - from !== 7) return false;
  const c0 = s.charCodeAt(from) | 0x20;
  const c1 = s.charCodeAt(from + 1) | 0x20;
  const c2 = s.charCodeAt(from + 2) | 0x20;
  return c0 === 115 && c1 === 105 && c2 === 112 && s.startsWith('/2.0', from + 3);
}

// ---------------------------------------------------------------------------------------------
// stream framing

export type FrameResult =
  /** A whole message of `length` bytes is at the start of the buffer. */
  | { type: 'message'; length: number }
  /** CRLFCRLF keep-alive ping (RFC 5626 §3.5.1): answer with CRLF, consume `length`. */
  | { type: 'ping'; length: number }
  /** A lone CRLF (keep-alive pong): consume `length`. */
  | { type: 'pong'; length: number }
  /**
   * Not enough bytes yet. Pass `searchFrom` back on the next call so that the header end is not
   * searched again from the start; `total` is the full message size once the header is known
   * (no need to call again before that many bytes are buffered).
   */
  | { type: 'need'; searchFrom?: number; total?: number }
  /** Framing is impossible (no or bad Content-Length, too large): close the connection. */
  | { type: 'error'; code: SipErrorCode; reason: string };

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CL_RE = /\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/gi;

/**
 * Finds the first message in a stream buffer (TCP/TLS) by its Content-Length (§18.3).
 * Work is bounded by `maxBytes`: a head that has not ended within it is an error.
 */
export function frameStream(buf: Buffer, maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES, searchFrom = 0): FrameResult {
  if (buf.length === 0) return { type: 'need' };
  if (buf[0] === 13 || buf[0] === 10) {
    if (buf.length >= 4 && buf[0] === 13 && buf[1] === 10 && buf[2] === 13 && buf[3] === 10) return { type: 'ping', length: 4 };
    if (buf[0] === 13) {
      if (buf.length < 2) return { type: 'need' };
      if (buf[1] !== 10) return { type: 'error', code: 'SIP_ERR_BAD_START_LINE', reason: 'Bad framing' };
      // A ping split across segments (CRLF, then CRLF) must not be taken for two pongs.
      if (buf.length === 2 || (buf.length === 3 && buf[2] === 13)) return { type: 'need' };
      return { type: 'pong', length: 2 };
    }
    return { type: 'pong', length: 1 };
  }
  const limit = Math.min(buf.length, maxBytes);
  const end = (buf.length > maxBytes + 4 ? buf.subarray(0, maxBytes + 4) : buf).indexOf(CRLFCRLF, Math.max(0, Math.min(searchFrom, buf.length - 4)));
  if (end === -1 || end + 4 > maxBytes) {
    if (limit >= maxBytes) return { type: 'error', code: 'SIP_ERR_TOO_LARGE', reason: 'Message Too Large' };
    return { type: 'need', searchFrom: Math.max(0, buf.length - 3) };
  }
  const head = latin1(buf, 0, end + 2);
  let len: number | undefined;
  let count = 0;
  CL_RE.lastIndex = 0;
  for (let m = CL_RE.exec(head); m !== null; m = CL_RE.exec(head)) {
    count++;
    len = parseDigits(m[1]!.trim());
    if (len === undefined) return { type: 'error', code: 'SIP_ERR_BAD_CONTENT_LENGTH', reason: 'Bad Content-Length' };
  }
  if (count === 0 || len === undefined) return { type: 'error', code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing Content-Length' };
  if (count > 1) return { type: 'error', code: 'SIP_ERR_BAD_CONTENT_LENGTH', reason: 'Bad Content-Length' };
  const total = end + 4 + len;
  if (total > maxBytes) return { type: 'error', code: 'SIP_ERR_TOO_LARGE', reason: 'Message Too Large' };
  if (buf.length < total) return { type: 'need', searchFrom: end, total };
  return { type: 'message', length: total };
}
