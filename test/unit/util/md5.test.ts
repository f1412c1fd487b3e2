import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { md5Hex } from '../../../src/util/md5.js';

describe('md5Hex', () => {
  it('gives the RFC 1321 test suite', () => {
    expect(md5Hex('')).toBe('d41d8cd98f00b204e9800998ecf8427e');
    expect(md5Hex('a')).toBe('0cc175b9c0f1b6a831c399e269772661');
    expect(md5Hex('abc')).toBe('900150983cd24fb0d6963f7d28e17f72');
    expect(md5Hex('message digest')).toBe('f96b697d7cb7938d525a2f31aaf161d0');
    expect(md5Hex('abcdefghijklmnopqrstuvwxyz')).toBe('c3fcd3d76192e4007dfb496cca67e13b');
    expect(md5Hex('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789')).toBe('d174ab98d277d9f5a5611c2c9f419d9f');
    expect(md5Hex('12345678901234567890123456789012345678901234567890123456789012345678901234567890')).toBe('57edf4a22be3c955ac49da2e2107b67a');
  });

  it('equals createHash on 5,000 random strings of 0 to 400 characters (ASCII, Latin-1, BMP, astral, lone surrogates)', () => {
    for (let t = 0; t < 5000; t++) {
      const len = t % 401;
      let s = '';
      const kind = t % 4;
      for (let i = 0; i < len; i++) {
        const r = Math.random();
        if (kind === 0 || r < 0.8) s += String.fromCharCode(32 + Math.floor(Math.random() * 95));
        else if (r < 0.9) s += String.fromCharCode(0x80 + Math.floor(Math.random() * 0xff00));
        else s += String.fromCodePoint(0x10000 + Math.floor(Math.random() * 0xfffff));
      }
      if (kind === 3) s += randomBytes(3).toString('latin1');
      expect(md5Hex(s), `case ${t}`).toBe(createHash('md5').update(s, 'utf8').digest('hex'));
    }
  });
});
