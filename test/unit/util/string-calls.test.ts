/**
 * `ownString`: a value read off a message's text, kept after the message is gone, holds its own
 * characters and nothing else: not the message (4 kB here) and, once the young generation has
 * been collected, not a second string either.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ownString } from '../../../src/util/string-calls.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as (opts?: { type: 'minor' | 'major' }) => void;

function heldPer(values: () => string[]): number {
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = values();
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  gc();
  const per = (process.memoryUsage().heapUsed - before) / kept.length;
  expect(kept.length).toBeGreaterThan(0);
  return per;
}

describe('ownString', () => {
  it('copies every length exactly, the empty string and one character included', () => {
    const text = 'Call-ID: 0123456789abcdefghijklmnopqrstuvwxyz@192.0.2.7\r\n';
    for (let n = 0; n <= 40; n++) {
      const slice = text.slice(9, 9 + n);
      expect(ownString(slice)).toBe(slice);
    }
    expect(ownString('é€😀x')).toBe('é€😀x');
  });

  it('keeps neither the message nor a second string: a 30-character value costs well under 64 bytes', () => {
    const N = 20_000;
    const per = heldPer(() => {
      const kept: string[] = [];
      for (let i = 0; i < N; i++) {
        const message = `BYE sip:b@d.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK${String(i).padStart(23, '0')}\r\n${'x'.repeat(4000)}`;
        const at = message.indexOf('z9hG4bK');
        kept.push(ownString(message.slice(at, at + 30)));
      }
      return kept;
    });
    // A flat 30-byte string is 48 bytes; a slice of a padded copy was 32 + 48.
    expect(per).toBeLessThan(64);
  });
});
