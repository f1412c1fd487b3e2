/**
 * Server side of SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760).
 *
 * Nonces are stateless: `base64url(ts[6] | rand[8] | HMAC-SHA256(secret, ts|rand|realm)[16])`,
 * so any node that shares the secret verifies a nonce another node issued. An expired but
 * genuine nonce gets `stale=true` (RFC 7616 §3.3: the client retries without asking the user).
 * Nonce-count replay protection keeps, per nonce, the highest `nc` seen (bounded map; RFC 7616
 * §3.4: "the server ... MUST reject a request with a repeated nc").
 * Response comparisons use crypto.timingSafeEqual.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
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
   * Max nonces whose nonce-count is remembered (oldest forgotten first).
   * @default 200000
   */
  maxTrackedNonces?: number;
}

export type VerifyFailure =
  | 'missing' // no credentials for our realm: send a challenge
  | 'malformed'
  | 'stale' // genuine nonce that expired: challenge with stale=true
  | 'bad-nonce' // nonce not issued by us
  | 'unknown-user'
  | 'bad-response'
  | 'replay' // nonce-count not increasing
  | 'bad-algorithm';

export type VerifyResult = { ok: true; username: string; credentials: DigestCredentials } | { ok: false; failure: VerifyFailure; username?: string };

const NONCE_BYTES = 6 + 8 + 16;

/**
 * Random bytes for nonces from a pool refilled 4 KiB at a time: a synchronous `randomBytes(8)`
 * per challenge costs more than the HMAC that protects the nonce.
 */
const POOL_SIZE = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomPart(into: Buffer, at: number): void {
  if (poolAt + 8 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolAt = 0;
  }
  pool.copy(into, at, poolAt, poolAt + 8);
  poolAt += 8;
}

export class DigestAuthenticator {
  readonly realm: string;
  readonly nonceLifetimeSec: number;
  readonly algorithms: DigestAlgorithm[];
  #secret: Buffer;
  #users: UserDirectory;
  #now: () => number;
  #ncSeen = new Map<string, number>();
  #maxTracked: number;
  #opaque: string;
  /** HA1 cache for password users: `${alg}\0${username}` -> HA1. */
  #ha1Cache = new Map<string, string>();

  constructor(opts: DigestAuthenticatorOptions) {
    this.realm = opts.realm;
    this.nonceLifetimeSec = opts.nonceLifetimeSec ?? 300;
    this.algorithms = opts.algorithms?.length ? opts.algorithms : ['SHA-256', 'MD5'];
    this.#secret = typeof opts.secret === 'string' ? Buffer.from(opts.secret, 'utf8') : opts.secret;
    this.#users = opts.users;
    this.#now = opts.now ?? Date.now;
    this.#maxTracked = opts.maxTrackedNonces ?? 200_000;
    this.#opaque = createHmac('sha256', this.#secret).update(`opaque:${this.realm}`).digest('base64url').slice(0, 22);
  }

