/**
 * Parsers for individual header values (RFC 3261 §20, §25.1). Each returns a value or an
 * error string (the reason phrase fragment); none throws on peer input.
 */
import {
  isTokenChar,
  isValidHostRange,
  parseHeaderParams,
  scanHostname,
  parseNameAddrAt,
  quotedStringEnd,
  unquote,
  type NameAddr,
} from '../uri/sip-uri.js';

/** A Via header value (RFC 3261 §20.42, RFC 3581). */
export interface Via {
  /** `SIP/2.0` normally. */
  protocol: string;
  /** Upper-case transport: UDP, TCP, TLS, SCTP, WS, WSS, ... */
  transport: string;
  host: string;
  port?: number;
  params: Map<string, string | null>;
  branch?: string;
  received?: string;
  /** `null`: rport present without a value (client asks for it); `undefined`: absent. */
  rport?: number | null;
  maddr?: string;
  ttl?: number;
}

/** Contact value: a name-addr, or `*` (only valid in REGISTER with Expires: 0). */
export type Contact = NameAddr | '*';

export interface CSeq {
  seq: number;
  method: string;
}

/** Authorization / Proxy-Authorization / WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §25.1, RFC 7616). */
export interface Credentials {
  scheme: string;
  /** Parameter names lower-case; quoted values unquoted. */
  params: Map<string, string>;
}

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/**
 * `value` without leading and trailing SIP whitespace (SP, HT, CR, LF: the characters of LWS,
 * RFC 3261 §25.1). Not `String#trim`, which also strips VT, FF, NBSP, U+FEFF, U+2028/2029 and
 * the other Unicode spaces: none of them is whitespace in SIP, so a value edged by one must
 * stay invalid rather than be silently accepted.
 */
