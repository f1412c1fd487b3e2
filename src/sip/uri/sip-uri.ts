import { fail, ok, type Result } from '../../util/result.js';

/**
 * A SIP, SIPS or tel URI (RFC 3261 §19.1, RFC 3966).
 *
 * `user`, `password`, parameter values and header values are kept as written (still
 * %-escaped) so that formatting a parsed URI reproduces it; comparison unescapes.
 * Parameter and header names are stored lower-case (they compare case-insensitively).
 * For `tel:` URIs the telephone-subscriber number is in `user` and `host` is ''.
 */
export interface SipUri {
  scheme: 'sip' | 'sips' | 'tel';
  user?: string;
  password?: string;
  host: string;
  port?: number;
  params: ReadonlyMap<string, string | null>;
  headers: ReadonlyMap<string, string>;
}

/** name-addr or addr-spec (RFC 3261 §20.10, §20.20, §20.39); header params (tag, expires, q) live in `params`. */
export interface NameAddr {
  /** Display name, unquoted and unescaped. */
  displayName?: string;
  uri: SipUri;
  params: ReadonlyMap<string, string | null>;
}

export const URI_ERR = 'SIP_ERR_BAD_URI';
export const URI_SCHEME_ERR = 'SIP_ERR_UNSUPPORTED_URI_SCHEME';

const C_SEMI = 59;
const C_QMARK = 63;
const C_AMP = 38;
const C_EQ = 61;
const C_COLON = 58;
const C_AT = 64;
const C_LBRACK = 91;
const C_RBRACK = 93;

// Character classes for the one-pass URI scan: 1 forbidden (controls, SP, < > "), 2 '@', 3 ':', 4 '%'.
const URI_CLASS = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c <= 32; c++) t[c] = 1;
  t[127] = 1;
  t[60] = 1;
  t[62] = 1;
  t[34] = 1;
  t[64] = 2;
  t[58] = 3;
  t[37] = 4;
  return t;
})();

function isCtlOrSpace(c: number): boolean {
  return c <= 32 || c === 127;
}

/** True when `s` has no whitespace / control characters and no characters forbidden everywhere in a URI. */
function cleanUriChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isCtlOrSpace(c) || c === 60 /* < */ || c === 62 /* > */ || c === 34 /* " */) return false;
  }
  return true;
}

const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_CHARS_RE = /^[0-9A-Fa-f:.]+$/;

/**
 * Scans a hostname or IPv4address starting at `start` up to the first character that cannot
 * be part of one (':' ';' '?' ',' whitespace ...). Returns the end, or -1 when what was
 * scanned is not a valid host (RFC 3261 §25.1). One pass, no allocation.
 */
export function scanHostname(text: string, start: number, limit: number): number {
  let labelStart = start;
  let lastLabel = start;
  let digitsAndDots = true;
  let i = start;
  for (; i < limit; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (i === labelStart || text.charCodeAt(labelStart) === 45 || text.charCodeAt(i - 1) === 45) return -1;
      lastLabel = labelStart;
      labelStart = i + 1;
      continue;
    }
    if (c >= 48 && c <= 57) continue;
    const l = c | 0x20;
    if ((l >= 97 && l <= 122) || c === 45) {
      digitsAndDots = false;
      continue;
    }
    break;
  }
  const end = i;
  if (end === start || end - start > 255) return -1;
  if (labelStart < end) {
    // last label (no trailing dot)
    if (text.charCodeAt(labelStart) === 45 || text.charCodeAt(end - 1) === 45) return -1;
    lastLabel = labelStart;
  } else if (end - start < 2) return -1; // "." alone
  if (digitsAndDots) return isIpv4(text, start, end) ? end : -1;
  // toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
  const t = text.charCodeAt(lastLabel) | 0x20;
  return t >= 97 && t <= 122 ? end : -1;
}

/** IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each at most 255. */
function isIpv4(text: string, start: number, end: number): boolean {
  let groups = 0;
  let digits = 0;
  let value = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      groups++;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      digits++;
      value = value * 10 + c - 48;
    } else return false;
  }
  return groups === 4;
}

/** RFC 3261 §25.1 host: hostname / IPv4address / IPv6reference. */
export function isValidHost(host: string): boolean {
  return isValidHostRange(host, 0, host.length);
}

