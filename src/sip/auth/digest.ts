/**
 * HTTP Digest primitives for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760).
 *
 * Pure functions only: parsing and formatting of `WWW-Authenticate` / `Proxy-Authenticate`
 * challenges and `Authorization` / `Proxy-Authorization` credentials, the H(A1), H(A2) and
 * response computations for MD5 and SHA-256 (and their `-sess` variants), and a client helper
 * `buildAuthorization`. Server-side policy (nonces, users, replay) lives in digest-server.ts.
 */
import { createHash } from 'node:crypto';
import { fail, ok, type Result } from '../../util/result.js';
import { md5Hex } from '../../util/md5.js';
import { quote, quotedStringEnd, unquote } from '../uri/sip-uri.js';

/** Algorithms accepted by RFC 8760 for SIP. */
export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';

export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['MD5', 'MD5-sess', 'SHA-256', 'SHA-256-sess'];

/** A parsed `WWW-Authenticate` / `Proxy-Authenticate` value with scheme Digest. */
export interface DigestChallenge {
  realm: string;
  nonce: string;
  /** Absent means MD5 (RFC 2617 §3.2.1). */
  algorithm?: string;
  /** qop options offered, e.g. ['auth'] or ['auth', 'auth-int']. */
  qop?: string[];
  opaque?: string;
  stale?: boolean;
  domain?: string;
  /** Every parameter, lower-case names, unquoted values. */
  params: Map<string, string>;
}

/** A parsed `Authorization` / `Proxy-Authorization` value with scheme Digest. */
export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm?: string;
  cnonce?: string;
  /** Nonce count as sent: 8 hex digits. */
  nc?: string;
  qop?: string;
  opaque?: string;
  /** Every parameter, lower-case names, unquoted values. */
  params: Map<string, string>;
}

export interface DigestUserSecret {
  username: string;
  password: string;
}

/** Normalises an `algorithm=` value; undefined means MD5. Returns undefined for unsupported ones. */
export function normaliseAlgorithm(value: string | undefined): DigestAlgorithm | undefined {
  if (value === undefined || value === '') return 'MD5';
  const upper = value.toUpperCase();
  for (const a of DIGEST_ALGORITHMS) if (a.toUpperCase() === upper) return a;
  return undefined;
}

function baseHash(alg: DigestAlgorithm): 'md5' | 'sha256' {
  return alg.startsWith('SHA-256') ? 'sha256' : 'md5';
}

/** H(data) as lower-case hex for the algorithm. */
export function digestHash(alg: DigestAlgorithm, data: string): string {
  const base = baseHash(alg);
  // MD5 in JavaScript: no native hash object per request (util/md5.ts says why)
  return base === 'md5' ? md5Hex(data) : createHash(base).update(data, 'utf8').digest('hex');
}

/**
 * H(A1) for the plain algorithm: H(username ":" realm ":" password) (RFC 7616 §3.4.2).
 * This is the "HA1" stored in user files in place of a password.
 */
export function computeHa1(alg: DigestAlgorithm, username: string, realm: string, password: string): string {
  return digestHash(alg, `${username}:${realm}:${password}`);
}

/** For `-sess` algorithms: H(HA1 ":" nonce ":" cnonce); otherwise HA1 unchanged. */
export function sessionHa1(alg: DigestAlgorithm, ha1: string, nonce: string, cnonce: string | undefined): string {
  if (!alg.endsWith('-sess')) return ha1;
  return digestHash(alg, `${ha1}:${nonce}:${cnonce ?? ''}`);
}

/** H(A2) = H(method ":" digest-uri) for qop=auth or no qop (RFC 7616 §3.4.3). */
export function computeHa2(alg: DigestAlgorithm, method: string, uri: string): string {
  return digestHash(alg, `${method}:${uri}`);
}

export interface ResponseInput {
  algorithm: DigestAlgorithm;
  /** H(A1) of the plain algorithm (the `-sess` step is applied here). */
  ha1: string;
  nonce: string;
  method: string;
  uri: string;
  qop?: string;
  nc?: string;
  cnonce?: string;
}

/**
 * request-digest (RFC 7616 §3.4.1):
 * with qop: KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" HA2); without (RFC 2069 compatibility):
 * KD(HA1, nonce ":" HA2), where KD(secret, data) = H(secret ":" data).
 */
export function computeResponse(input: ResponseInput): string {
  const ha1 = sessionHa1(input.algorithm, input.ha1, input.nonce, input.cnonce);
  const ha2 = computeHa2(input.algorithm, input.method, input.uri);
  if (input.qop) {
    return digestHash(input.algorithm, `${ha1}:${input.nonce}:${input.nc ?? ''}:${input.cnonce ?? ''}:${input.qop}:${ha2}`);
  }
  return digestHash(input.algorithm, `${ha1}:${input.nonce}:${ha2}`);
}

/**
 * Constant-time comparison of two hex/ASCII strings; different lengths compare unequal. Every
 * character of `a` is compared whatever differs (no early exit, no branch on the data), in
 * JavaScript: three native calls (two Buffer.from and timingSafeEqual) cost more than the loop.
 */
