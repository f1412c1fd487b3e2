/**
 * A real redis-server killed (SIGKILL) and restarted on the same port under two nodes: callers
 * never wait or see an error, reads come from what each node knows, and every write accepted
 * meanwhile reaches Redis when it returns.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RedisConnection } from '../../../src/state/redis/redis-connection.js';
import { RedisAuthFailureStore } from '../../../src/state/redis/redis-auth-failure-store.js';
import { RedisDialogStore } from '../../../src/state/redis/redis-dialog-store.js';
import { RedisLocationStore } from '../../../src/state/redis/redis-location-store.js';
import { RedisNodeRegistry } from '../../../src/state/redis/redis-node-registry.js';
import { RedisNonceCountStore } from '../../../src/state/redis/redis-nonce-count-store.js';
import { RedisState } from '../../../src/state/redis/redis-state.js';
import type { Binding, DialogRecord } from '../../../src/state/store.js';
import { respCommand, SingleRedis, waitFor } from './redis-harness.js';

const binding = (aor: string, contact: string, owner: string): Binding => ({
  aor,
  contact,
  q: 1,
  expiresAtMs: Date.now() + 300_000,
  callId: `reg-${aor}`,
  cseq: 1,
  owner,
  updatedAtMs: Date.now(),
});

const dialog = (id: string, owner: string): DialogRecord => ({
  id,
  callId: id,
  fromTag: 'a',
  toTag: 'b',
  state: 'confirmed',
  createdAtMs: Date.now(),
  updatedAtMs: Date.now(),
  owner,
});

function node(url: string, nodeId: string, cluster: string) {
  const state = new RedisState({ url, nodeId, cluster, resyncRetryMs: 200 });
  return {
    state,
    location: new RedisLocationStore({ state }),
    dialogs: new RedisDialogStore({ state }),
    nonces: new RedisNonceCountStore({ state }),
    failures: new RedisAuthFailureStore({ state }),
    registry: new RedisNodeRegistry({ state }),
    async close() {
      await this.registry.close();
      await this.location.close();
      await this.dialogs.close();
      await this.state.close();
    },
  };
}

/** Runs `fn` and fails if it took longer than `maxMs`: nothing may wait on Redis. */
async function quick<T>(maxMs: number, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  expect(performance.now() - t0).toBeLessThan(maxMs);
  return r;
}

async function contactInRedis(port: number, cluster: string, aor: string): Promise<string | undefined> {
  const v = await respCommand(port, ['HGET', `tandem:${cluster}:loc:${aor}`, 'b:0']);
  return typeof v === 'string' ? (JSON.parse(v) as Binding).contact : undefined;
}