  /** Issues a fresh nonce. */
  newNonce(): string {
    const buf = Buffer.allocUnsafe(NONCE_BYTES);
    buf.writeUIntBE(Math.floor(this.#now() / 1000), 0, 6);
    randomPart(buf, 6);
    this.#mac(buf.subarray(0, 14)).copy(buf, 14, 0, 16);
    return buf.toString('base64url');
  }

  /**
   * Header values for `WWW-Authenticate` (401) or `Proxy-Authenticate` (407): one per offered
   * algorithm, all with qop="auth" and opaque.
   */
  challenges(stale = false): string[] {
    const nonce = this.newNonce();
    return this.algorithms.map((algorithm) =>
      formatChallenge({ realm: this.realm, nonce, opaque: this.#opaque, stale, algorithm, qop: ['auth'] }),
    );
  }

  /**
   * Checks `Authorization` / `Proxy-Authorization` values of a request. Only credentials for our
   * realm are considered (RFC 3261 §22.3: a proxy must not consume credentials for another realm).
   */
  verify(headerValues: string[], method: string): VerifyResult {
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
    const nonceState = this.#checkNonce(creds.nonce);
    if (nonceState === 'bad') return { ok: false, failure: 'bad-nonce', username };
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
    if (creds.qop) {
      const nc = parseInt(creds.nc!, 16);
      const last = this.#ncSeen.get(creds.nonce);
      if (last !== undefined && nc <= last) return { ok: false, failure: 'replay', username };
      if (last !== undefined) this.#ncSeen.delete(creds.nonce);
      this.#ncSeen.set(creds.nonce, nc);
      if (this.#ncSeen.size > this.#maxTracked) {
        const oldest = this.#ncSeen.keys().next().value;
        if (oldest !== undefined) this.#ncSeen.delete(oldest);
      }
    }
    return { ok: true, username, credentials: creds };
  }

  #mac(data: Buffer): Buffer {
    return createHmac('sha256', this.#secret).update(data).update(this.realm).digest();
  }

  #checkNonce(nonce: string): 'ok' | 'stale' | 'bad' {
    if (nonce.length !== Math.ceil((NONCE_BYTES * 4) / 3)) return 'bad';
    const buf = Buffer.from(nonce, 'base64url');
    if (buf.length !== NONCE_BYTES) return 'bad';
    const mac = this.#mac(buf.subarray(0, 14)).subarray(0, 16);
    if (!timingSafeEqual(mac, buf.subarray(14))) return 'bad';
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
    const key = `${alg}\0${user.username}\0${user.password}`;
    let ha1 = this.#ha1Cache.get(key);
    if (!ha1) {
      ha1 = computeHa1(sha ? 'SHA-256' : 'MD5', user.username, this.realm, user.password);
      if (this.#ha1Cache.size > 500_000) this.#ha1Cache.clear();
      this.#ha1Cache.set(key, ha1);
    }
    return ha1;
  }
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
  now?: () => number;
}

/**
 * Counts failed authentications per source (IP address) and blocks a source that keeps failing,
 * so a password-guessing scanner does not get unlimited tries.
 */
export class AuthFailureTracker {
  #max: number;
  #windowMs: number;
  #blockMs: number;
  #now: () => number;
  #entries = new Map<string, { windowStart: number; count: number; blockedUntil: number }>();

  constructor(opts: FailureTrackerOptions = {}) {
    this.#max = opts.maxFailures ?? 10;
    this.#windowMs = (opts.windowSec ?? 60) * 1000;
    this.#blockMs = (opts.blockSec ?? 300) * 1000;
    this.#now = opts.now ?? Date.now;
  }

  isBlocked(source: string): boolean {
    const e = this.#entries.get(source);
    if (!e) return false;
    if (e.blockedUntil > this.#now()) return true;
    return false;
  }

  /** Records a failure; returns true when this failure blocks the source. */
  recordFailure(source: string): boolean {
    const now = this.#now();
    let e = this.#entries.get(source);
    if (!e || now - e.windowStart > this.#windowMs) {
      if (!e && this.#entries.size > 100_000) this.#prune(now);
      e = { windowStart: now, count: 0, blockedUntil: e?.blockedUntil ?? 0 };
      this.#entries.set(source, e);
    }
    e.count++;
    if (e.count >= this.#max && e.blockedUntil <= now) {
      e.blockedUntil = now + this.#blockMs;
      e.count = 0;
      e.windowStart = now;
      return true;
    }
    return false;
  }

  recordSuccess(source: string): void {
    const e = this.#entries.get(source);
    if (e && e.blockedUntil <= this.#now()) this.#entries.delete(source);
  }

  get blockedCount(): number {
    const now = this.#now();
    let n = 0;
    for (const e of this.#entries.values()) if (e.blockedUntil > now) n++;
    return n;
  }

  #prune(now: number): void {
    for (const [k, e] of this.#entries) {
      if (e.blockedUntil <= now && now - e.windowStart > this.#windowMs) this.#entries.delete(k);
    }
  }
}

/** Random secret for a single node when none is configured. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}
