import { createHmac, randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AuthFailureTracker, DigestAuthenticator, provesWrongCredentials, sameResource } from '../../../../src/sip/auth/digest-server.js';
import { buildAuthorization, computeHa1, formatChallenge, parseChallenge } from '../../../../src/sip/auth/digest.js';

const users = { lookup: (u: string) => (u === 'alice' ? { username: 'alice', password: 'pw' } : u === 'hashed' ? { username: 'hashed', ha1Md5: computeHa1('MD5', 'hashed', 'r', 'pw2') } : undefined) };

function setup(now = { t: 1_000_000 }) {
  const a = new DigestAuthenticator({ realm: 'r', secret: 'secret-secret-secret', users, nonceLifetimeSec: 10, now: () => now.t });
  return { a, now };
}

function creds(a: DigestAuthenticator, alg: 'MD5' | 'SHA-256', user = 'alice', password = 'pw', nc = 1) {
  const ch = a.challenges().map((c) => parseChallenge(c)).find((c) => c.ok && c.value.algorithm === alg)!;
  if (!ch.ok) throw new Error('no challenge');
  const r = buildAuthorization(ch.value, { username: user, password }, 'REGISTER', 'sip:r', nc, 'cn');
  if (!r.ok) throw new Error(r.reason);
  return { value: r.value, nonce: ch.value.nonce };
}