export function safeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const m = b.length === 0 ? 1 : b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ (b.charCodeAt(i % m) | 0);
  return diff === 0;
}

const SP = 32;
const HTAB = 9;
const CR = 13;
const LF = 10;
const COMMA = 44;
const EQUALS = 61;
const DQUOTE = 34;

/**
 * Parses `Digest k=v, k="v", ...` (RFC 7616 §3.3 / §3.4; RFC 3261 §25.1 auth-param).
 * Names are lower-cased; quoted values are unescaped (`\"` -> `"`).
 */
export function parseAuthParams(value: string): Result<{ scheme: string; params: Map<string, string> }> {
  // The bounds of value.trim(), and the scheme up to the first white space (as /\s/ finds it),
  // without the copies.
  let start = 0;
  let n = value.length;
  while (start < n && isJsSpace(value.charCodeAt(start))) start++;
  while (n > start && isJsSpace(value.charCodeAt(n - 1))) n--;
  let i = start;
  while (i < n && !isJsSpace(value.charCodeAt(i))) i++;
  if (i === start || i === n) return fail('SIP_ERR_BAD_AUTH', 'missing auth scheme or parameters');
  const scheme = value.slice(start, i);
  const text = value;
  const params = new Map<string, string>();
  while (i < n) {
    let c = text.charCodeAt(i);
    while (c === SP || c === HTAB || c === COMMA || c === CR || c === LF) c = text.charCodeAt(++i);
    if (i >= n) break;
    const nameStart = i;
    let upper = false;
    while (i < n && c !== EQUALS && c !== COMMA && c !== SP && c !== HTAB) {
      if ((c >= 65 && c <= 90) || c > 127) upper = true;
      c = text.charCodeAt(++i);
    }
    const name = upper ? text.slice(nameStart, i).toLowerCase() : text.slice(nameStart, i);
    if (!name) return fail('SIP_ERR_BAD_AUTH', 'empty auth-param name');
    while (i < n && (c === SP || c === HTAB)) c = text.charCodeAt(++i);
    if (i >= n || c !== EQUALS) return fail('SIP_ERR_BAD_AUTH', `auth-param ${name} has no value`);
    c = text.charCodeAt(++i);
    while (i < n && (c === SP || c === HTAB)) c = text.charCodeAt(++i);
    let val: string;
    if (i < n && c === DQUOTE) {
      const qe = quotedStringEnd(text, i, n);
      if (qe === -1) return fail('SIP_ERR_BAD_AUTH', `unterminated quoted value for ${name}`);
      val = unquote(text.slice(i, qe));
      i = qe;
    } else {
      const vStart = i;
      while (i < n && c !== COMMA && c !== SP && c !== HTAB) c = text.charCodeAt(++i);
      val = text.slice(vStart, i);
    }
    if (params.size >= 64) return fail('SIP_ERR_BAD_AUTH', 'too many auth-params');
    params.set(name, val);
  }
  return ok({ scheme, params });
}

