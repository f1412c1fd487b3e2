import { describe, expect, it } from 'vitest';
import { AuthFailureTracker, DigestAuthenticator } from '../../../../src/sip/auth/digest-server.js';
import { buildAuthorization, computeHa1, parseChallenge } from '../../../../src/sip/auth/digest.js';

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

describe('AuthFailureTracker', () => {
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
