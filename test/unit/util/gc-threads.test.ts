import { describe, expect, it } from 'vitest';
import { gcThreadsFor, poolSizeOf, withPoolSize } from '../../../src/util/gc-threads.js';

describe('garbage-collection helper threads', () => {
  it('leave each process its event loop: cores per process less one, 1 to 4', () => {
    expect(gcThreadsFor(2, 1)).toBe(1);
    expect(gcThreadsFor(2, 2)).toBe(1);
    expect(gcThreadsFor(4, 1)).toBe(3);
    expect(gcThreadsFor(16, 1)).toBe(4);
    expect(gcThreadsFor(16, 16)).toBe(1);
    expect(gcThreadsFor(16, 4)).toBe(3);
    expect(gcThreadsFor(1, 8)).toBe(1);
  });

  it('reads the pool size from the command line, then NODE_OPTIONS, else Node\'s 4', () => {
    expect(poolSizeOf([], undefined)).toBe(4);
    expect(poolSizeOf(['--trace-gc', '--v8-pool-size=1'], undefined)).toBe(1);
    expect(poolSizeOf(['--v8-pool-size', '2'], '--v8-pool-size=3')).toBe(2);
    expect(poolSizeOf([], '--max-old-space-size=512 --v8-pool-size=3')).toBe(3);
    expect(poolSizeOf(['--v8-pool-size=0'], undefined)).toBe(4); // 0: Node picks its default
  });

  it('replaces an existing pool size in a child\'s arguments, keeping the rest', () => {
    expect(withPoolSize(['--trace-gc'], 1)).toEqual(['--trace-gc', '--v8-pool-size=1']);
    expect(withPoolSize(['--v8-pool-size=4', '--trace-gc'], 2)).toEqual(['--trace-gc', '--v8-pool-size=2']);
    expect(withPoolSize(['--v8-pool-size', '4', '--inspect'], 1)).toEqual(['--inspect', '--v8-pool-size=1']);
  });
});