/** isValidHost on host[start, end), one pass, no allocation for hostnames. */
export function isValidHostRange(host: string, start: number, end: number): boolean {
  const n = end - start;
  if (n <= 0 || n > 255) return false;
  if (host.charCodeAt(start) === C_LBRACK) {
    return host.charCodeAt(end - 1) === C_RBRACK && isValidIpv6(host.slice(start + 1, end - 1));
  }
  return scanHostname(host, start, end) === end;
}

export function isValidIpv6(a: string): boolean {
  if (a.length < 2 || a.length > 45 || !IPV6_CHARS_RE.test(a)) return false;
  let groups = a;
  let needGroups = 8;
  const lastColon = a.lastIndexOf(':');
  if (a.indexOf('.', lastColon) !== -1) {
    if (!IPV4_RE.test(a.slice(lastColon + 1))) return false;
    groups = a.slice(0, lastColon + 1) + '0';
    needGroups = 7;
  }
  const dbl = groups.indexOf('::');
  if (dbl !== -1 && groups.indexOf('::', dbl + 1) !== -1) return false;
  const parts = groups.split(':');
  let count = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.length === 0) {
      // empty groups only allowed as part of '::'
      continue;
    }
    if (p.length > 4) return false;
    count++;
  }
  if (dbl === -1) return count === needGroups && parts.every((p) => p.length > 0);
  // with '::' at least one group is elided; leading/trailing single ':' is invalid
  if (groups.startsWith(':') && !groups.startsWith('::')) return false;
  if (groups.endsWith(':') && !groups.endsWith('::')) return false;
  return count < needGroups;
}

type UriFailure = { ok: false; reason: string; code: string };
const F_URI = Object.freeze(fail(URI_ERR, 'Bad URI'));
const F_SCHEME = Object.freeze(fail(URI_SCHEME_ERR, 'Unsupported URI Scheme'));
const F_TEL = Object.freeze(fail(URI_ERR, 'Bad tel URI'));
const F_USER = Object.freeze(fail(URI_ERR, 'Bad URI user'));
const F_PASSWORD = Object.freeze(fail(URI_ERR, 'Bad URI password'));
const F_HOST = Object.freeze(fail(URI_ERR, 'Bad URI host'));
const F_PORT = Object.freeze(fail(URI_ERR, 'Bad URI port'));
const F_PARAM = Object.freeze(fail(URI_ERR, 'Bad URI parameter'));
const F_HEADER = Object.freeze(fail(URI_ERR, 'Bad URI header'));

/**
 * Scans `;name=value;flag` in text[start, end) (start is just after the first ';'); fills
 * `params` when given. False on an empty name or an empty value after '='.
 */
function scanUriParams(text: string, start: number, end: number, params: Map<string, string | null> | undefined): boolean {
  if (start >= end) return false;
  let i = start;
  for (;;) {
    let e = text.indexOf(';', i);
    if (e === -1 || e > end) e = end;
    let eq = -1;
    for (let j = i; j < e; j++) {
      if (text.charCodeAt(j) === C_EQ) {
        eq = j;
        break;
      }
    }
    const nameEnd = eq === -1 ? e : eq;
    if (nameEnd === i || eq + 1 === e) return false;
    if (params !== undefined) {
      const name = text.slice(i, nameEnd).toLowerCase();
      if (!params.has(name)) params.set(name, eq === -1 ? null : text.slice(eq + 1, e));
    }
    if (e === end) return true;
    i = e + 1;
  }
}

/** scanUriParams for a URI being built: its parameters get a map of their own (else NO_PARAMS stays). */
function scanUriParamsOf(text: string, start: number, end: number, uri: SipUri | undefined): boolean {
  if (uri === undefined) return scanUriParams(text, start, end, undefined);
  const params = new Map<string, string | null>();
  uri.params = params;
  return scanUriParams(text, start, end, params);
}

function scanUriHeaders(text: string, start: number, end: number, headers: Map<string, string> | undefined): boolean {
  let i = start;
  while (i < end) {
    let e = text.indexOf('&', i);
    if (e === -1 || e > end) e = end;
    if (e > i) {
      let eq = -1;
      for (let j = i; j < e; j++) {
        if (text.charCodeAt(j) === C_EQ) {
          eq = j;
          break;
        }
      }
      if (eq <= i) return false;
      if (headers !== undefined) headers.set(text.slice(i, eq).toLowerCase(), text.slice(eq + 1, e));
    }
    i = e + 1;
  }
  return true;
}

