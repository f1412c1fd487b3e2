import { describe, expect, it } from 'vitest';
import {
  buildAuthorization,
  computeHa1,
  computeResponse,
  formatChallenge,
  parseChallenge,
  parseCredentials,
  safeEqual,
} from '../../../../src/sip/auth/digest.js';

// RFC 7616 §3.9.1 worked example.
const ex = {
  username: 'Mufasa',
  password: 'Circle of Life',
  realm: 'http-auth@example.org',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
  uri: '/dir/index.html',
};

describe('digest primitives', () => {
  it('computes the RFC 7616 MD5 and SHA-256 responses', () => {
    for (const [alg, expected] of [
      ['MD5', '8ca523f5e9506fed4657c9700eebdbec'],
      ['SHA-256', '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1'],
    ] as const) {
      const ha1 = computeHa1(alg, ex.username, ex.realm, ex.password);
      const r = computeResponse({ algorithm: alg, ha1, nonce: ex.nonce, method: 'GET', uri: ex.uri, qop: 'auth', nc: '00000001', cnonce: ex.cnonce });
      expect(r).toBe(expected);
    }
  });

  it('builds Authorization from a raw challenge and parses it back', () => {
    const ch = formatChallenge({ realm: ex.realm, nonce: ex.nonce, algorithm: 'SHA-256', qop: ['auth'], opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS' });
    const built = buildAuthorization(ch, ex, 'GET', ex.uri, 1, ex.cnonce);
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    const cred = parseCredentials(built.value);
    expect(cred.ok).toBe(true);
    if (!cred.ok) return;
    expect(cred.value.response).toBe('753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
    expect(cred.value.nc).toBe('00000001');
    expect(cred.value.qop).toBe('auth');
    expect(cred.value.opaque).toBe('FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS');
  });

  it('parses quoted escapes and stale, rejects garbage without throwing', () => {
    const p = parseChallenge('Digest realm="a\\"b", nonce="n", stale=TRUE, qop="auth,auth-int"');
    expect(p.ok && p.value.realm).toBe('a"b');
    expect(p.ok && p.value.stale).toBe(true);
    expect(p.ok && p.value.qop).toEqual(['auth', 'auth-int']);
    // A quoted-pair of a backslash, and a comma inside quotes, stay in the value.
    const q = parseChallenge('Digest realm="a\\\\b, c", nonce="\\n"');
    expect(q.ok && [q.value.realm, q.value.nonce]).toEqual(['a\\b, c', 'n']);
    for (const bad of ['', 'Digest', 'Basic abc=1', 'Digest realm="x', 'Digest realm', 'Digest nonce="x"']) {
      expect(parseChallenge(bad).ok).toBe(false);
    }
    expect(parseCredentials('Digest username="u"').ok).toBe(false);
  });

  it('compares in constant time', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('abcd', 'abc')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
    expect(safeEqual('', 'a')).toBe(false);
    expect(safeEqual('a', '')).toBe(false);
    // a prefix repeated to the other's length is not equal
    expect(safeEqual('abab', 'ab')).toBe(false);
    expect(safeEqual('0cc175b9c0f1b6a831c399e269772661', '0cc175b9c0f1b6a831c399e269772661')).toBe(true);
    expect(safeEqual('0cc175b9c0f1b6a831c399e269772661', '0cc175b9c0f1b6a831c399e269772662')).toBe(false);
  });
});
