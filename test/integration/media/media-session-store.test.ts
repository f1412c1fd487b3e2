/**
 * The Redis side of media session replication on a real redis-server: versions and lease epochs
 * fence writes (a late or fenced-off write never replaces a newer record), removals leave a
 * tombstone and leave the index, every applied write is published with its record, and a replay
 * lists exactly the live calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaSessionStore, type MediaRecordMessage } from '../../../src/state/redis/media-session-store.js';
import { RedisState } from '../../../src/state/redis/redis-state.js';
import { SingleRedis, respCommand, waitFor } from '../state/redis-harness.js';

let redis: SingleRedis;
const states: RedisState[] = [];
beforeAll(async () => {
  redis = await SingleRedis.start();
});
afterAll(async () => {
  for (const s of states) await s.close();
  await redis?.stop();
});

function store(nodeId: string, now?: () => number): MediaSessionStore {
  const state = new RedisState({ url: redis.url, nodeId, cluster: 'st', ...(now ? { now } : {}) });
  states.push(state);
  return new MediaSessionStore({ state });
}

const VIP = '192.0.2.1';

describe('MediaSessionStore', () => {
  it('writes, publishes, lists and removes records; fences by version and lease epoch', async () => {
    const a = store('a');
    // b's clock is far ahead: its versions are always higher, only the epoch can fence it.
    const b = store('b', () => Date.now() + 3_600_000);
    const seen: MediaRecordMessage[] = [];
    b.onMessage((m) => m && seen.push(m));
    await waitFor('both connected', async () => (a.state.commands.ready && b.state.subscriber.ready) || undefined, 5000);

    a.put(VIP, 'c1', 'rec-1', 1);
    a.put(VIP, 'c2', 'rec-2', 1);
    await a.state.outbox.idle();
    await waitFor('both published', async () => (seen.length >= 2) || undefined, 2000);
    expect(seen.map((m) => [m.callId, m.owner, m.epoch, m.rec])).toEqual([['c1', 'a', 1, 'rec-1'], ['c2', 'a', 1, 'rec-2']]);
    expect([...(await b.index(VIP)).keys()].sort()).toEqual(['c1', 'c2']);

    // Takeover by b with epoch 2: its writes win; a's later writes (epoch 1) are refused, not published.
    b.put(VIP, 'c1', 'rec-1-b', 2);
    await b.state.outbox.idle();
    a.put(VIP, 'c1', 'rec-1-late', 1);
    await a.state.outbox.idle();
    a.remove(VIP, 'c1', 1);
    await a.state.outbox.idle();
    expect(a.stats.stale).toBe(2);
    const [c1] = await a.fetch(VIP, ['c1']);
    expect(c1).toMatchObject({ callId: 'c1', owner: 'b', epoch: 2, rec: 'rec-1-b', deleted: false });

    // A newer holder (epoch 3) whose clock is an hour behind: its lower versions still win.
    const slow = new MediaSessionStore({ state: new RedisState({ url: redis.url, nodeId: 'c', cluster: 'st', now: () => Date.now() - 3_600_000 }) });
    states.push(slow.state);
    await waitFor('connected', async () => slow.state.commands.ready || undefined, 5000);
    slow.put(VIP, 'c3', 'rec-3-b', 2);
    await slow.state.outbox.idle();
    b.put(VIP, 'c3', 'rec-3-b2', 2); // same epoch, newer version: wins
    await b.state.outbox.idle();
    slow.put(VIP, 'c3', 'rec-3-c', 3); // higher epoch, older version: wins
    await slow.state.outbox.idle();
    expect((await a.fetch(VIP, ['c3']))[0]).toMatchObject({ owner: 'c', epoch: 3, rec: 'rec-3-c' });
    b.put(VIP, 'c3', 'rec-3-late', 2); // the old holder, newer version, lower epoch: refused
    await b.state.outbox.idle();
    expect((await a.fetch(VIP, ['c3']))[0]?.rec).toBe('rec-3-c');
    slow.remove(VIP, 'c3', 3);
    await slow.state.outbox.idle();

    // A write replayed late with an older version does not replace the newer one either.
    const before = seen.length;
    const older = new MediaSessionStore({ state: new RedisState({ url: redis.url, nodeId: 'a2', cluster: 'st', now: () => 1000 }) });
    states.push(older.state);
    older.put(VIP, 'c2', 'rec-2-old', 1);
    await waitFor('connected', async () => older.state.commands.ready || undefined, 5000);
    await older.state.outbox.idle();
    expect(older.stats.stale).toBe(1);
    expect((await a.fetch(VIP, ['c2']))[0]?.rec).toBe('rec-2');

    // Removal: a tombstone, out of the index, published without a record.
    b.remove(VIP, 'c1', 2);
    await b.state.outbox.idle();
    const [gone] = await a.fetch(VIP, ['c1']);
    expect(gone).toMatchObject({ deleted: true, rec: undefined });
    expect([...(await a.index(VIP)).keys()]).toEqual(['c2']);
    expect(Number(await respCommand(redis.port, ['PTTL', `tandem:st:msess:${VIP}:c1`]))).toBeLessThanOrEqual(60_000);
    await waitFor('the removal published', async () => seen.slice(before).some((m) => m.callId === 'c1' && m.rec === undefined) || undefined, 2000);

    // An index entry whose hash lapsed is read as version 0 and taken out of the index.
    await respCommand(redis.port, ['ZADD', `tandem:st:msess-index:${VIP}`, Date.now(), 'lapsed']);
    const [lapsed] = await a.fetch(VIP, ['lapsed']);
    expect(lapsed?.version).toBe(0);
    expect([...(await a.index(VIP)).keys()]).toEqual(['c2']);
  }, 30_000);
});
