/**
 * Redis failing under a two-node signalling cluster: established calls go on, new calls are
 * served from what the nodes know, and nothing written while Redis was away is lost.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, respCommand, SentinelGroup, SingleRedis, waitFor } from '../state/redis-harness.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';
import { autoAnswer } from './helpers.js';

const DOMAIN = 'cluster.test';
const VIP = '127.0.0.10';
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\ncarol,carol-secret\n');
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function twoNodes(redisUrl: string): Promise<{ port: number; nodes: TandemProcess[] }> {
  const port = await freePort();
  const nodes: TandemProcess[] = [];
  for (const [name, addr] of [['sip1', '127.0.0.2'], ['sip2', '127.0.0.3']] as const) {
    const t = await startTandem(['--node-id', name, '--sip', `udp:${addr}:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redisUrl, '--domain', DOMAIN, '--users', users, '--no-media'], 30_000);
    nodes.push(t);
    cleanups.push(() => t.stop('SIGKILL').then(() => undefined));
  }
  return { port, nodes };
}

async function ua(user: string, host: string, port: number): Promise<TestUa> {
  const u = await TestUa.create({ transport: 'udp', proxy: { host, port }, user, password: `${user}-secret`, domain: DOMAIN });
  cleanups.push(async () => u.close());
  return u;
}

async function call(caller: TestUa, to: string): Promise<TestCall> {
  const c = new TestCall(caller, to);
  let res: SipResponse = await c.invite({ sdp: '' });
  if (res.status < 200) res = await caller.waitResponse(c.callId, 'INVITE', (s) => s >= 200, 8000);
  if (res.status !== 200) throw new Error(`call to ${to}: ${res.status}`);
  c.learn(res);
  c.ack2xx();
  return c;
}

/** BYE retransmitted (Timer E) until a final response; its status. */
async function bye(c: TestCall): Promise<number> {
  c.cseq++;
  const text = c.inDialog('BYE', c.cseq);
  for (let i = 0; i < 16; i++) {
    c.ua.send(text);
    try {
      return (await c.ua.waitResponse(c.callId, 'BYE', (s) => s >= 200, 500)).status;
    } catch {
      /* retransmit */
    }
  }
  return 0;
}

describe('signalling cluster with Redis failing', () => {
  it('Sentinel: the primary killed mid-call; established calls end normally, new calls connect during and after the failover', async () => {
    const group = await SentinelGroup.start({ replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
    cleanups.push(() => group.stop());
    await group.waitHealthy(15_000);
    const { port } = await twoNodes(group.url);
    const bob = await ua('bob', VIP, port);
    expect((await bob.register()).status).toBe(200);
    autoAnswer(bob);
    const alice = await ua('alice', VIP, port);
    const calls: TestCall[] = [];
    for (let i = 0; i < 20; i++) calls.push(await call(alice, 'bob'));

    const killedAt = Date.now();
    await group.killPrimary();
    // While Sentinel has not named a new primary yet: half the calls end, a new call connects.
    const during = await Promise.all(calls.slice(0, 10).map(bye));
    expect(during).toEqual(Array(10).fill(200));
    const duringCall = await call(alice, 'bob');
    expect(await bye(duringCall)).toBe(200);
    const stillFailingOver = group.switchedAt(killedAt) === undefined;

    await waitFor('a new primary', async () => group.switchedAt(killedAt), 15_000);
    // After the failover: the other half ends, new calls and registrations work.
    const after = await Promise.all(calls.slice(10).map(bye));
    expect(after).toEqual(Array(10).fill(200));
    const carol = await ua('carol', VIP, port);
    // As a phone does: retransmitted until answered. Once in CI (2 cores, the whole suite at
    // once) the first REGISTER after the switch went unanswered for the test UA's 5 s.
    expect((await carol.register(3600, { retransmit: true, timeoutMs: 15_000 })).status).toBe(200);
    autoAnswer(carol);
    const fresh = await call(alice, 'carol');
    expect(await bye(fresh)).toBe(200);
    console.log(`sentinel failover: ${stillFailingOver ? 'calls ended and connected before the switch' : 'switch came before the checks'}; carol registered after it`);
  }, 120_000);

  // Under load (three copies of this test at once) it failed 3 times in 15 runs before the resync
  // waited for the instance check: a resync started by the subscriber's reconnect dropped the
  // owner's cached binding as deleted before the check told that Redis had come back empty.
  it('Redis stopped and restarted empty: what was written meanwhile and before is back in Redis', { timeout: 90_000 }, async () => {
    const redis = await SingleRedis.start();
    cleanups.push(() => redis.stop());
    const { port, nodes } = await twoNodes(redis.url);
    const bob = await ua('bob', '127.0.0.2', port);
    expect((await bob.register()).status).toBe(200);
    autoAnswer(bob);
    await redis.kill();
    // Redis is away: a registration through the other node, and a call through the VIP.
    const carol = await ua('carol', '127.0.0.3', port);
    expect((await carol.register()).status).toBe(200);
    autoAnswer(carol);
    const alice = await ua('alice', VIP, port);
    const during = await call(alice, 'bob');
    await redis.restart();
    const aorKeys = async () => ((await respCommand(redis.port, ['KEYS', 'tandem:tandem:loc:*'])) as string[]).length;
    await waitFor('both registrations back in Redis', async () => ((await aorKeys()) >= 2 ? true : undefined), 15_000).catch(async (err: Error) => {
      // What the nodes said about Redis tells a missed resync from a slow one.
      const said = nodes.map((n) => n.stderr.join('').split('\n').filter((l) => l.includes('redis') || l.includes('resync')).slice(-16).join('\n'));
      const keys = await respCommand(redis.port, ['KEYS', 'tandem:*']).catch((e: Error) => e.message);
      throw new Error(`${err.message}; keys in Redis: ${JSON.stringify(keys)}\n${said.join('\n---\n')}`);
    });
    // The call set up while Redis was away ends normally; both users are reachable through either node.
    expect(await bye(during)).toBe(200);
    for (const via of ['127.0.0.2', '127.0.0.3']) {
      const caller = await ua('alice', via, port);
      for (const callee of ['bob', 'carol']) expect(await bye(await call(caller, callee))).toBe(200);
    }
  });
});