export function trimLws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isWs(value.charCodeAt(start))) start++;
  while (end > start && isWs(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/**
 * Splits a comma-separated header value, ignoring commas inside quoted strings and `<...>`.
 * Empty elements are dropped. Whitespace around elements is trimmed.
 */
export function splitList(value: string): string[] {
  if (value.indexOf(',') === -1) {
    const t = trimLws(value);
    return t.length === 0 ? [] : [t];
  }
  const out: string[] = [];
  let start = 0;
  for (let comma = listComma(value, 0); comma !== -1; comma = listComma(value, start)) {
    const t = trimLws(value.slice(start, comma));
    if (t.length > 0) out.push(t);
    start = comma + 1;
  }
  const t = trimLws(value.slice(start));
  if (t.length > 0) out.push(t);
  return out;
}

/**
 * Index of the comma ending the first element of a comma-separated value (outside quoted strings
 * and `<...>`), or -1 when there is none: `removeFirst` takes the first element of a combined
 * line (a response's Via list) without splitting the rest.
 */
export function firstListComma(value: string): number {
  return listComma(value, 0);
}

/**
 * Index of the first comma from `from` that separates list elements (outside quoted strings and
 * `<...>`), or -1 when there is none (an unterminated quoted string ends the search).
 */
function listComma(value: string, from: number): number {
  let inAngle = false;
  const n = value.length;
  for (let i = from; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 34) {
      const qe = quotedStringEnd(value, i);
      if (qe === -1) return -1;
      i = qe - 1;
    } else if (c === 60) inAngle = true;
    else if (c === 62) inAngle = false;
    else if (c === 44 && !inAngle) return i;
  }
  return -1;
}

function skipWs(s: string, i: number, end = s.length): number {
  while (i < end && isWs(s.charCodeAt(i))) i++;
  return i;
}

function readToken(s: string, i: number, end = s.length): number {
  while (i < end && isTokenChar(s.charCodeAt(i))) i++;
  return i;
}

/**
 * Number of Via values whose sent-protocol and sent-by were valid in the last parseViaList /
 * validateViaList call (a response can be routed to the first one even when its parameters
 * are broken). Read right after the call.
 */
export let viaSentByCount = 0;

/**
 * Parses every Via in one header value (which may be a comma list), appending to `out`.
 * via-parm = sent-protocol LWS sent-by *( SEMI via-params ); LWS allowed around '/'.
 * On a Via whose parameters are malformed, the Via is still appended (without parameters)
 * so that a response can be routed, and the error is returned.
 */
export function parseViaList(value: string, out: Via[]): string | undefined {
  return viaList(value, 0, value.length, out);
}

/** Parses only the first Via of a header value (what routing a response needs). */
export function parseFirstVia(value: string, out: Via[]): string | undefined {
  const pos = skipWs(value, 0);
  if (pos >= value.length) return 'Bad Via';
  const r = viaAt(value, pos, value.length, out);
  return typeof r === 'string' ? r : undefined;
}

/**
 * parseViaList without building anything (eager validation in the parser), on
 * value[start, end) — the parser passes ranges of the received text to avoid slicing.
 */
export function validateViaList(value: string, start = 0, end = value.length): string | undefined {
  return viaList(value, start, end, undefined);
}

/**
 * validateViaList that also builds the first Via of the value into `first` (as parseFirstVia
 * would): the parser keeps the top Via of a message this way, without a second pass.
 */
export function validateViaListKeepFirst(value: string, start: number, end: number, first: Via[]): string | undefined {
  return viaList(value, start, end, first, true);
}

function viaList(value: string, start: number, n: number, out: Via[] | undefined, firstOnly = false): string | undefined {
  let pos = start;
  viaSentByCount = 0;
  for (;;) {
    pos = skipWs(value, pos, n);
    if (pos >= n) return viaSentByCount === 0 ? 'Bad Via' : undefined;
    const r = viaAt(value, pos, n, firstOnly && viaSentByCount > 0 ? undefined : out);
    if (typeof r === 'string') return r;
    pos = skipWs(value, r, n);
    if (pos >= n) return undefined;
    if (value.charCodeAt(pos) !== 44) return 'Bad Via';
    pos++;
  }
}

const TRANSPORTS = ['UDP', 'TCP', 'TLS', 'WS', 'WSS', 'SCTP'];

function viaAt(s: string, pos: number, end: number, out: Via[] | undefined): number | string {
  // fast path: "SIP/2.0/UDP " and friends, as nearly every Via is written
  if (pos + 8 < end && s.startsWith('SIP/2.0/', pos)) {
    const ts = pos + 8;
    const te = readToken(s, ts, end);
    if (te < end && (s.charCodeAt(te) === 32 || s.charCodeAt(te) === 9)) {
      for (let i = 0; i < TRANSPORTS.length; i++) {
        const t = TRANSPORTS[i]!;
        if (t.length === te - ts && s.startsWith(t, ts)) return sentBy(s, te, end, 'SIP/2.0', t, out);
      }
    }
  }
  // sent-protocol: name / version / transport
  let e = readToken(s, pos, end);
  if (e === pos) return 'Bad Via';
  const ns = pos;
  const ne = e;
  pos = skipWs(s, e, end);
  if (pos >= end || s.charCodeAt(pos) !== 47) return 'Bad Via';
  pos = skipWs(s, pos + 1, end);
  e = readToken(s, pos, end);
  if (e === pos) return 'Bad Via';
  const vs = pos;
  const ve = e;
  pos = skipWs(s, e, end);
  if (pos >= end || s.charCodeAt(pos) !== 47) return 'Bad Via';
  pos = skipWs(s, pos + 1, end);
  e = readToken(s, pos, end);
  if (e === pos) return 'Bad Via';
  if (out === undefined) return sentBy(s, e, end, '', '', undefined);
  return sentBy(s, e, end, `${s.slice(ns, ne)}/${s.slice(vs, ve)}`, s.slice(pos, e).toUpperCase(), out);
}

function sentBy(s: string, pos: number, end: number, protocol: string, transport: string, out: Via[] | undefined): number | string {
  if (pos >= end || !isWs(s.charCodeAt(pos))) return 'Bad Via';
  pos = skipWs(s, pos, end);
  // sent-by = host [ COLON port ]
  const hs = pos;
  let hostEnd: number;
  if (pos < end && s.charCodeAt(pos) === 91) {
    const rb = s.indexOf(']', pos);
    if (rb === -1 || rb >= end) return 'Bad Via';
    hostEnd = rb + 1;
    if (!isValidHostRange(s, hs, hostEnd)) return 'Bad Via';
  } else {
    hostEnd = scanHostname(s, pos, end);
    if (hostEnd === -1) return 'Bad Via';
    const c = hostEnd < end ? s.charCodeAt(hostEnd) : 32;
    if (c !== 58 && c !== 59 && c !== 44 && !isWs(c)) return 'Bad Via';
  }
  pos = skipWs(s, hostEnd, end);
  let port: number | undefined;
  if (pos < end && s.charCodeAt(pos) === 58) {
    pos = skipWs(s, pos + 1, end);
    const ps = pos;
    let p = 0;
    while (pos < end) {
      const c = s.charCodeAt(pos);
      if (c < 48 || c > 57) break;
      p = p * 10 + c - 48;
      if (p > 65535) return 'Bad Via';
      pos++;
    }
    if (pos === ps) return 'Bad Via';
    port = p;
  }
  viaSentByCount++;
  if (out === undefined) {
    const pe = parseHeaderParams(s, pos, undefined, true, true, end);
    return pe === -1 ? 'Bad Via' : pe;
  }
  // Only the parameters routing needs are extracted now; the params Map is built on first use.
  // a fresh array: cheaper than emptying a shared scratch (setting length is a runtime call)
  const spans: number[] = [];
  const pe = parseHeaderParams(s, pos, undefined, true, true, end, spans);
  const via = new ParsedVia(protocol, transport, s.slice(hs, hostEnd), port, s, pos, pe);
  out.push(via);
  if (pe === -1) {
    // keep the sent-by so that a response can still be routed
    via.params = new Map();
    return 'Bad Via';
  }
  // parseHeaderParams checked branch/received/maddr have values, rport and ttl are numbers;
  // the first occurrence of a name counts (as in the Map)
  let seen = 0;
  for (let i = 0; i < spans.length; i += 4) {
    const ns = spans[i]!;
    const len = spans[i + 1]! - ns;
    const vs = spans[i + 2]!;
    const ve = spans[i + 3]!;
    let bit: number;
    if (len === 6 && eqLower(s, ns, 'branch')) bit = 1;
    else if (len === 8 && eqLower(s, ns, 'received')) bit = 2;
    else if (len === 5 && eqLower(s, ns, 'rport')) bit = 4;
    else if (len === 5 && eqLower(s, ns, 'maddr')) bit = 8;
    else if (len === 3 && eqLower(s, ns, 'ttl')) bit = 16;
    else continue;
    if ((seen & bit) !== 0) continue;
    seen |= bit;
    const v = vs === -1 || ve === vs ? undefined : s.slice(vs, ve);
    if (bit === 1) via.branch = v;
    else if (bit === 2) via.received = v;
    else if (bit === 4) via.rport = vs === -1 ? null : v === undefined ? undefined : parseDigits(v);
    else if (bit === 8) via.maddr = v;
    else if (v !== undefined) via.ttl = parseDigits(v);
  }
  return pe;
}

/**
 * A Via of the same shape as parsed ones from its parts (`params` names lower-case); `branch`,
 * `received`, `rport`, `maddr` and `ttl` are derived from `params` as the parser does.
 */
export function viaFromParts(protocol: string, transport: string, host: string, port: number | undefined, params: Map<string, string | null>): Via {
  const via = new ParsedVia(protocol, transport, host, port, '', 0, 0);
  via.params = params;
  via.branch = params.get('branch') || undefined;
  via.received = params.get('received') || undefined;
  if (params.has('rport')) {
    const rp = params.get('rport');
    via.rport = rp === null || rp === undefined ? null : parseDigits(rp);
  }
  via.maddr = params.get('maddr') || undefined;
  const ttl = params.get('ttl');
  if (ttl) via.ttl = parseDigits(ttl);
  return via;
}

/** text[start, start + lower.length) equals `lower` ignoring ASCII case. */
function eqLower(text: string, start: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((text.charCodeAt(start + i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/**
 * A parsed Via. `params` (every parameter, names lower-case) is built from the received text on
 * first access; the routing fields are set while parsing.
 */
class ParsedVia implements Via {
  protocol: string;
  transport: string;
  host: string;
  port: number | undefined;
  branch: string | undefined = undefined;
  received: string | undefined = undefined;
  rport: number | null | undefined = undefined;
  maddr: string | undefined = undefined;
  ttl: number | undefined = undefined;
  #params: Map<string, string | null> | undefined;
  readonly #src: string;
  readonly #ps: number;
  readonly #pe: number;

  constructor(protocol: string, transport: string, host: string, port: number | undefined, src: string, ps: number, pe: number) {
    this.protocol = protocol;
    this.transport = transport;
    this.host = host;
    this.port = port;
    this.#src = src;
    this.#ps = ps;
    this.#pe = pe;
  }

  get params(): Map<string, string | null> {
    let p = this.#params;
    if (p === undefined) {
      p = new Map();
      parseHeaderParams(this.#src, this.#ps, p, true, true, this.#pe);
      this.#params = p;
    }
    return p;
  }

  set params(p: Map<string, string | null>) {
    this.#params = p;
  }

  /**
   * This Via after the transport's edit of its text (`text`: the value with a bare `;rport`
   * filled in as `;rport=PORT` when `rport` is given, and `;received=ADDRESS` appended), built
   * without parsing `text`. Undefined where the result could differ from a parse of `text`: a
   * `received` already present (the first occurrence counts), an `rport` that was not bare, a
   * quoted string (the edit may have landed inside it), an address other than IPv4 dotted
   * digits, or parameters that did not parse.
   */
  stamped(text: string, received: string, rport: number | undefined): Via | undefined {
    if (this.#pe === -1 || this.received !== undefined || (rport !== undefined && this.rport !== null)) return undefined;
    if (text.indexOf('"') !== -1 || !IPV4_DIGITS.test(received)) return undefined;
    // sent-protocol and sent-by hold no ';': the parameters start at the first one.
    const via = new ParsedVia(this.protocol, this.transport, this.host, this.port, text, text.indexOf(';'), text.length);
    via.branch = this.branch;
    via.received = received;
    via.rport = rport ?? this.rport;
    via.maddr = this.maddr;
    via.ttl = this.ttl;
    return via;
  }
}

const IPV4_DIGITS = /^[0-9]{1,3}(?:\.[0-9]{1,3}){3}$/;

const BARE_RPORT = /;[ \t]*rport(?=[ \t]*(?:;|$))/i;

/**
 * A single-valued Via line with `received` added (RFC 3261 §18.2.1) and, when `rport` is given,
 * the bare `rport` filled with it (RFC 3581 §4), as a text edit. Undefined when the line holds
 * several values, or `rport` is given and the line has no bare `rport`.
 */
export function stampViaText(line: string, received: string, rport: number | undefined): string | undefined {
  if (line.indexOf(',') !== -1) return undefined;
  if (rport === undefined) return `${line};received=${received}`;
  const m = BARE_RPORT.exec(line);
  if (m === null) return undefined;
  return `${line.slice(0, m.index)};rport=${rport}${line.slice(m.index + m[0].length)};received=${received}`;
}

/** See `ParsedVia.stamped`; undefined for a Via that was not parsed from text. */
export function stampedVia(via: Via, text: string, received: string, rport: number | undefined): Via | undefined {
  return via instanceof ParsedVia ? via.stamped(text, received, rport) : undefined;
}

/** Renders a Via value. */
export function formatVia(v: Via): string {
  let out = `${v.protocol}/${v.transport} ${v.host}`;
  if (v.port !== undefined) out += ':' + v.port;
  for (const [k, val] of v.params) out += val === null ? `;${k}` : `;${k}=${val}`;
  return out;
}

/** 1*DIGIT as a safe integer; undefined for anything else (including > 2^53). */
export function parseDigits(s: string): number | undefined {
  if (s.length === 0 || s.length > 15) return undefined;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    v = v * 10 + c - 48;
  }
  return v;
}

/** CSeq = 1*DIGIT LWS Method; the number must be below 2^31 (RFC 3261 §8.1.1.5). */
export function parseCSeq(value: string): CSeq | string {
  const s = trimLws(value);
  let i = 0;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  if (i === 0 || i >= s.length || !isWs(s.charCodeAt(i))) return 'Bad CSeq';
  const seq = i > 10 ? Infinity : Number(s.slice(0, i));
  if (!(seq < 2 ** 31)) return 'Bad CSeq';
  const ms = skipWs(s, i);
  const me = readToken(s, ms);
  if (me === ms || me !== s.length) return 'Bad CSeq';
  return { seq, method: s.slice(ms, me) };
}

/** Call-ID = word [ "@" word ]: non-empty, no whitespace. */
export function validCallId(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 32 || c === 127) return false;
  }
  return true;
}

/** Parses a comma-list of name-addrs (Contact, Route, Record-Route, Path, ...). */
export function parseNameAddrList(value: string, out: NameAddr[], allowStar: false): string | undefined;
export function parseNameAddrList(value: string, out: Contact[], allowStar: true): string | undefined;
export function parseNameAddrList(value: string, out: Contact[], allowStar: boolean): string | undefined {
  let pos = skipWs(value, 0);
  const n = value.length;
  if (allowStar && value.charCodeAt(pos) === 42 /* * */) {
    if (skipWs(value, pos + 1) !== n) return 'Bad address';
    out.push('*');
    return undefined;
  }
  for (;;) {
    const r = parseNameAddrAt(value, pos, true);
    if (typeof r === 'string') return r;
    out.push(r.value);
    pos = skipWs(value, r.end);
    if (pos >= n) return undefined;
    if (value.charCodeAt(pos) !== 44) return 'Bad address';
    pos++;
  }
}

/**
 * Parses `Digest username="a", realm="b", nonce=c` (RFC 3261 §25.1 challenge/credentials).
 * Values are unquoted.
 */
export function parseCredentials(value: string): Credentials | string {
  let pos = skipWs(value, 0);
  const se = readToken(value, pos);
  if (se === pos) return 'Bad credentials';
  const scheme = value.slice(pos, se);
  const params = new Map<string, string>();
  pos = skipWs(value, se);
  if (pos >= value.length) return { scheme, params };
  for (;;) {
    pos = skipWs(value, pos);
    const ne = readToken(value, pos);
    if (ne === pos) return 'Bad credentials';
    const name = value.slice(pos, ne).toLowerCase();
    pos = skipWs(value, ne);
    if (value.charCodeAt(pos) !== 61) return 'Bad credentials';
    pos = skipWs(value, pos + 1);
    let v: string;
    if (value.charCodeAt(pos) === 34) {
      const qe = quotedStringEnd(value, pos);
      if (qe === -1) return 'Bad credentials';
      v = unquote(value.slice(pos, qe));
      pos = qe;
    } else {
      const ve = readToken(value, pos);
      if (ve === pos) return 'Bad credentials';
      v = value.slice(pos, ve);
      pos = ve;
    }
    if (!params.has(name)) params.set(name, v);
    pos = skipWs(value, pos);
    if (pos >= value.length) return { scheme, params };
    if (value.charCodeAt(pos) !== 44) return 'Bad credentials';
    pos++;
  }
}
