import { describe, expect, it } from 'vitest';
import { MemoryAuthFailureStore } from '../../../src/state/memory/memory-auth-failure-store.js';
import { MemoryNodeRegistry, type MemoryNodeTable } from '../../../src/state/memory/memory-node-registry.js';
import { MemoryNonceCountStore } from '../../../src/state/memory/memory-nonce-count-store.js';
import type { AuthFailureStore, NodeRegistry, NonceCountStore } from '../../../src/state/store.js';

describe('memory stores for the cluster interfaces', () => {
  it('MemoryNonceCountStore accepts only a growing nc, for the nonce lifetime', async () => {
    let now = 0;
    const s: NonceCountStore = new MemoryNonceCountStore({ now: () => now, maxNonces: 2 });
    expect(await s.accept('n1', 1, 300)).toBe(true);
    expect(await s.accept('n1', 1, 300)).toBe(false);
    expect(await s.accept('n1', 3, 300)).toBe(true);
    expect(await s.accept('n1', 2, 300)).toBe(false);
    now = 301_000;
    expect(await s.accept('n1', 1, 300)).toBe(true);
    // Bounded: the oldest nonce is forgotten.
    await s.accept('n2', 1, 300);
    await s.accept('n3', 1, 300);
    expect(await s.accept('n1', 1, 300)).toBe(true);
    await s.close();
  });

  it('MemoryAuthFailureStore blocks a source after maxFailures within the window', async () => {
    let now = 0;
    const s: AuthFailureStore = new MemoryAuthFailureStore({ maxFailures: 3, windowSec: 60, blockSec: 10, now: () => now });
    expect(s.recordFailure('a')).toBe(false);
    expect(s.recordFailure('a')).toBe(false);
    expect(s.recordFailure('a')).toBe(true);
    expect(s.isBlocked('a')).toBe(true);
    expect(s.blockedCount).toBe(1);
    now = 11_000;
    expect(s.isBlocked('a')).toBe(false);
    await s.close();
  });

  it('MemoryNodeRegistry lists nodes sharing a table until their heartbeat lapses', async () => {
    let now = 0;
    const table: MemoryNodeTable = new Map();
    const a: NodeRegistry = new MemoryNodeRegistry({ nodeId: 'a', ttlMs: 3000, table, now: () => now, meta: { role: 'sip' } });
    const b: NodeRegistry = new MemoryNodeRegistry({ nodeId: 'b', ttlMs: 3000, table, now: () => now });
    await a.heartbeat();
    await b.heartbeat();
    expect((await a.liveNodes()).map((n) => n.nodeId).sort()).toEqual(['a', 'b']);
    expect((await b.liveNodes()).find((n) => n.nodeId === 'a')!.meta).toEqual({ role: 'sip' });
    now = 2000;
    await a.heartbeat();
    now = 3500;
    expect((await a.liveNodes()).map((n) => n.nodeId)).toEqual(['a']);
    await a.close();
    expect(await b.liveNodes()).toEqual([]);
    await b.close();
  });
});