describe('Redis down and back', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('writes queue and reads come from the cache while Redis is killed; after the restart every accepted write is in Redis', async () => {
    const redis = await SingleRedis.start({ durable: true });
    cleanups.push(() => redis.stop());
    const cluster = `outage${process.pid}`;
    const n1 = node(redis.url, 'sip1', cluster);
    const n2 = node(redis.url, 'sip2', cluster);
    cleanups.push(() => n1.close(), () => n2.close());
    await waitFor('nodes connected', async () => n1.state.coherent && n2.state.coherent && n1.state.commands.ready && n2.state.commands.ready, 5000);

    // Before the outage: 50 AORs through node 1, read (and so cached) by node 2.
    for (let i = 0; i < 50; i++) await n1.location.setBindings(`sip:u${i}@d`, [binding(`sip:u${i}@d`, `sip:u${i}@before`, 'sip1')]);
    await n1.dialogs.put(dialog('d-before', 'sip1'));
    await n1.state.outbox.idle();
    for (let i = 0; i < 50; i++) expect((await n2.location.getBindings(`sip:u${i}@d`))[0]?.contact).toBe(`sip:u${i}@before`);
    expect((await n2.dialogs.get('d-before'))?.owner).toBe('sip1');
    n1.registry.start();
    n2.registry.start();
    await waitFor('registry lists both', async () => (await n1.registry.liveNodes()).length === 2, 3000, 50);
    const nonce = `n-${Date.now()}`;
    expect(await n1.nonces.accept(nonce, 1, 300)).toBe(true);

    await redis.kill();
    await waitFor('both nodes see Redis down', async () => !n1.state.commands.ready && !n2.state.commands.ready, 3000, 5);

    // During the outage nothing waits and nothing throws.
    await quick(50, async () => {
      for (let i = 0; i < 50; i++) await n1.location.setBindings(`sip:u${i}@d`, [binding(`sip:u${i}@d`, `sip:u${i}@during`, 'sip1')]);
      for (let i = 50; i < 250; i++) await n1.location.setBindings(`sip:u${i}@d`, [binding(`sip:u${i}@d`, `sip:u${i}@during`, 'sip1')]);
      await n1.location.setBindings('sip:u0@d', []);
      await n1.dialogs.put(dialog('d-during', 'sip1'));
      await n1.dialogs.delete('d-before');
    });
    // 250 binding sets (u0's removal replaces its write in place), the two dialog records, and
    // the owner index updates that go with them (added for a confirmed put, removed at delete).
    expect(n1.state.outbox.depth).toBe(250 + 2 + 2);
    // A miss waits for Redis only in the first seconds of its absence (a failover, see the next
    // test); past them, an outage: nothing waits.
    await new Promise((r) => setTimeout(r, 4100));
    await quick(50, async () => {
      // Node 1 answers from what it wrote; node 2 from what it had read.
      expect((await n1.location.getBindings('sip:u7@d'))[0]?.contact).toBe('sip:u7@during');
      expect(await n1.location.getBindings('sip:u0@d')).toEqual([]);
      expect((await n2.location.getBindings('sip:u7@d'))[0]?.contact).toBe('sip:u7@before');
      expect(await n2.location.getBindings('sip:never@d')).toEqual([]);
      expect((await n1.dialogs.get('d-during'))?.id).toBe('d-during');
      expect((await n2.dialogs.get('d-before'))?.id).toBe('d-before');
      expect(await n2.dialogs.get('d-during')).toBeUndefined();
      // The replay seen by node 1 before is still refused by node 1 (local answer).
      expect(await n1.nonces.accept(nonce, 1, 300)).toBe(false);
      expect(await n2.nonces.accept(nonce, 2, 300)).toBe(true);
      expect(n1.failures.recordFailure('203.0.113.9')).toBe(false);
      expect((await n1.registry.liveNodes()).length).toBe(2);
      expect(await n1.registry.heartbeat()).toBe(false);
    });
    expect(n1.location.size()).toBe(249);
    expect(n1.location.aorCount()).toBe(249);

    // Redis comes back (same port, its append-only file keeps what it had acknowledged).
    await redis.restart();
    await waitFor('outbox replayed', async () => n1.state.commands.ready && n1.state.outbox.depth === 0, 10_000, 20);
    expect(n1.state.outbox.stats.dropped).toBe(0);

    for (let i = 1; i < 250; i++) expect(await contactInRedis(redis.port, cluster, `sip:u${i}@d`)).toBe(`sip:u${i}@during`);
    expect(await contactInRedis(redis.port, cluster, 'sip:u0@d')).toBeUndefined();
    expect(await respCommand(redis.port, ['HGET', `tandem:${cluster}:loc:sip:u0@d`, '_del'])).toBe('1');
    expect(await respCommand(redis.port, ['HGET', `tandem:${cluster}:dlg:d-during`, '_owner'])).toBe('sip1');
    expect(await respCommand(redis.port, ['HGET', `tandem:${cluster}:dlg:d-before`, '_del'])).toBe('1');

    // Node 2 missed the invalidations: its resync drops what changed, and it reads the new state.
    await waitFor('node 2 resynced', async () => n2.state.resyncs > 0, 10_000, 20);
    expect((await n2.location.getBindings('sip:u7@d'))[0]?.contact).toBe('sip:u7@during');
    expect(await n2.location.getBindings('sip:u0@d')).toEqual([]);
    expect((await n2.location.getBindings('sip:u200@d'))[0]?.contact).toBe('sip:u200@during');
    expect(await n2.dialogs.get('d-before')).toBeUndefined();
    expect((await n2.dialogs.get('d-during'))?.owner).toBe('sip1');
  });

  it('a lookup of a user this node never saw, right after Redis died, waits for Redis to return and finds the user', async () => {
    const redis = await SingleRedis.start({ durable: true });
    cleanups.push(() => redis.stop());
    const cluster = `wait${process.pid}`;
    const n1 = node(redis.url, 'sip1', cluster);
    const n2 = node(redis.url, 'sip2', cluster);
    cleanups.push(() => n1.close(), () => n2.close());
    await waitFor('nodes connected', async () => n1.state.commands.ready && n2.state.commands.ready, 5000);
    await n1.location.setBindings('sip:late@d', [binding('sip:late@d', 'sip:late@phone', 'sip1')]);
    await n1.state.outbox.idle();
    await redis.kill();
    await waitFor('node 2 sees Redis down', async () => !n2.state.commands.ready, 3000, 5);
    // Node 2 never read this user: without Redis it would say "no bindings" (a false 480).
    const lookup = n2.location.getBindings('sip:late@d');
    await new Promise((r) => setTimeout(r, 800));
    await redis.restart();
    expect((await lookup)[0]?.contact).toBe('sip:late@phone');
  });

  it('a Redis restarted empty gets back the records each node owns', async () => {
    const redis = await SingleRedis.start({ durable: false });
    cleanups.push(() => redis.stop());
    const cluster = `empty${process.pid}`;
    const n1 = node(redis.url, 'sip1', cluster);
    cleanups.push(() => n1.close());
    await waitFor('node connected', async () => n1.state.coherent && n1.state.commands.ready, 5000);
    for (let i = 0; i < 20; i++) await n1.location.setBindings(`sip:e${i}@d`, [binding(`sip:e${i}@d`, `sip:e${i}@h`, 'sip1')]);
    await n1.dialogs.put(dialog('d-kept', 'sip1'));
    await n1.state.outbox.idle();
    expect(await contactInRedis(redis.port, cluster, 'sip:e3@d')).toBe('sip:e3@h');
    // A key no node owns: its absence after the restart proves Redis came back empty (the node's
    // own records may already be written back by the time the test reads them).
    expect(await respCommand(redis.port, ['SET', 'tandem:test:marker', '1'])).toBe('OK');

    await redis.restart();
    expect(await respCommand(redis.port, ['GET', 'tandem:test:marker'])).toBeNull();
    await waitFor('records written back', async () => (await contactInRedis(redis.port, cluster, 'sip:e19@d')) === 'sip:e19@h', 10_000, 50);
    for (let i = 0; i < 20; i++) expect(await contactInRedis(redis.port, cluster, `sip:e${i}@d`)).toBe(`sip:e${i}@h`);
    expect(await respCommand(redis.port, ['HGET', `tandem:${cluster}:dlg:d-kept`, '_owner'])).toBe('sip1');
    expect(n1.location.size()).toBe(20);
  });

  it('a Redis that hangs with its connections open (SIGSTOP): calls fail within the timeout, and the client is back after SIGCONT', async () => {
    const redis = await SingleRedis.start();
    cleanups.push(() => redis.stop());
    const conn = new RedisConnection(redis.url, { commandTimeoutMs: 300, probeIntervalMs: 200, connectTimeoutMs: 300 });
    cleanups.push(() => conn.close());
    await waitFor('connected', async () => conn.ready, 3000);
    expect(await conn.call('SET', 'k', 'v')).toBe('OK');

    redis.server!.signal('SIGSTOP');
    const t0 = performance.now();
    await expect(conn.call('GET', 'k')).rejects.toMatchObject({ code: 'STATE_ERR_REDIS_TIMEOUT' });
    await expect(conn.exec([['get', 'k']])).rejects.toMatchObject({ code: 'STATE_ERR_REDIS_TIMEOUT' });
    expect(performance.now() - t0).toBeLessThan(1000);
    // Two timeouts in a row (or the probe) drop the connection; calls then fail at once.
    await waitFor('connection dropped', async () => !conn.ready, 2000, 10);
    const t1 = performance.now();
    await expect(conn.call('GET', 'k')).rejects.toMatchObject({ code: 'STATE_ERR_REDIS_DOWN' });
    expect(performance.now() - t1).toBeLessThan(20);

    redis.server!.signal('SIGCONT');
    await waitFor('reconnected', async () => conn.ready, 5000, 20);
    expect(await conn.call('GET', 'k')).toBe('v');
  });
});
