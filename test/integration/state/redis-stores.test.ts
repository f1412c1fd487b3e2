/**
 * Two "nodes" (two RedisState instances, each with its own stores) on one real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisAuthFailureStore } from '../../../src/state/redis/redis-auth-failure-store.js';
import { RedisDialogStore } from '../../../src/state/redis/redis-dialog-store.js';
import { RedisLocationStore } from '../../../src/state/redis/redis-location-store.js';
import { RedisNodeRegistry } from '../../../src/state/redis/redis-node-registry.js';
import { RedisNonceCountStore } from '../../../src/state/redis/redis-nonce-count-store.js';
import { RedisState } from '../../../src/state/redis/redis-state.js';
import type { Binding, DialogRecord } from '../../../src/state/store.js';
import { respCommand, SingleRedis, waitFor } from './redis-harness.js';

interface Node {
  state: RedisState;
  location: RedisLocationStore;
  dialogs: RedisDialogStore;
  nonces: RedisNonceCountStore;
  failures: RedisAuthFailureStore;
  registry: RedisNodeRegistry;
}

function makeNode(url: string, nodeId: string, cluster: string): Node {
  const state = new RedisState({ url, nodeId, cluster });
  return {
    state,
    location: new RedisLocationStore({ state }),
    dialogs: new RedisDialogStore({ state }),
    nonces: new RedisNonceCountStore({ state }),
    failures: new RedisAuthFailureStore({ state, maxFailures: 4, windowSec: 60, blockSec: 60 }),
    registry: new RedisNodeRegistry({ state, intervalMs: 200, ttlMs: 1000, meta: { sip: `udp:127.0.0.1:${nodeId}` } }),
  };
}

async function closeNode(n: Node): Promise<void> {
  await n.registry.close();
  await n.location.close();
  await n.dialogs.close();
  await n.nonces.close();
  await n.failures.close();
  await n.state.close();
}

const binding = (aor: string, contact: string, owner: string, expiresInMs = 60_000): Binding => ({
  aor,
  contact,
  q: 1,
  expiresAtMs: Date.now() + expiresInMs,
  callId: `reg-${contact}`,
  cseq: 1,
  received: { transport: 'udp', address: '192.0.2.7', port: 5062 },
  owner,
  updatedAtMs: Date.now(),
});

const dialog = (id: string, owner: string, state: DialogRecord['state'] = 'confirmed'): DialogRecord => ({
  id,
  callId: id,
  fromTag: 'f1',
  toTag: 't1',
  state,
  destination: 'sip:pbx1@192.0.2.10',
  mediaNode: '127.0.0.1:2223',
  createdAtMs: Date.now(),
  updatedAtMs: Date.now(),
  owner,
});

describe('Redis stores, two nodes on one Redis', () => {
  let redis: SingleRedis;
  let n1: Node;
  let n2: Node;
  const cluster = `t${process.pid}`;

  beforeAll(async () => {
    redis = await SingleRedis.start();
    n1 = makeNode(redis.url, 'sip1', cluster);
    n2 = makeNode(redis.url, 'sip2', cluster);
    await waitFor('both nodes connected', async () => n1.state.commands.ready && n2.state.commands.ready && n1.state.coherent && n2.state.coherent, 5000);
  });

  afterAll(async () => {
    if (n1) await closeNode(n1);
    if (n2) await closeNode(n2);
    await redis?.stop();
  });

  it('a binding registered through node 1 is found by node 2, with owner, version and TTL in Redis', async () => {
    const aor = 'sip:alice@example.com';
    await n1.location.setBindings(aor, [binding(aor, 'sip:alice@192.0.2.7:5062', 'sip1')]);
    expect(n1.location.size()).toBe(1);
    expect(n1.location.aorCount()).toBe(1);
    await n1.state.outbox.idle();
    const got = await n2.location.getBindings(aor);
    expect(got.map((b) => b.contact)).toEqual(['sip:alice@192.0.2.7:5062']);
    expect(got[0]!.received).toEqual({ transport: 'udp', address: '192.0.2.7', port: 5062 });
    // Node 2's local view now holds it too.
    expect(n2.location.size()).toBe(1);
    const key = `tandem:${cluster}:loc:${aor}`;
    const fields = (await respCommand(redis.port, ['HGETALL', key])) as string[];
    const map = new Map<string, string>();
    for (let i = 0; i < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
    expect(map.get('_owner')).toBe('sip1');
    expect(Number(map.get('_v'))).toBeGreaterThan(0);
    const ttl = Number(await respCommand(redis.port, ['PTTL', key]));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it("node 1's change reaches node 2's cache by invalidation", async () => {
    const aor = 'sip:bob@example.com';
    await n1.location.setBindings(aor, [binding(aor, 'sip:bob@192.0.2.8', 'sip1')]);
    await n1.state.outbox.idle();
    expect((await n2.location.getBindings(aor)).map((b) => b.contact)).toEqual(['sip:bob@192.0.2.8']);
    expect(n2.location.records.peek(aor)?.value).toBeDefined();
    // Re-registration from a new address, through node 1.
    await n1.location.setBindings(aor, [binding(aor, 'sip:bob@192.0.2.9', 'sip1')]);
    await waitFor('node 2 cache invalidated', async () => n2.location.records.peek(aor) === undefined, 2000, 5);
    expect((await n2.location.getBindings(aor)).map((b) => b.contact)).toEqual(['sip:bob@192.0.2.9']);
    // Unregister through node 2: node 1 drops its copy and sees no bindings.
    await n2.location.setBindings(aor, []);
    await waitFor('node 1 cache invalidated', async () => n1.location.records.peek(aor) === undefined, 2000, 5);
    expect(await n1.location.getBindings(aor)).toEqual([]);
    // A tombstone with a short TTL stays behind.
    const ttl = Number(await respCommand(redis.port, ['PTTL', `tandem:${cluster}:loc:${aor}`]));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('a negative answer cached by node 2 is invalidated when node 1 registers the AOR', async () => {
    const aor = 'sip:carol@example.com';
    expect(await n2.location.getBindings(aor)).toEqual([]);
    expect(n2.location.records.peek(aor)?.value).toBeUndefined();
    expect(n2.location.records.peek(aor)).toBeDefined();
    await n1.location.setBindings(aor, [binding(aor, 'sip:carol@192.0.2.11', 'sip1')]);
    await waitFor('node 2 negative entry dropped', async () => n2.location.records.peek(aor) === undefined, 2000, 5);
    expect((await n2.location.getBindings(aor)).length).toBe(1);
  });

  it('an older version written late does not overwrite a newer one, and the late writer corrects its cache', async () => {
    const aor = 'sip:dave@example.com';
    await n2.location.setBindings(aor, [binding(aor, 'sip:dave@new', 'sip2')]);
    await n2.state.outbox.idle();
    // Node 5's clock is 10 s behind: its write carries an older version, as a write replayed
    // late from an outbox does.
    const state = new RedisState({ url: redis.url, nodeId: 'sip5', cluster, now: () => Date.now() - 10_000 });
    const n5 = new RedisLocationStore({ state });
    try {
      await waitFor('node 5 connected', async () => state.commands.ready && state.coherent, 3000);
      await n5.setBindings(aor, [binding(aor, 'sip:dave@old', 'sip5')]);
      expect((await n5.getBindings(aor))[0]!.contact).toBe('sip:dave@old');
      await state.outbox.idle();
      expect(await respCommand(redis.port, ['HGET', `tandem:${cluster}:loc:${aor}`, '_owner'])).toBe('sip2');
      expect((await n5.getBindings(aor))[0]!.contact).toBe('sip:dave@new');
      expect((await n1.location.getBindings(aor))[0]!.contact).toBe('sip:dave@new');
    } finally {
      await n5.close();
      await state.close();
    }
  });

  it('a dialog confirmed through node 1 is found by node 2; its removal reaches node 2', async () => {
    const d = dialog('call-1@example.com;f1;t1', 'sip1');
    await n1.dialogs.put(d);
    expect(n1.dialogs.size()).toBe(1);
    await n1.state.outbox.idle();
    const got = await n2.dialogs.get(d.id);
    expect(got).toEqual(d);
    expect(n2.dialogs.size()).toBe(1);
    const ttl = Number(await respCommand(redis.port, ['PTTL', `tandem:${cluster}:dlg:${d.id}`]));
    expect(ttl).toBeGreaterThan(14_000_000);
    // Node 2 handles the BYE.
    await n2.dialogs.delete(d.id);
    expect(n2.dialogs.size()).toBe(0);
    await waitFor('node 1 dialog invalidated', async () => n1.dialogs.records.peek(d.id) === undefined, 2000, 5);
    expect(await n1.dialogs.get(d.id)).toBeUndefined();
    expect(n1.dialogs.size()).toBe(0);
  });

  it('a nonce count accepted by one node is refused as a replay by the other', async () => {
    const nonce = `nonce-${Date.now()}`;
    expect(await n1.nonces.accept(nonce, 1, 300)).toBe(true);
    expect(await n2.nonces.accept(nonce, 1, 300)).toBe(false);
    expect(await n2.nonces.accept(nonce, 2, 300)).toBe(true);
    expect(await n1.nonces.accept(nonce, 2, 300)).toBe(false);
    expect(await n1.nonces.accept(nonce, 3, 300)).toBe(true);
    // Both offered the same count at once: exactly one accepts.
    const both = await Promise.all([n1.nonces.accept(nonce, 5, 300), n2.nonces.accept(nonce, 5, 300)]);
    expect(both.filter(Boolean).length).toBe(1);
    const ttl = Number(await respCommand(redis.port, ['PTTL', `tandem:${cluster}:nc:${nonce}`]));
    expect(ttl).toBeGreaterThan(290_000);
    expect(await respCommand(redis.port, ['HGET', `tandem:${cluster}:nc:${nonce}`, '_owner'])).toMatch(/^sip[12]$/);
  });

  it('failed authentications count across nodes and the block reaches both', async () => {
    const src = '198.51.100.66';
    expect(n1.failures.recordFailure(src)).toBe(false);
    expect(n2.failures.recordFailure(src)).toBe(false);
    expect(n1.failures.recordFailure(src)).toBe(false);
    await n1.state.outbox.idle();
    expect(n2.failures.recordFailure(src)).toBe(false);
    // The fourth failure, cluster-wide, blocks the source everywhere.
    await waitFor('blocked on both nodes', async () => n1.failures.isBlocked(src) && n2.failures.isBlocked(src), 2000, 5);
    expect(n1.failures.blockedCount).toBe(1);
    const ttl = Number(await respCommand(redis.port, ['PTTL', `tandem:${cluster}:block:${src}`]));
    expect(ttl).toBeGreaterThan(50_000);
    // A node that starts later learns the running block when it connects.
    const n3 = makeNode(redis.url, 'sip3', cluster);
    try {
      await waitFor('node 3 learns the block', async () => n3.failures.isBlocked(src), 3000, 10);
    } finally {
      await closeNode(n3);
    }
  });

  it('the node registry lists live nodes and drops one whose heartbeat lapsed', async () => {
    n1.registry.start();
    n2.registry.start();
    await waitFor('both nodes live', async () => (await n1.registry.liveNodes()).length === 2, 3000, 20);
    const nodes = await n2.registry.liveNodes();
    expect(nodes.map((n) => n.nodeId).sort()).toEqual(['sip1', 'sip2']);
    expect(nodes.find((n) => n.nodeId === 'sip2')!.meta).toEqual({ sip: 'udp:127.0.0.1:sip2' });
    expect(nodes.every((n) => n.version > 0 && n.heartbeatAtMs > 0)).toBe(true);
    // A node that stops heartbeating (no close(): as if killed) lapses after ttlMs.
    const n4 = makeNode(redis.url, 'sip4', cluster);
    try {
      n4.registry.start();
      await waitFor('node 4 live', async () => (await n1.registry.liveNodes()).some((n) => n.nodeId === 'sip4'), 3000, 20);
      await n4.state.close(0);
      await waitFor('node 4 lapsed', async () => !(await n1.registry.liveNodes()).some((n) => n.nodeId === 'sip4'), 3000, 50);
    } finally {
      await closeNode(n4);
    }
  });
});
