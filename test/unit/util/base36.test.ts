import { describe, expect, it } from 'vitest';
import { base36 } from '../../../src/util/base36.js';

describe('base36', () => {
  it('prints what Number#toString(36) prints, for integers up to 2^53', () => {
    const cases = [0, 1, 35, 36, 37, 36 ** 5 - 1, 36 ** 5, 36 ** 5 + 1, 36 ** 10 - 1, 36 ** 10, 2 ** 31, 2 ** 32 - 1, 2 ** 52 - 1, 2 ** 52, 2 ** 53 - 1];
    for (let i = 0; i < 20_000; i++) cases.push(Math.floor(Math.random() * 2 ** (1 + (i % 53))));
    // the proxy's values: 32 bits of one lane, 20 of another
    for (let i = 0; i < 5_000; i++) cases.push(((Math.random() * 2 ** 32) >>> 0) * 0x100000 + ((Math.random() * 2 ** 20) >>> 0));
    for (const n of cases) expect(base36(n), String(n)).toBe(n.toString(36));
  });
});
