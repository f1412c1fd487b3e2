import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RouteToken, routeTokenKey } from '../../../src/signalling/proxy/route-token.js';

const key = routeTokenKey('cluster secret');

describe('route tokens', () => {
  it('are lower-case hex, so no header name can be read in them (SIPp finds CSeq by substring)', () => {
    const tokens = new RouteToken(key);
    for (let i = 0; i < 2000; i++) {
      const t = tokens.sign(`call-${i}@host`, `tag${i}`);
      expect(t).toMatch(/^[0-9a-f]{24}$/);
    }
  });

  it('verify for their own Call-ID and either tag, on any node with the secret; not for another call', () => {
    const t = new RouteToken(key).sign('c1@h', 'caller', ';ft=x');
    const peer = new RouteToken(key); // never saw it issued: checks the MAC
    expect(peer.verify(t, 'c1@h', 'caller', undefined, ';ft=x')).toBe(true);
    expect(peer.verify(t, 'c1@h', 'callee', 'caller', ';ft=x')).toBe(true);
    expect(peer.verify(t, 'c2@h', 'caller', undefined, ';ft=x')).toBe(false);
    expect(peer.verify(t, 'c1@h', 'caller', undefined, '')).toBe(false);
    expect(new RouteToken(routeTokenKey('other secret')).verify(t, 'c1@h', 'caller', undefined, ';ft=x')).toBe(false);
    // The same bytes written another way (hex decoding reads capitals) are not the token issued.
    const upper = t.replace(/[a-f]/, (c) => c.toUpperCase());
    if (upper !== t) expect(peer.verify(upper, 'c1@h', 'caller', undefined, ';ft=x')).toBe(false);
    expect(peer.verify(t.toUpperCase(), 'c1@h', 'caller', undefined, ';ft=x')).toBe(false);
  });

  it('a token this node issued long ago (out of its cache of recent ones) still verifies by its MAC, for its call only', () => {
    const tokens = new RouteToken(key);
    const old = tokens.sign('long@h', 'caller');
    for (let i = 0; i < 40_000; i++) tokens.sign(`c${i}@h`, `t${i}`);
    expect(tokens.verify(old, 'long@h', 'caller', undefined)).toBe(true);
    expect(tokens.verify(old, 'long@h', 'someone', 'else')).toBe(false);
    expect(tokens.verify(old, 'other@h', 'caller', undefined)).toBe(false);
    const forged = (old[0] === 'a' ? 'b' : 'a') + old.slice(1);
    expect(tokens.verify(forged, 'long@h', 'caller', undefined)).toBe(false);
  });

  it('still accept the base64url tokens of dialogs set up before, and reject forged ones of both forms', () => {
    const legacy = createHmac('sha256', key).update('c1@h\0caller\0').digest().subarray(0, 12).toString('base64url');
    expect(legacy).toHaveLength(16);
    const tokens = new RouteToken(key);
    expect(tokens.verify(legacy, 'c1@h', 'caller', undefined)).toBe(true);
    expect(tokens.verify(legacy, 'c2@h', 'caller', undefined)).toBe(false);
    expect(tokens.verify('AAAAAAAAAAAAAAAA', 'c1@h', 'caller', undefined)).toBe(false);
    expect(tokens.verify('0'.repeat(24), 'c1@h', 'caller', undefined)).toBe(false);
    expect(tokens.verify('zz'.repeat(12), 'c1@h', 'caller', undefined)).toBe(false);
  });
});
