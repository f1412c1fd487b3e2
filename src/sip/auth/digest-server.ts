/**
 * Server side of SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).
 *
 * Nonces are stateless: `base64url(ts[6] | issuer[4] | count[4] | HMAC-SHA256(secret, ts|issuer|count|realm|source)[16])`,
 * so any node that shares the secret verifies a nonce another node issued. The MAC binds the
 * nonce to the IP address it was sent to (when the caller names one): a nonce fetched from one
 * address is worthless in a request claiming another, so an off-path attacker who spoofs a
 * source address cannot produce a wrong-password failure "from" it (failures that may block a
 * source are only those made with a nonce issued to that source). An expired but genuine nonce
 * gets `stale=true` (RFC 7616 §3.3: the client retries without asking the user).
 *
 * `qop=auth` is required by default. Nonce-count replay protection keeps, per nonce, the highest
 * `nc` seen (a bounded table for this authenticator's own nonces, a bounded map for others';
 * RFC 7616 §3.4: "the server ... MUST reject a request with a repeated nc"); where credentials
 * without qop are allowed, each nonce is good for one request. The `uri` parameter must name the
 * Request-URI (RFC 7616 §3.4.6, "the server MUST assure that the resource designated by the uri
 * parameter is the same as the resource specified in the Request-Line"). Responses and nonce
 * MACs are compared in constant time.
 */
import { GenerationalMap } from '../../util/generational-map.js';
import { createHmac, randomBytes } from 'node:crypto';
import { HmacSha256 } from '../../util/hmac-sha256.js';
import { ownString } from '../../util/string-calls.js';
import { parseUri } from '../uri/sip-uri.js';
import {
  computeHa1,
  computeResponse,
  formatChallenge,
  normaliseAlgorithm,
  parseCredentials,
  safeEqual,
  type DigestAlgorithm,
  type DigestCredentials,
} from './digest.js';

/** What the server knows about a user: a password or precomputed HA1 values. */
export interface DigestUserRecord {
  username: string;
  /** Plain password; HA1 is derived from it for any algorithm. */
  password?: string;
  /** H(username:realm:password) with MD5. */
  ha1Md5?: string;
  /** H(username:realm:password) with SHA-256. */
  ha1Sha256?: string;
}

/** Source of users. Lookups are synchronous: the directory is loaded or cached in memory. */
export interface UserDirectory {
  lookup(username: string): DigestUserRecord | undefined;
}

export interface DigestAuthenticatorOptions {
  realm: string;
  /** HMAC key shared by every node of a cluster. */
  secret: string | Buffer;
  /**
   * Nonce lifetime; an older nonce gets `stale=true`.
   * @default 300
   */
  nonceLifetimeSec?: number;
  /**
   * Algorithms offered, in preference order (RFC 8760 §2.4: one challenge per algorithm, most
   * preferred first).
   * @default ['SHA-256', 'MD5']
   */
  algorithms?: DigestAlgorithm[];
  users: UserDirectory;
  /** Clock in ms; tests inject a fake one. */
  now?: () => number;
  /**
   * Max nonces whose nonce-count is remembered (oldest forgotten first): of the nonces this
   * authenticator issued, the last this many (rounded up to a power of two); of nonces issued
   * elsewhere (a peer with the same secret, a previous run), the last this many used.
   * @default 200000
   */
  maxTrackedNonces?: number;
  /**
   * Accept credentials without `qop` (RFC 2069 clients). Each nonce then serves one request only
   * (a reused one is answered as stale), since without a nonce-count nothing else tells a replay.
   * @default false
   */
  allowNoQop?: boolean;
}

/** What the request tells about itself, checked against the credentials. */
export interface VerifyContext {
  /** Request-URI as received; the credentials' `uri` must name it. */
  requestUri?: string;
  /** Source IP address; must be the one the nonce was issued to (see `challenges`). */
  source?: string;
}

export type VerifyFailure =
  | 'missing' // no credentials for our realm: send a challenge
  | 'malformed'
  | 'stale' // genuine nonce that expired: challenge with stale=true
  | 'bad-nonce' // nonce not issued by us
  | 'unknown-user'
  | 'bad-response'
  | 'replay' // nonce-count not increasing
  | 'bad-algorithm'
  | 'qop-required' // no qop while qop is required: challenge again
  | 'uri-mismatch'; // `uri` does not name the Request-URI: 400 (RFC 7616 §3.4.6)

