import { describe, expect, it } from 'vitest';
import { GenerationalMap } from '../../../src/util/generational-map.js';

describe('GenerationalMap', () => {
  it('keeps every entry until max/2 newer ones came, never more than max', () => {
    const m = new GenerationalMap<string, number>(10);
    for (let i = 0; i < 100; i++) {
      m.set(`k${i}`, i);
      expect(m.size).toBeLessThanOrEqual(10);
      // the last 5 are always there
      for (let j = Math.max(0, i - 4); j <= i; j++) expect(m.get(`k${j}`)).toBe(j);
    }
    expect(m.has('k0')).toBe(false);
  });

  it('an updated key becomes young again; delete removes it from either generation', () => {
    const m = new GenerationalMap<string, number>(4);
    m.set('a', 1).set('b', 2); // young full: a, b become the old generation
    m.set('a', 3); // back to young
    m.set('c', 4); // young (a, c) full: old (b) dropped
    expect(m.get('a')).toBe(3);
    expect(m.has('b')).toBe(false);
    expect(m.delete('a')).toBe(true);
    expect(m.has('a')).toBe(false);
    expect(m.delete('zz')).toBe(false);
    expect(m.size).toBe(1);
  });

});