/**
 * The `params` / `headers` of a parsed URI that has none: one shared empty map, where every parse
 * used to make two (most URIs have no headers, many no parameters). Read-only by type.
 */
const NO_PARAMS: ReadonlyMap<string, string | null> = new Map();
const NO_HEADERS: ReadonlyMap<string, string> = new Map();

/**
 * Parses a sip:, sips: or tel: URI (RFC 3261 §19.1.1, §25.1; RFC 3966).
 * Other schemes fail with `SIP_ERR_UNSUPPORTED_URI_SCHEME` (a UAS answers 416).
 */
export function parseUri(text: string): Result<SipUri> {
  // all fields present from the start: one object shape for every URI
  const uri: SipUri = {
    scheme: 'sip',
    user: undefined,
    password: undefined,
    host: '',
    port: undefined,
    params: NO_PARAMS,
    headers: NO_HEADERS,
  };
  const r = scanUri(text, 0, text.length, uri);
  return typeof r === 'number' ? ok(uri) : r;
}

/**
 * Checks text[start, end) against the URI grammar without building anything (the parser's
 * eager validation). Returns 0 (valid), 1 (valid, has ?headers) or the failure.
 */
export function validateUri(text: string, start = 0, end = text.length): number | UriFailure {
  return scanUri(text, start, end, undefined);
}