/**
 * Failures that prove a wrong password (or user name) was tried with a nonce we issued to this
 * very source: the only ones that may count toward blocking it. Stale, unknown or replayed
 * nonces prove nothing about who sent the request.
 */
export function provesWrongCredentials(f: VerifyFailure): boolean {
  return f === 'bad-response' || f === 'unknown-user';
}

export type VerifyResult =
  | { ok: true; username: string; credentials: DigestCredentials }
  /** `sameCount`: a `replay` with the very nonce count last accepted (a retransmission of that request, or a copy of it). */
  | { ok: false; failure: VerifyFailure; username?: string; sameCount?: boolean };

/**
 * A nonce is 30 bytes, base64url: issue time in seconds (6), who issued it (4: random per
 * authenticator), its issue count there (4), and the first 16 bytes of an HMAC-SHA256 of those
 * 14 bytes, the realm and the address it was sent to. The MAC makes it unforgeable, the issuer
 * and count unique; nonces from before this layout carried 8 random bytes in their place, which
 * read as another issuer's.
 */
const NONCE_BYTES = 6 + 4 + 4 + 16;
/** Stands for the nonce in the challenge text rendered once (no base64url nonce contains it). */
const NONCE_MARK = '\u0000nonce\u0000';

/**
 * Nonce-counts of the nonces one authenticator issued, found by the issue count the nonce
 * carries: an array slot per count modulo the table's size, where a map keyed by the nonce's text
 * cost a hash of 40 characters and a probe of a table of up to 200,000 keys per authenticated
 * request, a copied string per nonce, and as many objects for the collector to trace (in
 * process, 33 -> 28 µs of JavaScript per registration with the map taken out). A slot holds the
 * count it belongs to: another nonce's count there means this nonce's was never recorded (or
 * forgotten by a newer one, as the oldest entries of the map were).
 */
class IssuedNonceCounts {
  readonly #count: Uint32Array;
  /** The nonce-count last accepted; -1 for an empty slot. */
  readonly #nc: Float64Array;
  readonly #mask: number;

  constructor(max: number) {
    let size = 16;
    while (size < max) size *= 2;
    this.#count = new Uint32Array(size);
    this.#nc = new Float64Array(size).fill(-1);
    this.#mask = size - 1;
  }

  get(count: number): number | undefined {
    const i = count & this.#mask;
    const nc = this.#nc[i]!;
    return nc >= 0 && this.#count[i] === count ? nc : undefined;
  }

  /** Records `nc` for the nonce issued as `count`; false (nothing recorded) when its slot holds a newer nonce's. */
  set(count: number, nc: number): boolean {
    const i = count & this.#mask;
    const held = this.#count[i]!;
    // Counts wrap at 2^32: "newer" is ahead by less than half of that.
    if (held !== count && this.#nc[i]! >= 0 && ((held - count) >>> 0) < 0x80000000) return false;
    this.#count[i] = count;
    this.#nc[i] = nc;
    return true;
  }
}

export class DigestAuthenticator {
  readonly realm: string;
  readonly nonceLifetimeSec: number;
  readonly algorithms: DigestAlgorithm[];
  #secret: Buffer;
  /** MACs of nonces, keyed with the secret. */
  #nonceMac: HmacSha256;
  #users: UserDirectory;
  #now: () => number;
  /** Nonce-counts of nonces issued elsewhere (and of own ones a newer nonce displaced), by nonce text. */
  #ncSeen: GenerationalMap<string, number>;
  readonly #issuedCounts: IssuedNonceCounts;
  /** This authenticator's mark in its nonces, and the count of the next one. */
  readonly #issuer: number;
  #nextCount: number;
  /** The nonce being issued or checked, as bytes (one at a time: JavaScript runs each to its end). */
  readonly #nonceBytes = Buffer.alloc(NONCE_BYTES + 3);
  /** What `#checkNonce` read off the nonce it passed: issued here, and with which count. */
  #checkedOwn = false;
  #checkedCount = 0;
  #opaque: string;
  /** HA1 of password users, per user record. */
  #ha1Cache = new WeakMap<DigestUserRecord, { username: string; password: string; md5?: string; sha256?: string }>();
  #allowNoQop: boolean;
  /** Challenge text before and after the nonce: [not stale, stale] x algorithm (see `challenges`). */
  #challengeText: [string, string][][] | undefined;

