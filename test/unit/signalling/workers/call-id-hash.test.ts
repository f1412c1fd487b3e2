import { describe, expect, it } from 'vitest';
import { callIdHash, callIdHashOf } from '../../../../src/signalling/workers/call-id-hash.js';

const msg = (headers: string[], start = 'INVITE sip:bob@example.test SIP/2.0') => Buffer.from([start, ...headers, '', ''].join('\r\n'));

describe('callIdHash', () => {
  it('finds Call-ID whatever its case, compact form or whitespace before the colon', () => {
    const h = callIdHashOf('a84b4c76e66710@pc33.atlanta.example.com');
    expect(h).toBeGreaterThanOrEqual(0);
    for (const line of ['Call-ID: a84b4c76e66710@pc33.atlanta.example.com', 'call-id:a84b4c76e66710@pc33.atlanta.example.com', 'CALL-ID  :  a84b4c76e66710@pc33.atlanta.example.com ', 'i: a84b4c76e66710@pc33.atlanta.example.com', 'I\t:a84b4c76e66710@pc33.atlanta.example.com']) {
      expect(callIdHash(msg(['Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1', line, 'CSeq: 1 INVITE']))).toBe(h);
    }
  });

  it('a response hashes like its request', () => {
    const headers = ['Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1', 'Call-ID: x1@host', 'CSeq: 1 INVITE'];
    expect(callIdHash(msg(headers, 'SIP/2.0 180 Ringing'))).toBe(callIdHash(msg(headers)));
  });

  it('is not fooled by headers that start alike, nor by a Call-ID in the body', () => {
    const inReplyTo = msg(['In-Reply-To: other@host', 'Identity: x', 'Call-Info: <http://x>', 'Call-ID: real@host']);
    expect(callIdHash(inReplyTo)).toBe(callIdHashOf('real@host'));
    const bodyOnly = Buffer.from('INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 17\r\n\r\nCall-ID: fake@abc');
    expect(callIdHash(bodyOnly)).toBe(-1);
  });

  it('no Call-ID, an empty one or garbage: -1 (handled where it arrived)', () => {
    expect(callIdHash(msg(['Via: SIP/2.0/UDP h', 'CSeq: 1 INVITE']))).toBe(-1);
    expect(callIdHash(msg(['Call-ID:   ', 'CSeq: 1 INVITE']))).toBe(-1);
    expect(callIdHash(Buffer.alloc(0))).toBe(-1);
    expect(callIdHash(Buffer.from('\r\n\r\n'))).toBe(-1);
    expect(callIdHash(Buffer.from([0xff, 0x0a, 0x69]))).toBe(-1);
  });

  it('a Call-ID a worker made up names that worker', () => {
    expect(callIdHashOf('tdmw0.ds-12ab@10.0.0.1')).toBe(-2);
    expect(callIdHashOf('tdmw13.ds-12ab@10.0.0.1')).toBe(-15);
    expect(callIdHashOf('tdmwx.ds@h')).toBeGreaterThanOrEqual(0);
  });

  it('spreads Call-IDs evenly over 2 and 4 workers', () => {
    for (const n of [2, 4]) {
      const counts = new Array<number>(n).fill(0);
      for (let i = 0; i < 4000; i++) counts[callIdHashOf(`${i.toString(36)}-${(i * 7919).toString(16)}@192.0.2.${i % 250}`) % n]!++;
      for (const c of counts) expect(c).toBeGreaterThan((4000 / n) * 0.85);
    }
  });
});