describe('DigestAuthenticator', () => {
  it('accepts MD5 and SHA-256 credentials, and HA1-only users', () => {
    const { a } = setup();
    expect(a.verify([creds(a, 'MD5').value], 'REGISTER').ok).toBe(true);
    expect(a.verify([creds(a, 'SHA-256').value], 'REGISTER').ok).toBe(true);
    expect(a.verify([creds(a, 'MD5', 'hashed', 'pw2').value], 'REGISTER').ok).toBe(true);
  });

  it('a user record kept by the directory: its password changed in place takes effect at once (HA1 cache)', () => {
    const bob = { username: 'bob', password: 'old' };
    const a = new DigestAuthenticator({ realm: 'r', secret: 'secret-secret-secret', users: { lookup: (u) => (u === 'bob' ? bob : undefined) } });
    expect(a.verify([creds(a, 'MD5', 'bob', 'old').value], 'REGISTER').ok).toBe(true);
    expect(a.verify([creds(a, 'SHA-256', 'bob', 'old').value], 'REGISTER').ok).toBe(true);
    bob.password = 'new';
    expect(a.verify([creds(a, 'MD5', 'bob', 'old').value], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-response' });
    expect(a.verify([creds(a, 'SHA-256', 'bob', 'old').value], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-response' });
    expect(a.verify([creds(a, 'MD5', 'bob', 'new').value], 'REGISTER').ok).toBe(true);
  });

  it('challenges are the text formatChallenge renders, for each algorithm, stale or not', () => {
    const { a } = setup();
    for (const stale of [false, true]) {
      const values = a.challenges(stale, '192.0.2.1');
      expect(values).toHaveLength(2);
      values.forEach((v, i) => {
        const p = parseChallenge(v);
        if (!p.ok) throw new Error(p.reason);
        expect(v).toBe(formatChallenge({ realm: 'r', nonce: p.value.nonce, opaque: p.value.opaque!, stale, algorithm: a.algorithms[i]!, qop: ['auth'] }));
        expect(p.value.stale ?? false).toBe(stale);
      });
    }
  });

  it('rejects a wrong password, an unknown user, a forged nonce, another method', () => {
    const { a } = setup();
    expect(a.verify([creds(a, 'MD5', 'alice', 'bad').value], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-response' });
    expect(a.verify([creds(a, 'MD5', 'mallory').value], 'REGISTER')).toMatchObject({ ok: false, failure: 'unknown-user' });
    const c = creds(a, 'MD5').value.replace(/nonce="[^"]+"/, 'nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"');
    expect(a.verify([c], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-nonce' });
    expect(a.verify([creds(a, 'MD5').value], 'INVITE')).toMatchObject({ ok: false, failure: 'bad-response' });
    expect(a.verify([], 'REGISTER')).toMatchObject({ ok: false, failure: 'missing' });
    expect(a.verify(['Digest garbage'], 'REGISTER')).toMatchObject({ ok: false, failure: 'malformed' });
  });

  it('reports stale for an expired nonce (only with a correct response)', () => {
    const { a, now } = setup();
    const c = creds(a, 'MD5');
    const bad = creds(a, 'MD5', 'alice', 'nope');
    now.t += 11_000;
    expect(a.verify([c.value], 'REGISTER')).toMatchObject({ ok: false, failure: 'stale' });
    expect(a.verify([bad.value], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-response' });
    expect(a.challenges(true)[0]).toContain('stale=true');
  });

  it('a nonce issued here and then altered (time or MAC) is a bad nonce, not one it remembers issuing', () => {
    const { a } = setup();
    const c = creds(a, 'MD5');
    for (const at of [2, c.nonce.length - 2]) {
      const flipped = c.nonce.slice(0, at) + (c.nonce[at] === 'A' ? 'B' : 'A') + c.nonce.slice(at + 1);
      const forged = c.value.replace(c.nonce, flipped);
      expect(a.verify([forged], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-nonce' });
    }
    expect(a.verify([c.value], 'REGISTER').ok).toBe(true);
  });

  it('verifies nonces issued by another node with the same secret', () => {
    const { a } = setup();
    const b = new DigestAuthenticator({ realm: 'r', secret: 'secret-secret-secret', users, now: () => 1_000_000 });
    expect(b.verify([creds(a, 'SHA-256').value], 'REGISTER').ok).toBe(true);
  });

  it('rejects a replayed nonce-count and accepts an increasing one', () => {
    const { a } = setup();
    const ch = parseChallenge(a.challenges()[0]!);
    if (!ch.ok) throw new Error();
    const mk = (nc: number) => {
      const r = buildAuthorization(ch.value, { username: 'alice', password: 'pw' }, 'REGISTER', 'sip:r', nc, 'cn');
      return r.ok ? r.value : '';
    };
    expect(a.verify([mk(1)], 'REGISTER').ok).toBe(true);
    expect(a.verify([mk(1)], 'REGISTER')).toMatchObject({ ok: false, failure: 'replay' });
    expect(a.verify([mk(2)], 'REGISTER').ok).toBe(true);
  });
});

describe('DigestAuthenticator: nonce-counts', () => {
  /** Credentials for a given nonce (the challenge's other fields as `a` issues them). */
  function withNonce(a: DigestAuthenticator, nonce: string, nc: number): string {
    const ch = parseChallenge(a.challenges()[0]!);
    if (!ch.ok) throw new Error('no challenge');
    const r = buildAuthorization({ ...ch.value, nonce }, { username: 'alice', password: 'pw' }, 'REGISTER', 'sip:r', nc, 'cn');
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  }
  const nonceOf = (a: DigestAuthenticator): string => {
    const ch = parseChallenge(a.challenges()[0]!);
    if (!ch.ok) throw new Error('no challenge');
    return ch.value.nonce;
  };

  it('nonces are unique, and one altered character makes any of them fail', () => {
    const { a } = setup();
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(nonceOf(a));
    expect(seen.size).toBe(2000);
    const n = nonceOf(a);
    for (const at of [0, 7, 9, 13, 14, 19, 20, 39]) {
      const c = n[at] === 'A' ? 'B' : 'A';
      expect(a.verify([withNonce(a, n.slice(0, at) + c + n.slice(at + 1), 1)], 'REGISTER')).toMatchObject({ ok: false, failure: 'bad-nonce' });
    }
    expect(a.verify([withNonce(a, n, 1)], 'REGISTER').ok).toBe(true);
  });

  it('a peer\'s nonce (same secret, another issuer) has its count tracked too', () => {
    const { a } = setup();
    const b = new DigestAuthenticator({ realm: 'r', secret: 'secret-secret-secret', users, now: () => 1_000_000 });
    const n = nonceOf(a);
    expect(b.verify([withNonce(b, n, 1)], 'REGISTER').ok).toBe(true);
    expect(b.verify([withNonce(b, n, 1)], 'REGISTER')).toMatchObject({ ok: false, failure: 'replay', sameCount: true });
    expect(b.verify([withNonce(b, n, 2)], 'REGISTER').ok).toBe(true);
    expect(b.verify([withNonce(b, n, 2)], 'REGISTER')).toMatchObject({ ok: false, failure: 'replay' });
  });

  it('a nonce of the former layout (8 random bytes after the time) still verifies, and its count is tracked', () => {
    const { a } = setup();
    const bytes = Buffer.alloc(30);
    bytes.writeUIntBE(1_000, 0, 6); // issued at t = 1,000 s, as the test clock reads
    randomFillSync(bytes, 6, 8);
    createHmac('sha256', 'secret-secret-secret').update(bytes.subarray(0, 14)).update('r').digest().copy(bytes, 14, 0, 16);
    const legacy = bytes.toString('base64url');
    expect(a.verify([withNonce(a, legacy, 1)], 'REGISTER').ok).toBe(true);
    expect(a.verify([withNonce(a, legacy, 1)], 'REGISTER')).toMatchObject({ ok: false, failure: 'replay', sameCount: true });
  });

  it('an older nonce used after a newer one that shares its slot is still tracked, and so is the newer one', () => {
    const a = new DigestAuthenticator({ realm: 'r', secret: 'secret-secret-secret', users, now: () => 1_000_000, maxTrackedNonces: 16 });
    const older = nonceOf(a);
    const between = Array.from({ length: 15 }, () => nonceOf(a));
    const newer = nonceOf(a); // 16 issues later: the same slot of a 16-slot table
    expect(between.length).toBe(15);
    expect(a.verify([withNonce(a, newer, 1)], 'REGISTER').ok).toBe(true);
    expect(a.verify([withNonce(a, older, 1)], 'REGISTER').ok).toBe(true);
    expect(a.verify([withNonce(a, older, 1)], 'REGISTER')).toMatchObject({ ok: false, failure: 'replay' });
    expect(a.verify([withNonce(a, newer, 1)], 'REGISTER')).toMatchObject({ ok: false, failure: 'replay' });
    expect(a.verify([withNonce(a, older, 2)], 'REGISTER').ok).toBe(true);
    expect(a.verify([withNonce(a, newer, 2)], 'REGISTER').ok).toBe(true);
  });
});

describe('DigestAuthenticator: what credentials must bind', () => {
  /** Credentials answering a challenge that went to `source`, for `uri`, without qop when `noQop`. */
  function answer(a: DigestAuthenticator, o: { source?: string; uri?: string; noQop?: boolean; password?: string } = {}) {
    const ch = parseChallenge(a.challenges(false, o.source)[0]!);
    if (!ch.ok) throw new Error('no challenge');
    const c = o.noQop ? { ...ch.value, qop: undefined } : ch.value;
    const r = buildAuthorization(c, { username: 'alice', password: o.password ?? 'pw' }, 'INVITE', o.uri ?? 'sip:bob@r', 1, 'cn');
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  }

  it('requires qop=auth by default: credentials without qop are challenged again, never accepted', () => {
    const { a } = setup();
    expect(a.verify([answer(a, { noQop: true })], 'INVITE', { requestUri: 'sip:bob@r' })).toMatchObject({ ok: false, failure: 'qop-required' });
  });

  it('with allowNoQop, a nonce without qop serves one request: the replay is refused (as stale)', () => {
    const a = new DigestAuthenticator({ realm: 'r', secret: 'secret-secret-secret', users, allowNoQop: true });
    const creds = answer(a, { noQop: true });
    expect(a.verify([creds], 'INVITE', { requestUri: 'sip:bob@r' }).ok).toBe(true);
    expect(a.verify([creds], 'INVITE', { requestUri: 'sip:bob@r' })).toMatchObject({ ok: false, failure: 'stale' });
  });

  it('the digest uri must name the Request-URI', () => {
    const { a } = setup();
    const creds = answer(a, { uri: 'sip:bob@r' });
    expect(a.verify([creds], 'INVITE', { requestUri: 'sip:+4420700000@r' })).toMatchObject({ ok: false, failure: 'uri-mismatch' });
    expect(a.verify([answer(a, { uri: 'sip:bob@R:5060' })], 'INVITE', { requestUri: 'sip:bob@r;transport=udp' }).ok).toBe(true);
    expect(sameResource('sip:bob@r', 'sip:bob@r:5070')).toBe(false);
    expect(sameResource('sip:bob@r', 'sip:alice@r')).toBe(false);
  });

  it('a nonce is bound to the address it was sent to: from elsewhere it is a bad nonce, which blocks no one', () => {
    const { a } = setup();
    const creds = answer(a, { source: '198.51.100.1', password: 'wrong' });
    const elsewhere = a.verify([creds], 'INVITE', { requestUri: 'sip:bob@r', source: '203.0.113.9' });
    expect(elsewhere).toMatchObject({ ok: false, failure: 'bad-nonce' });
    expect(provesWrongCredentials((elsewhere as { failure: 'bad-nonce' }).failure)).toBe(false);
    const here = a.verify([creds], 'INVITE', { requestUri: 'sip:bob@r', source: '198.51.100.1' });
    expect(here).toMatchObject({ ok: false, failure: 'bad-response' });
    expect(a.verify([answer(a, { source: '198.51.100.1' })], 'INVITE', { requestUri: 'sip:bob@r', source: '198.51.100.1' }).ok).toBe(true);
  });
});

describe('AuthFailureTracker', () => {
  it('never counts nor blocks a trusted source', () => {
    const f = new AuthFailureTracker({ maxFailures: 2, isTrusted: (a) => a === '10.0.0.5' });
    for (let i = 0; i < 10; i++) f.recordFailure('10.0.0.5');
    expect(f.isBlocked('10.0.0.5')).toBe(false);
    expect(f.trackedCount).toBe(0);
  });

  it('is bounded: past maxSources the least recently seen source is forgotten, the others kept', () => {
    const blocked: string[] = [];
    const f = new AuthFailureTracker({ maxFailures: 2, maxSources: 3, onBlocked: (a) => blocked.push(a) });
    f.recordFailure('a');
    f.recordFailure('a');
    expect(blocked).toEqual(['a']);
    f.recordFailure('b');
    f.recordFailure('c');
    f.recordFailure('a'); // 'a' seen again: now the most recent
    f.recordFailure('d'); // evicts 'b', the least recently seen
    expect(f.trackedCount).toBe(3);
    expect(f.isBlocked('a')).toBe(true);
    f.recordFailure('b'); // a fresh count for 'b': one failure, not two
    expect(f.isBlocked('b')).toBe(false);
  });

  it('blocks a source after maxFailures within the window, for blockSec', () => {
    let t = 0;
    const f = new AuthFailureTracker({ maxFailures: 3, windowSec: 60, blockSec: 30, now: () => t });
    expect(f.recordFailure('1.2.3.4')).toBe(false);
    expect(f.recordFailure('1.2.3.4')).toBe(false);
    expect(f.recordFailure('1.2.3.4')).toBe(true);
    expect(f.isBlocked('1.2.3.4')).toBe(true);
    expect(f.isBlocked('5.6.7.8')).toBe(false);
    t += 31_000;
    expect(f.isBlocked('1.2.3.4')).toBe(false);
  });
});