  constructor(opts: DigestAuthenticatorOptions) {
    this.realm = opts.realm;
    this.nonceLifetimeSec = opts.nonceLifetimeSec ?? 300;
    this.algorithms = opts.algorithms?.length ? opts.algorithms : ['SHA-256', 'MD5'];
    this.#secret = typeof opts.secret === 'string' ? Buffer.from(opts.secret, 'utf8') : opts.secret;
    this.#nonceMac = new HmacSha256(this.#secret);
    this.#users = opts.users;
    this.#now = opts.now ?? Date.now;
    this.#ncSeen = new GenerationalMap(opts.maxTrackedNonces ?? 200_000);
    this.#issuedCounts = new IssuedNonceCounts(opts.maxTrackedNonces ?? 200_000);
    const seed = randomBytes(8);
    this.#issuer = seed.readUInt32BE(0);
    this.#nextCount = seed.readUInt32BE(4);
    this.#allowNoQop = opts.allowNoQop ?? false;
    this.#opaque = createHmac('sha256', this.#secret).update(`opaque:${this.realm}`).digest('base64url').slice(0, 22);
  }

  /** Issues a fresh nonce, bound to `source` (IP address) when given. */
  newNonce(source = ''): string {
    const buf = this.#nonceBytes;
    buf.writeUIntBE(Math.floor(this.#now() / 1000), 0, 6);
    buf.writeUInt32BE(this.#issuer, 6);
    buf.writeUInt32BE(this.#nextCount, 10);
    this.#nextCount = (this.#nextCount + 1) >>> 0;
    this.#mac(buf, source).copy(buf, 14, 0, 16);
    return buf.toString('base64url', 0, NONCE_BYTES);
  }

  /**
   * Header values for `WWW-Authenticate` (401) or `Proxy-Authenticate` (407): one per offered
   * algorithm, all with qop="auth" and opaque. `source`: the IP address the challenge goes to,
   * which the answer must come from.
   */
  challenges(stale = false, source?: string): string[] {
    const nonce = this.newNonce(source);
    // Only the nonce changes between challenges: the text around it is rendered once per
    // algorithm and staleness (a base64url nonce needs no escaping inside its quotes).
    const around = (this.#challengeText ??= [false, true].map((st) =>
      this.algorithms.map((algorithm) => formatChallenge({ realm: this.realm, nonce: NONCE_MARK, opaque: this.#opaque, stale: st, algorithm, qop: ['auth'] }).split(NONCE_MARK) as [string, string]),
    ))[stale ? 1 : 0]!;
    return around.map(([before, after]) => before + nonce + after);
  }

  /**
   * Checks `Authorization` / `Proxy-Authorization` values of a request. Only credentials for our
   * realm are considered (RFC 3261 §22.3: a proxy must not consume credentials for another realm).
   */
  verify(headerValues: string[], method: string, context: VerifyContext = {}): VerifyResult {
    let creds: DigestCredentials | undefined;
    let malformed = false;
    for (const v of headerValues) {
      const r = parseCredentials(v);
      if (!r.ok) {
        malformed = true;
        continue;
      }
      if (r.value.realm === this.realm) {
        creds = r.value;
        break;
      }
    }
    if (!creds) return { ok: false, failure: malformed ? 'malformed' : 'missing' };
    const username = creds.username;
    // RFC 7616 §3.3: opaque "SHOULD be returned by the client unchanged".
    if (creds.opaque !== undefined && creds.opaque !== this.#opaque) return { ok: false, failure: 'bad-nonce', username };
    const alg = normaliseAlgorithm(creds.algorithm);
    if (!alg || !this.algorithms.includes(alg)) return { ok: false, failure: 'bad-algorithm', username };
    const nonceState = this.#checkNonce(creds.nonce, context.source ?? '');
    if (nonceState === 'bad') return { ok: false, failure: 'bad-nonce', username };
    if (context.requestUri !== undefined && !sameResource(creds.uri, context.requestUri)) return { ok: false, failure: 'uri-mismatch', username };
    if (creds.qop === undefined && !this.#allowNoQop) return { ok: false, failure: 'qop-required', username };
    const user = this.#users.lookup(username);
    const ha1 = user ? this.#ha1For(user, alg) : undefined;
    if (!ha1) return { ok: false, failure: 'unknown-user', username };
    if (creds.qop !== undefined && creds.qop.toLowerCase() !== 'auth') return { ok: false, failure: 'malformed', username };
    if (creds.qop && (!creds.nc || !/^[0-9a-fA-F]{8}$/.test(creds.nc) || !creds.cnonce)) return { ok: false, failure: 'malformed', username };
    const expected = computeResponse({
      algorithm: alg,
      ha1,
      nonce: creds.nonce,
      method,
      uri: creds.uri,
      ...(creds.qop ? { qop: 'auth', nc: creds.nc! } : {}),
      ...(creds.cnonce !== undefined ? { cnonce: creds.cnonce } : {}),
    });
    if (!safeEqual(expected, creds.response.toLowerCase())) return { ok: false, failure: 'bad-response', username };
    // Only a correct response may be told that its nonce is stale (RFC 7616 §3.3).
    if (nonceState === 'stale') return { ok: false, failure: 'stale', username };
    // Without qop a nonce is good once: nc "infinity" marks it used, and a reuse is answered as
    // stale so that a legitimate client simply retries with the fresh nonce.
    const nc = creds.qop ? parseInt(creds.nc!, 16) : Number.MAX_SAFE_INTEGER;
    const own = this.#checkedOwn;
    const count = this.#checkedCount;
    let last = own ? this.#issuedCounts.get(count) : undefined;
    if (last === undefined && this.#ncSeen.size !== 0) last = this.#ncSeen.get(creds.nonce);
    if (last !== undefined && nc <= last) return creds.qop ? { ok: false, failure: 'replay', username, sameCount: nc === last } : { ok: false, failure: 'stale', username };
    // Its own copy: the nonce as parsed is a slice of the request's whole header block, which
    // the map would otherwise keep alive for as long as it tracks the nonce.
    if (!own || !this.#issuedCounts.set(count, nc)) this.#ncSeen.set(ownString(creds.nonce), nc);
    return { ok: true, username, credentials: creds };
  }

  /** The MAC of a nonce's first 14 bytes (`nonce`: its bytes, from the start). */
  #mac(nonce: Buffer, source: string): Buffer {
    const h = this.#nonceMac.start().add(nonce.subarray(0, 14)).add(this.realm);
    if (source) h.add('\0').add(source);
    return h.digest();
  }

  #checkNonce(nonce: string, source: string): 'ok' | 'stale' | 'bad' {
    if (nonce.length !== Math.ceil((NONCE_BYTES * 4) / 3)) return 'bad';
    // Decoded into the authenticator's own buffer (3 spare bytes: a longer decoding is refused).
    const buf = this.#nonceBytes;
    if (buf.write(nonce, 0, 'base64url') !== NONCE_BYTES) return 'bad';
    const mac = this.#mac(buf, source);
    // Constant time: every byte is compared whatever the first difference.
    let diff = 0;
    for (let i = 0; i < 16; i++) diff |= mac[i]! ^ buf[14 + i]!;
    if (diff !== 0) return 'bad';
    this.#checkedOwn = buf.readUInt32BE(6) === this.#issuer;
    this.#checkedCount = buf.readUInt32BE(10);
    const ts = buf.readUIntBE(0, 6);
    const age = this.#now() / 1000 - ts;
    if (age > this.nonceLifetimeSec || age < -30) return 'stale';
    return 'ok';
  }

  #ha1For(user: DigestUserRecord, alg: DigestAlgorithm): string | undefined {
    const sha = alg.startsWith('SHA-256');
    const stored = sha ? user.ha1Sha256 : user.ha1Md5;
    if (stored) return stored.toLowerCase();
    if (user.password === undefined) return undefined;
    // Cached per user record (the directory keeps its records; a reloaded one is a new record)
    // and checked against its name and password, which a caller may change in place.
    let cached = this.#ha1Cache.get(user);
    if (cached === undefined || cached.password !== user.password || cached.username !== user.username) {
      cached = { username: user.username, password: user.password };
      this.#ha1Cache.set(user, cached);
    }
    let ha1 = sha ? cached.sha256 : cached.md5;
    if (ha1 === undefined) {
      ha1 = computeHa1(sha ? 'SHA-256' : 'MD5', user.username, this.realm, user.password);
      if (sha) cached.sha256 = ha1;
      else cached.md5 = ha1;
    }
    return ha1;
  }
}

/**
 * Whether a digest `uri` names the same resource as the Request-URI: the same text, or SIP URIs
 * equal in scheme, user, host (case-insensitive) and port. Clients differ in how they print
 * parameters, so those are not compared.
 */
export function sameResource(digestUri: string, requestUri: string): boolean {
  if (digestUri === requestUri) return true;
  const a = parseUri(digestUri);
  const b = parseUri(requestUri);
  if (!a.ok || !b.ok) return false;
  const x = a.value;
  const y = b.value;
  if (x.scheme !== y.scheme || x.user !== y.user) return false;
  if (x.host.toLowerCase() !== y.host.toLowerCase()) return false;
  return (x.port ?? defaultPort(x.scheme)) === (y.port ?? defaultPort(y.scheme));
}

function defaultPort(scheme: string): number {
  return scheme === 'sips' ? 5061 : 5060;
}

export interface FailureTrackerOptions {
  /**
   * Failed authentications from one source within `windowSec` before it is blocked.
   * @default 10
   */
  maxFailures?: number;
  /** @default 60 */
  windowSec?: number;
  /**
   * How long a blocked source is ignored.
   * @default 300
   */
  blockSec?: number;
  /**
   * Sources tracked at once; past this the least recently seen one is forgotten (an attacker
   * with many addresses cannot grow the table, and no packet pays for a scan).
   * @default 100000
   */
  maxSources?: number;
  /** Sources never counted nor blocked (back-end PBXs, cluster peers, configured networks). */
  isTrusted?: (address: string) => boolean;
  /** Called once when a source becomes blocked. */
  onBlocked?: (address: string) => void;
  now?: () => number;
}

interface FailureEntry {
  windowStart: number;
  count: number;
  blockedUntil: number;
}

/**
 * Counts failed authentications per source (IP address) and blocks a source that keeps failing,
 * so a password-guessing scanner does not get unlimited tries. The caller counts only failures
 * that prove a wrong password with a nonce issued to that source (`provesWrongCredentials`), so
 * a spoofed flood blocks no one; trusted sources are never blocked. The table is an LRU map
 * (insertion order = last seen): every operation is O(1).
 */
export class AuthFailureTracker {
  #max: number;
  #windowMs: number;
  #blockMs: number;
  #maxSources: number;
  #isTrusted: (address: string) => boolean;
  #onBlocked: ((address: string) => void) | undefined;
  #now: () => number;
  #entries = new Map<string, FailureEntry>();

  constructor(opts: FailureTrackerOptions = {}) {
    this.#max = opts.maxFailures ?? 10;
    this.#windowMs = (opts.windowSec ?? 60) * 1000;
    this.#blockMs = (opts.blockSec ?? 300) * 1000;
    this.#maxSources = opts.maxSources ?? 100_000;
    this.#isTrusted = opts.isTrusted ?? (() => false);
    this.#onBlocked = opts.onBlocked;
    this.#now = opts.now ?? Date.now;
  }

  isBlocked(source: string): boolean {
    const e = this.#entries.get(source);
    return e !== undefined && e.blockedUntil > this.#now();
  }

  /** Records a failure; returns true when this failure blocks the source. */
  recordFailure(source: string): boolean {
    if (this.#isTrusted(source)) return false;
    const now = this.#now();
    let e = this.#entries.get(source);
    if (e) this.#entries.delete(source);
    else {
      e = { windowStart: now, count: 0, blockedUntil: 0 };
      if (this.#entries.size >= this.#maxSources) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
    }
    this.#entries.set(source, e);
    if (now - e.windowStart > this.#windowMs) {
      e.windowStart = now;
      e.count = 0;
    }
    e.count++;
    if (e.count >= this.#max && e.blockedUntil <= now) {
      e.blockedUntil = now + this.#blockMs;
      e.count = 0;
      e.windowStart = now;
      this.#onBlocked?.(source);
      return true;
    }
    return false;
  }

  recordSuccess(source: string): void {
    const e = this.#entries.get(source);
    if (e && e.blockedUntil <= this.#now()) this.#entries.delete(source);
  }

  /** Sources tracked now (bounded by `maxSources`). */
  get trackedCount(): number {
    return this.#entries.size;
  }

  get blockedCount(): number {
    const now = this.#now();
    let n = 0;
    for (const e of this.#entries.values()) if (e.blockedUntil > now) n++;
    return n;
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}

/** Random secret for a single node when none is configured. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}
