/**
 * parseAuthParams reads the value in place (no trim, no regular expression, names lower-cased
 * only when they need it). Its answers must be those of the plain reading it replaced, kept
 * here as the reference: trim, split the scheme at the first white space, lower-case every name.
 */
import { describe, expect, it } from 'vitest';
import { parseAuthParams } from '../../../../src/sip/auth/digest.js';
import { quotedStringEnd, unquote } from '../../../../src/sip/uri/sip-uri.js';

function reference(value: string): { scheme: string; params: Map<string, string> } | undefined {
  const text = value.trim();
  const sp = text.search(/\s/);
  if (sp <= 0) return undefined;
  const scheme = text.slice(0, sp);
  const params = new Map<string, string>();
  let i = sp;
  const n = text.length;
  const at = (k: number): number => text.charCodeAt(k);
  while (i < n) {
    let c = at(i);
    while (c === 32 || c === 9 || c === 44 || c === 13 || c === 10) c = at(++i);
    if (i >= n) break;
    const nameStart = i;
    while (i < n && c !== 61 && c !== 44 && c !== 32 && c !== 9) c = at(++i);
    const name = text.slice(nameStart, i).toLowerCase();
    if (!name) return undefined;
    while (c === 32 || c === 9) c = at(++i);
    if (c !== 61) return undefined;
    c = at(++i);
    while (c === 32 || c === 9) c = at(++i);
    let val: string;
    if (c === 34) {
      const qe = quotedStringEnd(text, i);
      if (qe === -1) return undefined;
      val = unquote(text.slice(i, qe));
      i = qe;
    } else {
      const vStart = i;
      while (i < n && c !== 44 && c !== 32 && c !== 9) c = at(++i);
      val = text.slice(vStart, i);
    }
    if (params.size >= 64) return undefined;
    params.set(name, val);
  }
  return { scheme, params };
}

describe('parseAuthParams', () => {
  it('reads what the plain reading reads, on 20,000 random values built from the characters that matter', () => {
    const pieces = ['Digest', 'digest', ' ', '\t', '\r\n', '\u00a0', '\u2003', '\ufeff', ',', '=', '"', '\\', 'Username', 'realm', 'NONCE', 'Ä', 'abc', '0a1', 'uri="sip:x"', 'qop=auth', ', nc=00000001', 'cnonce="x\\"y"', ' = '];
    let seed = 7;
    const next = (m: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % m);
    for (let k = 0; k < 20_000; k++) {
      let v = '';
      const len = next(12);
      for (let j = 0; j < len; j++) v += pieces[next(pieces.length)];
      const got = parseAuthParams(v);
      const want = reference(v);
      if (want === undefined) expect(got.ok, JSON.stringify(v)).toBe(false);
      else {
        expect(got.ok, JSON.stringify(v)).toBe(true);
        if (got.ok) expect(got.value, JSON.stringify(v)).toEqual(want);
      }
    }
  });

  it('reads a client\'s credentials, names in any case', () => {
    const r = parseAuthParams(' Digest Username="alice", REALM="d.test", nonce="n1", uri="sip:d.test", response="abc", qop=auth, nc=00000001, cnonce="c" ');
    expect(r.ok && r.value.scheme).toBe('Digest');
    expect(r.ok && Object.fromEntries(r.value.params)).toEqual({ username: 'alice', realm: 'd.test', nonce: 'n1', uri: 'sip:d.test', response: 'abc', qop: 'auth', nc: '00000001', cnonce: 'c' });
  });
});
