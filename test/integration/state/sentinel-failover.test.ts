/**
 * The client against a real Sentinel deployment: 1 primary + 1 replica + 3 Sentinels
 * (down-after-milliseconds 1000, failover-timeout 2000). The primary is SIGKILLed 20 times in a
 * row (each killed server comes back as a replica, so there is always one to promote); after
 * every kill the client must write again within Sentinel's failover time + 1 s.
 *
 * Per kill: "switch" is kill -> the first `+switch-master` a Sentinel publishes; "write" is
 * kill -> the first SET the client gets acknowledged. Meanwhile a location store writes through
 * its outbox all along: nothing it accepted may be dropped.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RedisConnection } from '../../../src/state/redis/redis-connection.js';
import { RedisLocationStore } from '../../../src/state/redis/redis-location-store.js';
import { RedisState } from '../../../src/state/redis/redis-state.js';
import { respCommand, SentinelGroup, waitFor } from './redis-harness.js';

const KILLS = 20;

function spread(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  return `${s[0]} / ${s[Math.floor(s.length / 2)]} / ${s[s.length - 1]} ms`;
}

describe('Redis Sentinel failover', () => {
  let group: SentinelGroup | undefined;
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    await group?.stop();
  });

  it(`writes again within Sentinel's failover time + 1 s after each of ${KILLS} SIGKILLs of the primary`, async () => {
    const deadline = Date.now() + 165_000;
    group = await SentinelGroup.start({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
    const g = group;
    const conn = new RedisConnection(g.url, { name: 'failover-test' });
    closers.push(() => conn.close());
    const state = new RedisState({ url: g.url, nodeId: 'writer', cluster: `failover${process.pid}` });
    const location = new RedisLocationStore({ state });
    closers.push(() => state.close(0), () => location.close());
    await waitFor('client connected', async () => conn.ready && state.commands.ready, 10_000);

    // Background writes through the outbox for the whole run.
    let writes = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const n = writes++;
        await location.setBindings('sip:load@example.com', [
          { aor: 'sip:load@example.com', contact: `sip:load@192.0.2.1;n=${n}`, q: 1, expiresAtMs: Date.now() + 600_000, callId: 'c', cseq: n, updatedAtMs: Date.now() },
        ]);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const switchMs: number[] = [];
    const writeMs: number[] = [];
    for (let i = 1; i <= KILLS; i++) {
      expect(Date.now()).toBeLessThan(deadline);
      await g.waitElectionBackoff();
      await g.waitHealthy(30_000);
      const t0 = Date.now();
      const killed = await g.killPrimary();
      let wroteAt = 0;
      while (Date.now() - t0 < 20_000) {
        try {
          await conn.call('SET', 'tandem:failover-test:probe', String(i));
          wroteAt = Date.now();
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      const switchedAt = await waitFor('+switch-master', async () => g.switchedAt(t0), 10_000, 5);
      const sw = switchedAt - t0;
      const wr = wroteAt ? wroteAt - t0 : Infinity;
      console.log(`kill ${i}: primary ${killed} -> ${conn.address}; switch ${sw} ms, write ${wr} ms (${wr - sw} ms after the switch)`);
      expect(wroteAt, `kill ${i}: no write within 20 s`).toBeGreaterThan(0);
      expect(wr, `kill ${i}: wrote ${wr} ms after the kill, switch after ${sw} ms`).toBeLessThanOrEqual(sw + 1000);
      switchMs.push(sw);
      writeMs.push(wr);
      const primary = Number(conn.address!.split(':')[1]);
      await g.restartAsReplica(killed, primary);
    }
    writing = false;
    await writer;
    console.log(`${KILLS} kills: Sentinel switch ${spread(switchMs)}; client writes again ${spread(writeMs)} (min / median / max)`);

    // The outbox lost nothing it accepted, and the last write is the one Redis holds.
    await waitFor('outbox drained', async () => state.outbox.depth === 0, 10_000);
    expect(state.outbox.stats.dropped).toBe(0);
    expect(state.outbox.stats.accepted).toBe(writes);
    const primary = Number(conn.address!.split(':')[1]);
    const last = await respCommand(primary, ['HGET', `tandem:failover${process.pid}:loc:sip:load@example.com`, 'b:0']);
    expect(JSON.parse(String(last)).contact).toBe(`sip:load@192.0.2.1;n=${writes - 1}`);
  }, 170_000);
});