function scanUri(text: string, start: number, end: number, uri: SipUri | undefined): number | UriFailure {
  let colon = -1;
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) === C_COLON) {
      colon = i;
      break;
    }
  }
  if (colon <= start) return F_URI;
  let scheme: 'sip' | 'sips' | 'tel';
  const c0 = text.charCodeAt(start) | 0x20;
  const c1 = text.charCodeAt(start + 1) | 0x20;
  const c2 = text.charCodeAt(start + 2) | 0x20;
  const slen = colon - start;
  if (slen === 3 && c0 === 115 && c1 === 105 && c2 === 112) scheme = 'sip';
  else if (slen === 4 && c0 === 115 && c1 === 105 && c2 === 112 && (text.charCodeAt(start + 3) | 0x20) === 115) scheme = 'sips';
  else if (slen === 3 && c0 === 116 && c1 === 101 && c2 === 108) scheme = 'tel';
  else {
    const whole = text.slice(start, end);
    if (!/^[A-Za-z][A-Za-z0-9+.-]*$/.test(text.slice(start, colon)) || !cleanUriChars(whole)) return F_URI;
    return F_SCHEME;
  }
  if (uri !== undefined) uri.scheme = scheme;
  if (scheme === 'tel') {
    const rest = text.slice(colon + 1, end);
    if (!cleanUriChars(rest)) return F_URI;
    const semi = rest.indexOf(';');
    const number = semi === -1 ? rest : rest.slice(0, semi);
    if (!/^(?:\+[0-9().-]*[0-9][0-9().-]*|[0-9A-Fa-f*#().-]*[0-9A-Fa-f*#][0-9A-Fa-f*#().-]*)$/.test(number)) return F_TEL;
    if (semi !== -1 && !scanUriParamsOf(rest, semi + 1, rest.length, uri)) return F_PARAM;
    if (uri !== undefined) uri.user = number;
    return 0;
  }
  let pos = colon + 1;
  // one pass: forbidden characters, the '@' that ends userinfo (user/password cannot hold a raw
  // '@'), the first ':' (user:password) and whether any '%' escape needs checking
  let at = -1;
  let firstColon = -1;
  let percent = false;
  for (let i = pos; i < end; i++) {
    // Beyond latin1 (text decoded as UTF-8) is non-ASCII like 0x80-0xff: masking it would alias
    // U+0600 to NUL and U+0140 to '@', and a value the parser validated as bytes would not parse.
    const c = text.charCodeAt(i);
    const k = c < 256 ? URI_CLASS[c]! : 0;
    if (k === 0) continue;
    if (k === 1) return F_URI;
    if (k === 2) {
      if (at === -1) at = i;
    } else if (k === 3) {
      if (firstColon === -1) firstColon = i;
    } else percent = true;
  }
  if (at !== -1) {
    const userEnd = firstColon !== -1 && firstColon < at ? firstColon : at;
    if (userEnd === pos || (percent && !validEscapes(text, pos, userEnd))) return F_USER;
    if (userEnd !== at && percent && !validEscapes(text, userEnd + 1, at)) return F_PASSWORD;
    if (uri !== undefined) {
      uri.user = text.slice(pos, userEnd);
      if (userEnd !== at) uri.password = text.slice(userEnd + 1, at);
    }
    pos = at + 1;
  }
  // hostport
  let hostEnd: number;
  if (text.charCodeAt(pos) === C_LBRACK) {
    const rb = text.indexOf(']', pos);
    if (rb === -1 || rb >= end) return F_HOST;
    hostEnd = rb + 1;
    if (!isValidHostRange(text, pos, hostEnd)) return F_HOST;
  } else {
    hostEnd = scanHostname(text, pos, end);
    if (hostEnd === -1) return F_HOST;
  }
  if (uri !== undefined) uri.host = text.slice(pos, hostEnd);
  pos = hostEnd;
  if (pos < end && text.charCodeAt(pos) === C_COLON) {
    let pEnd = pos + 1;
    let port = 0;
    while (pEnd < end) {
      const c = text.charCodeAt(pEnd);
      if (c < 48 || c > 57) break;
      port = port * 10 + (c - 48);
      if (port > 65535) return F_PORT;
      pEnd++;
    }
    if (pEnd === pos + 1) return F_PORT;
    if (uri !== undefined) uri.port = port;
    pos = pEnd;
  }
  if (pos < end && text.charCodeAt(pos) === C_SEMI) {
    let pEnd = pos + 1;
    while (pEnd < end && text.charCodeAt(pEnd) !== C_QMARK) pEnd++;
    if (!scanUriParamsOf(text, pos + 1, pEnd, uri)) return F_PARAM;
    pos = pEnd;
  }
  let hasHeaders = 0;
  if (pos < end && text.charCodeAt(pos) === C_QMARK) {
    const headers = uri !== undefined ? new Map<string, string>() : undefined;
    if (!scanUriHeaders(text, pos + 1, end, headers)) return F_HEADER;
    if (uri !== undefined) uri.headers = headers!;
    hasHeaders = pos + 1 < end ? 1 : 0;
    pos = end;
  }
  if (pos !== end) return F_URI;
  return hasHeaders;
}

function validEscapes(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (s.charCodeAt(i) === 37 /* % */) {
      if (i + 2 >= end || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false;
      i += 2;
    }
  }
  return true;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

export function formatUriParams(params: ReadonlyMap<string, string | null>): string {
  let out = '';
  for (const [k, v] of params) out += v === null ? `;${k}` : `;${k}=${v}`;
  return out;
}

/** Renders a URI; parsing the output gives an equal URI. */
export function formatUri(uri: SipUri): string {
  if (uri.scheme === 'tel') return `tel:${uri.user ?? ''}${formatUriParams(uri.params)}`;
  let out = uri.scheme + ':';
  if (uri.user !== undefined) {
    out += uri.user;
    if (uri.password !== undefined) out += ':' + uri.password;
    out += '@';
  }
  out += uri.host;
  if (uri.port !== undefined) out += ':' + uri.port;
  out += formatUriParams(uri.params);
  if (uri.headers.size > 0) {
    let sep = '?';
    for (const [k, v] of uri.headers) {
      out += `${sep}${k}=${v}`;
      sep = '&';
    }
  }
  return out;
}

/** %-decodes (leaving malformed escapes as they are). */
export function unescapeUri(s: string): string {
  if (s.indexOf('%') === -1) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

const SPECIAL_URI_PARAMS = ['user', 'ttl', 'method', 'maddr'] as const;

/**
 * URI equality per RFC 3261 §19.1.4: scheme, user and password compared case-sensitively after
 * unescaping, host case-insensitively, port must be present/absent on both, `transport`/`user`/
 * `ttl`/`method`/`maddr` must match when present in either, other parameters compared only
 * when present in both, headers compared as a set (all must match).
 */
export function urisEqual(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if (a.scheme === 'tel') {
    // RFC 3966 §4: numbers compared ignoring visual separators; params compared as in SIP
    const na = (a.user ?? '').replace(/[-.()]/g, '').toLowerCase();
    const nb = (b.user ?? '').replace(/[-.()]/g, '').toLowerCase();
    if (na !== nb) return false;
    return paramsEqual(a.params, b.params, true);
  }
  if ((a.user === undefined) !== (b.user === undefined)) return false;
  if (a.user !== undefined && unescapeUri(a.user) !== unescapeUri(b.user!)) return false;
  if ((a.password === undefined) !== (b.password === undefined)) return false;
  if (a.password !== undefined && unescapeUri(a.password) !== unescapeUri(b.password!)) return false;
  if (unescapeUri(a.host).toLowerCase() !== unescapeUri(b.host).toLowerCase()) return false;
  if (a.port !== b.port) return false;
  if (!paramsEqual(a.params, b.params, false)) return false;
  if (a.headers.size !== b.headers.size) return false;
  for (const [k, v] of a.headers) {
    const w = b.headers.get(k);
    if (w === undefined || unescapeUri(w) !== unescapeUri(v)) return false;
  }
  return true;
}

function paramsEqual(a: ReadonlyMap<string, string | null>, b: ReadonlyMap<string, string | null>, allMustMatch: boolean): boolean {
  const norm = (v: string | null | undefined) => (v === null || v === undefined ? v : unescapeUri(v).toLowerCase());
  if (!allMustMatch) {
    if (norm(a.get('transport')) !== norm(b.get('transport'))) return false;
    for (const p of SPECIAL_URI_PARAMS) {
      if (a.has(p) !== b.has(p)) return false;
      if (norm(a.get(p)) !== norm(b.get(p))) return false;
    }
    for (const [k, v] of a) {
      if (b.has(k) && norm(v) !== norm(b.get(k))) return false;
    }
    return true;
  }
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    if (!b.has(k) || norm(v) !== norm(b.get(k))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec

function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

const TOKEN_CHARS = (() => {
  const t = new Uint8Array(128);
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    if (/[A-Za-z0-9\-.!%*_+`'~]/.test(ch)) t[c] = 1;
  }
  return t;
})();

/** gen-value characters outside quotes: token / host (with IPv6 brackets and colons). */
const PARAM_VALUE_CHARS = (() => {
  const t = TOKEN_CHARS.slice();
  t[C_LBRACK] = 1;
  t[C_RBRACK] = 1;
  t[C_COLON] = 1;
  return t;
})();

/** RFC 3261 token characters. */
export function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN_CHARS[c] === 1;
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

/**
 * Parses header parameters `*( SEMI generic-param )` starting at `pos` (which must point at ';'
 * or the end, after optional whitespace). gen-value = token / host / quoted-string.
 * Returns the end position, or -1 when malformed. `spans`, when given, receives four numbers
 * per parameter: name start, name end, value start (-1 when there is no value), value end.
 */
export function parseHeaderParams(
  text: string,
  pos: number,
  params: Map<string, string | null> | undefined,
  stopAtComma = false,
  viaRules = false,
  end = text.length,
  spans?: number[],
): number {
  const n = end;
  for (;;) {
    while (pos < n && isWs(text.charCodeAt(pos))) pos++;
    if (pos >= n) return pos;
    const c = text.charCodeAt(pos);
    if (stopAtComma && c === 44) return pos;
    if (c !== C_SEMI) return -1;
    pos++;
    while (pos < n && isWs(text.charCodeAt(pos))) pos++;
    const ns = pos;
    let upper = false;
    for (; pos < n; pos++) {
      const ch = text.charCodeAt(pos);
      if (!isTokenChar(ch)) break;
      if (ch >= 65 && ch <= 90) upper = true;
    }
    if (pos === ns) return -1;
    const nameEnd = pos;
    let p2 = pos;
    while (p2 < n && isWs(text.charCodeAt(p2))) p2++;
    let vs = -1;
    if (p2 < n && text.charCodeAt(p2) === C_EQ) {
      p2++;
      while (p2 < n && isWs(text.charCodeAt(p2))) p2++;
      vs = p2;
      if (p2 < n && text.charCodeAt(p2) === 34) {
        const qe = quotedStringEnd(text, p2, n);
        if (qe === -1) return -1;
        p2 = qe;
      } else {
        while (p2 < n) {
          const ch = text.charCodeAt(p2);
          // token / host (IPv6 reference)
          if (ch < 128 && PARAM_VALUE_CHARS[ch] === 1) p2++;
          else break;
        }
        if (p2 === vs) return -1;
      }
      pos = p2;
    }
    if (viaRules && !viaParamOk(text, ns, nameEnd, vs, pos)) return -1;
    if (spans !== undefined) spans.push(ns, nameEnd, vs, pos);
    if (params !== undefined) {
      const name = upper ? text.slice(ns, nameEnd).toLowerCase() : text.slice(ns, nameEnd);
      if (!params.has(name)) params.set(name, vs === -1 ? null : text.slice(vs, pos));
    }
  }
}

/** text[start, end) equals `lower` ignoring ASCII case. */
function eqLower(text: string, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((text.charCodeAt(start + i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

function digitsUpTo(text: string, start: number, end: number, max: number): boolean {
  if (start >= end || end - start > 5) return false;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
    v = v * 10 + c - 48;
  }
  return v <= max;
}

/**
 * RFC 3261 §20.42 via-params: branch, received and maddr need a value; rport (RFC 3581) is a
 * port or empty; ttl is 0-255. `vs` is -1 when there is no value.
 */
function viaParamOk(text: string, ns: number, ne: number, vs: number, ve: number): boolean {
  switch (ne - ns) {
    case 6:
      return vs !== -1 || !eqLower(text, ns, ne, 'branch');
    case 8:
      return vs !== -1 || !eqLower(text, ns, ne, 'received');
    case 5:
      if (eqLower(text, ns, ne, 'maddr')) return vs !== -1;
      if (eqLower(text, ns, ne, 'rport')) return vs === -1 || digitsUpTo(text, vs, ve, 65535);
      return true;
    case 3:
      return !eqLower(text, ns, ne, 'ttl') || (vs !== -1 && digitsUpTo(text, vs, ve, 255));
    default:
      return true;
  }
}

/** Given `text[start] === '"'`, returns the index after the closing quote, or -1. */
export function quotedStringEnd(text: string, start: number, end = text.length): number {
  let i = start + 1;
  const n = end;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 92 /* \ */) {
      i += 2;
      continue;
    }
    if (c === 34) return i + 1;
    i++;
  }
  return -1;
}

/** Removes the quotes and backslash escapes of a quoted-string. */
export function unquote(q: string): string {
  if (q.length < 2 || q.charCodeAt(0) !== 34) return q;
  const inner = q.slice(1, -1);
  return inner.indexOf('\\') === -1 ? inner : inner.replace(/\\(.)/gs, '$1');
}

export function quote(s: string): string {
  return '"' + s.replace(/(["\\])/g, '\\$1') + '"';
}

/**
 * Parses one name-addr (`"Alice" <sip:a@x>;tag=1`) or addr-spec (`sip:a@x;tag=1`) with header
 * parameters. In the addr-spec form everything after the first ';' is a header parameter
 * (RFC 3261 §20.10).
 */
export function parseNameAddr(text: string): Result<NameAddr> {
  const r = parseNameAddrAt(text, 0, false);
  if (typeof r === 'string') return fail(URI_ERR, r);
  return ok(r.value);
}

/**
 * Parses a name-addr starting at `pos`; with `list` it stops at a top-level ',' and returns
 * the position. Returns an error string on failure.
 */
export function parseNameAddrAt(text: string, pos: number, list: boolean): { value: NameAddr; end: number } | string {
  const value: NameAddr = { displayName: undefined, uri: PENDING_URI, params: NO_PARAMS };
  const r = nameAddrAt(text, pos, list, value);
  return typeof r === 'string' ? r : { value, end: r };
}

/** Checks a name-addr / addr-spec (with header params) in text[start, end) without building it: undefined when valid. */
export function validateNameAddr(text: string, start = 0, end = text.length): string | undefined {
  const r = nameAddrAt(text, start, false, undefined, end);
  return typeof r === 'string' ? r : undefined;
}

const PENDING_URI: SipUri = Object.freeze({ scheme: 'sip', host: '', params: new Map(), headers: new Map() }) as SipUri;

/** Scans one name-addr at `pos`; fills `out` when given. Returns the end position or an error. */
function nameAddrAt(text: string, pos: number, list: boolean, out: NameAddr | undefined, end = text.length): number | string {
  const n = end;
  while (pos < n && isWs(text.charCodeAt(pos))) pos++;
  if (pos >= n) return 'Empty address';
  let c = text.charCodeAt(pos);
  if (c === 34) {
    const qe = quotedStringEnd(text, pos, n);
    if (qe === -1) return 'Unterminated quoted string';
    if (out !== undefined) out.displayName = unquote(text.slice(pos, qe));
    pos = qe;
    while (pos < n && isWs(text.charCodeAt(pos))) pos++;
    if (pos >= n || text.charCodeAt(pos) !== 60) return 'Missing <';
  }
  c = text.charCodeAt(pos);
  let lt = -1;
  if (c === 60) lt = pos;
  else {
    // display-name as tokens, or an addr-spec: look for '<' before any ';' ',' or '"'
    let i = pos;
    while (i < n) {
      const ch = text.charCodeAt(i);
      if (ch === 60) {
        lt = i;
        break;
      }
      if (ch === C_SEMI || ch === 44 || ch === 34) break;
      i++;
    }
    if (lt !== -1 && lt > pos) {
      // display-name = *(token LWS): tokens separated by whitespace, collapsed to one space
      let dnEnd = lt;
      while (dnEnd > pos && isWs(text.charCodeAt(dnEnd - 1))) dnEnd--;
      let collapse = false;
      for (let j = pos; j < dnEnd; j++) {
        const ch = text.charCodeAt(j);
        if (isWs(ch)) {
          if (ch !== 32 || isWs(text.charCodeAt(j + 1))) collapse = true;
        } else if (!isTokenChar(ch)) return 'Bad display name';
      }
      if (dnEnd > pos && out !== undefined) {
        const dn = text.slice(pos, dnEnd);
        out.displayName = collapse ? dn.replace(/[ \t\r\n]+/g, ' ') : dn;
      }
    }
  }
  let uriStart: number;
  let uriEnd: number;
  let after: number;
  if (lt !== -1) {
    const gt = text.indexOf('>', lt + 1);
    if (gt === -1 || gt >= n) return 'Missing >';
    uriStart = lt + 1;
    uriEnd = gt;
    after = gt + 1;
  } else {
    // addr-spec: the URI runs to the first ';' (params belong to the header), ',' in lists, or whitespace
    let i = pos;
    while (i < n) {
      const ch = text.charCodeAt(i);
      if (ch === C_SEMI || (list && ch === 44) || isWs(ch)) break;
      // §20.10: a URI containing ',', '?' or ';' must be enclosed in <> (';' ends it here)
      if (ch === C_QMARK) return 'Bad address: URI with ? not enclosed in <>';
      i++;
    }
    uriStart = pos;
    uriEnd = i;
    after = i;
  }
  if (out !== undefined) {
    const uri = parseUri(text.slice(uriStart, uriEnd));
    if (!uri.ok) return uri.reason;
    out.uri = uri.value;
  } else {
    const v = validateUri(text, uriStart, uriEnd);
    if (typeof v !== 'number') return v.reason;
  }
  // A map only when there are parameters (else the shared empty one stays)
  let params: Map<string, string | null> | undefined;
  if (out !== undefined) {
    let k = after;
    while (k < n && isWs(text.charCodeAt(k))) k++;
    if (k < n && text.charCodeAt(k) === C_SEMI) out.params = params = new Map();
  }
  const pe = parseHeaderParams(text, after, params, list, false, n);
  if (pe === -1) return 'Bad header parameter';
  return pe;
}

/** Renders name-addr form (always with `<>`), display name quoted when present. */
export function formatNameAddr(na: NameAddr): string {
  let out = na.displayName !== undefined && na.displayName.length > 0 ? quote(na.displayName) + ' ' : '';
  out += '<' + formatUri(na.uri) + '>';
  out += formatUriParams(na.params);
  return out;
}