/** What /\s/ and String#trim count as white space. */
function isJsSpace(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/** Parses a Digest challenge (`WWW-Authenticate` / `Proxy-Authenticate`). */
export function parseChallenge(value: string): Result<DigestChallenge> {
  const r = parseAuthParams(value);
  if (!r.ok) return r;
  if (r.value.scheme.toLowerCase() !== 'digest') return fail('SIP_ERR_BAD_AUTH', `unsupported auth scheme ${r.value.scheme}`);
  const p = r.value.params;
  const realm = p.get('realm');
  const nonce = p.get('nonce');
  if (realm === undefined) return fail('SIP_ERR_BAD_AUTH', 'challenge without realm');
  if (nonce === undefined) return fail('SIP_ERR_BAD_AUTH', 'challenge without nonce');
  const c: DigestChallenge = { realm, nonce, params: p };
  const alg = p.get('algorithm');
  if (alg !== undefined) c.algorithm = alg;
  const qop = p.get('qop');
  if (qop !== undefined) c.qop = qop.split(',').map((q) => q.trim()).filter(Boolean);
  const opaque = p.get('opaque');
  if (opaque !== undefined) c.opaque = opaque;
  const stale = p.get('stale');
  if (stale !== undefined) c.stale = stale.toLowerCase() === 'true';
  const domain = p.get('domain');
  if (domain !== undefined) c.domain = domain;
  return ok(c);
}

/** Formats a Digest challenge; qop, opaque, algorithm and stale are emitted when set. */
export function formatChallenge(c: Omit<DigestChallenge, 'params'> & { params?: Map<string, string> }): string {
  const parts = [`realm=${quote(c.realm)}`];
  if (c.domain !== undefined) parts.push(`domain=${quote(c.domain)}`);
  parts.push(`nonce=${quote(c.nonce)}`);
  if (c.opaque !== undefined) parts.push(`opaque=${quote(c.opaque)}`);
  if (c.stale) parts.push('stale=true');
  if (c.algorithm !== undefined) parts.push(`algorithm=${c.algorithm}`);
  if (c.qop && c.qop.length) parts.push(`qop=${quote(c.qop.join(','))}`);
  return `Digest ${parts.join(', ')}`;
}

const REQUIRED_CREDENTIALS = ['username', 'realm', 'nonce', 'uri', 'response'] as const;

/** Parses Digest credentials (`Authorization` / `Proxy-Authorization`). */
export function parseCredentials(value: string): Result<DigestCredentials> {
  const r = parseAuthParams(value);
  if (!r.ok) return r;
  if (r.value.scheme.toLowerCase() !== 'digest') return fail('SIP_ERR_BAD_AUTH', `unsupported auth scheme ${r.value.scheme}`);
  const p = r.value.params;
  for (const k of REQUIRED_CREDENTIALS) {
    if (p.get(k) === undefined) return fail('SIP_ERR_BAD_AUTH', `credentials without ${k}`);
  }
  // Every field written in one literal, absent ones undefined: one object shape whatever the
  // phone sends (assigning them by a computed key went through the megamorphic store path).
  return ok({
    username: p.get('username')!,
    realm: p.get('realm')!,
    nonce: p.get('nonce')!,
    uri: p.get('uri')!,
    response: p.get('response')!,
    algorithm: p.get('algorithm'),
    cnonce: p.get('cnonce'),
    nc: p.get('nc'),
    qop: p.get('qop'),
    opaque: p.get('opaque'),
    params: p,
  });
}

/** Formats Digest credentials. nc, qop and algorithm are tokens (unquoted) per RFC 7616 §3.4. */
export function formatCredentials(c: Omit<DigestCredentials, 'params'>): string {
  const parts = [
    `username=${quote(c.username)}`,
    `realm=${quote(c.realm)}`,
    `nonce=${quote(c.nonce)}`,
    `uri=${quote(c.uri)}`,
    `response=${quote(c.response)}`,
  ];
  if (c.algorithm !== undefined) parts.push(`algorithm=${c.algorithm}`);
  if (c.cnonce !== undefined) parts.push(`cnonce=${quote(c.cnonce)}`);
  if (c.opaque !== undefined) parts.push(`opaque=${quote(c.opaque)}`);
  if (c.qop !== undefined) parts.push(`qop=${c.qop}`);
  if (c.nc !== undefined) parts.push(`nc=${c.nc}`);
  return `Digest ${parts.join(', ')}`;
}

/** nc as 8 lower-case hex digits (RFC 7616 §3.4). */
export function formatNonceCount(nc: number): string {
  return (nc >>> 0).toString(16).padStart(8, '0');
}

/**
 * Client helper: answers a challenge. Returns the header value for `Authorization` (after a
 * 401) or `Proxy-Authorization` (after a 407). Picks qop=auth when offered; without qop the
 * RFC 2069 form is produced. `challenge` may be the parsed value or the raw header text.
 */
export function buildAuthorization(
  challenge: DigestChallenge | string,
  creds: DigestUserSecret,
  method: string,
  uri: string,
  nc: number | string = 1,
  cnonce?: string,
): Result<string> {
  let ch: DigestChallenge;
  if (typeof challenge === 'string') {
    const r = parseChallenge(challenge);
    if (!r.ok) return r;
    ch = r.value;
  } else {
    ch = challenge;
  }
  const alg = normaliseAlgorithm(ch.algorithm);
  if (!alg) return fail('SIP_ERR_BAD_AUTH', `unsupported digest algorithm ${ch.algorithm ?? ''}`);
  const useQop = ch.qop?.some((q) => q.toLowerCase() === 'auth') ? 'auth' : undefined;
  if (ch.qop && ch.qop.length && !useQop) return fail('SIP_ERR_BAD_AUTH', `unsupported qop ${ch.qop.join(',')}`);
  const ncText = typeof nc === 'number' ? formatNonceCount(nc) : nc;
  const cn = cnonce ?? (useQop || alg.endsWith('-sess') ? randomCnonce() : undefined);
  const ha1 = computeHa1(alg, creds.username, ch.realm, creds.password);
  const response = computeResponse({
    algorithm: alg,
    ha1,
    nonce: ch.nonce,
    method,
    uri,
    ...(useQop ? { qop: useQop, nc: ncText } : {}),
    ...(cn !== undefined ? { cnonce: cn } : {}),
  });
  const out: Omit<DigestCredentials, 'params'> = {
    username: creds.username,
    realm: ch.realm,
    nonce: ch.nonce,
    uri,
    response,
    algorithm: ch.algorithm ?? 'MD5',
  };
  if (ch.opaque !== undefined) out.opaque = ch.opaque;
  if (useQop) {
    out.qop = useQop;
    out.nc = ncText;
  }
  if (cn !== undefined) out.cnonce = cn;
  return ok(formatCredentials(out));
}

function randomCnonce(): string {
  return createHash('md5').update(`${Math.random()}:${process.hrtime.bigint()}`).digest('hex').slice(0, 16);
}
