import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bdecode, bdecodePrefix, bencode } from '../../../src/ng/bencode.js';

describe('bencode', () => {
  it('decodes the ping vector', () => {
    const r = bdecode(Buffer.from('d7:command4:pinge'));
    expect(r).toEqual({ ok: true, value: { command: 'ping' } });
  });

  it('encodes with sorted keys', () => {
    expect(bencode({ result: 'pong' }).toString()).toBe('d6:result4:ponge');
    expect(bencode({ b: 1, a: ['x', -3] }).toString()).toBe('d1:al1:xi-3ee1:bi1ee');
  });

  it('accepts unsorted keys', () => {
    const r = bdecode(Buffer.from('d1:bi1e1:ai2ee'));
    expect(r.ok && r.value).toEqual({ b: 1, a: 2 });
  });

  it('round-trips non-UTF-8 bytes with latin1 strings', () => {
    const raw = Buffer.from([0x64, 0x31, 0x3a, 0x73, 0x33, 0x3a, 0xff, 0xfe, 0x41, 0x65]);
    const r = bdecode(raw, { strings: 'latin1' });
    expect(r.ok).toBe(true);
    if (r.ok) expect(bencode(r.value, 'latin1').equals(raw)).toBe(true);
  });

  it('counts string lengths in bytes (utf8)', () => {
    const enc = bencode({ s: 'é' }, 'utf8');
    expect(enc.toString('latin1')).toBe('d1:s2:\xc3\xa9e');
    const r = bdecode(enc, { strings: 'utf8' });
    expect(r.ok && r.value).toEqual({ s: 'é' });
  });

  it.each([
    ['', 'BENC_ERR_TRUNCATED'],
    ['d', 'BENC_ERR_TRUNCATED'],
    ['d3:abc', 'BENC_ERR_TRUNCATED'],
    ['i12', 'BENC_ERR_TRUNCATED'],
    ['i01e', 'BENC_ERR_INTEGER'],
    ['i-0e', 'BENC_ERR_INTEGER'],
    ['ie', 'BENC_ERR_INTEGER'],
    ['5:abc', 'BENC_ERR_TRUNCATED'],
    ['x', 'BENC_ERR_TYPE'],
    ['di1ei2ee', 'BENC_ERR_KEY'],
    ['99999999999:a', 'BENC_ERR_STRING_LENGTH'],
    ['d1:ai1ee1', 'BENC_ERR_TRAILING'],
  ])('rejects %j with %s', (input, code) => {
    const r = bdecode(Buffer.from(input, 'latin1'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
  });

  it('bounds nesting depth', () => {
    const deep = Buffer.from('l'.repeat(100) + 'e'.repeat(100));
    const r = bdecode(deep);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe('BENC_ERR_DEPTH');
  });

  it('reports the end of a prefix for stream framing', () => {
    const r = bdecodePrefix(Buffer.from('d1:ai1eeXYZ'));
    expect(r.ok && r.value.end).toBe(8);
  });

  it('big integers become bigint', () => {
    const r = bdecode(Buffer.from('i123456789012345678901e'));
    expect(r.ok && r.value).toBe(123456789012345678901n);
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = bdecode(Buffer.from(bytes));
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips arbitrary values', () => {
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.string(),
        fc.integer(),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('v'), { maxKeys: 4 }),
      ),
    })).v;
    fc.assert(
      fc.property(value, (v) => {
        const r = bdecode(bencode(v, 'utf8'), { strings: 'utf8' });
        expect(r.ok).toBe(true);
        if (r.ok) expect(JSON.stringify(r.value)).toBe(JSON.stringify(normalise(v)));
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips a dictionary key "__proto__" as an ordinary key (seed that found it)', () => {
    const v = JSON.parse('{"__proto__":0}') as Record<string, unknown>;
    const r = bdecode(bencode(v, 'utf8'), { strings: 'utf8' });
    expect(r.ok && JSON.stringify(r.value)).toBe('{"__proto__":0}');
  });
});

function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    // Object.fromEntries defines every key as an own property: `out[k] = ...` would turn a key
    // "__proto__" (a fine dictionary key on the wire) into a prototype change and lose it.
    return Object.fromEntries(keys.map((k) => [k, normalise((v as Record<string, unknown>)[k])]));
  }
  return v;
}
