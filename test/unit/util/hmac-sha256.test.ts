import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HmacSha256 } from '../../../src/util/hmac-sha256.js';

/** A string of random code units: ASCII mostly, some Latin-1, BMP, astral pairs and lone surrogates. */
function randomText(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = Math.random();
    if (r < 0.7) s += String.fromCharCode(32 + Math.floor(Math.random() * 95));
    else if (r < 0.8) s += String.fromCharCode(0x80 + Math.floor(Math.random() * 0x780));
    else if (r < 0.9) s += String.fromCodePoint(0x10000 + Math.floor(Math.random() * 0xfffff));
    else s += String.fromCharCode(0xd800 + Math.floor(Math.random() * 0x800));
  }
  return s;
}

describe('HmacSha256', () => {
  it('gives RFC 4231 test case 2 ("Jefe")', () => {
    const mac = new HmacSha256('Jefe').start().add('what do ya want ').add('for nothing?').digest();
    expect(mac.toString('hex')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });

  it('gives RFC 4231 test case 6 (a 131-byte key, hashed first)', () => {
    const mac = new HmacSha256(Buffer.alloc(131, 0xaa)).start().add('Test Using Larger Than Block-Size Key - Hash Key First').digest();
    expect(mac.toString('hex')).toBe('60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54');
  });

  it('equals createHmac on 3,000 random keys and messages of 0 to 700 bytes, in parts', () => {
    for (let t = 0; t < 3000; t++) {
      const key = t % 3 === 0 ? randomText(1 + (t % 90)) : randomBytes(1 + (t % 150));
      const parts: (string | Buffer)[] = [];
      for (let p = t % 5; p > 0; p--) parts.push(Math.random() < 0.5 ? randomBytes(Math.floor(Math.random() * 140)) : randomText(Math.floor(Math.random() * 120)));
      const mine = new HmacSha256(key).start();
      const theirs = createHmac('sha256', key);
      for (const part of parts) {
        mine.add(part);
        theirs.update(part);
      }
      expect(mine.digest().toString('hex'), `case ${t}`).toBe(theirs.digest('hex'));
    }
  });

  it('starts each MAC afresh, and an unfinished one is forgotten by start()', () => {
    const m = new HmacSha256('k');
    const once = m.start().add('abc').digest();
    expect(m.start().add('abc').digest()).toEqual(once);
    m.start().add('left over');
    expect(m.start().add('abc').digest()).toEqual(once);
    expect(m.add('abc').digest()).toEqual(once); // digest() also resets
  });
});
