/**
 * Published experiment A on one machine: two `tandem start` nodes share state in a real Redis and
 * a virtual address moved by a lease; calls are set up through the VIP, the holder is SIGKILLed,
 * and every call's BYE completes through the survivor, which deletes each call's media on the
 * media node that holds it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autoAnswer, mediaSessions } from './helpers.js';
import { respCommand, SingleRedis, freePort, waitFor } from '../state/redis-harness.js';
import { randomRtpRange, spawnMediaNode, type SpawnedMediaNode } from '../media/media-harness.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';

const DOMAIN = 'cluster.test';
const VIP = '127.0.0.10';
const CALLS = 200;
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\n');

let redis: SingleRedis;
let port: number;
const media: SpawnedMediaNode[] = [];
const nodes = new Map<string, TandemProcess>();
const uas: TestUa[] = [];

async function startNode(name: string, address: string): Promise<TandemProcess> {
  const t = await startTandem([
    '--node-id', name, '--sip', `udp:${address}:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url,
    '--domain', DOMAIN, '--users', users, ...media.flatMap((m) => ['--media-ng', `127.0.0.1:${m.ngPort}`]), '--admin', '127.0.0.1:0',
  ]);
  nodes.set(name, t);
  return t;
}

function adminUrl(t: TandemProcess): string {
  return /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''))![1]!;
}

async function holder(): Promise<string> {
  return waitFor('a VIP holder', async () => {
    const v = await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`]);
    return typeof v === 'string' ? v.split('|')[0] : undefined;
  }, 5000);
}

const sessionsOn = (m: SpawnedMediaNode): Promise<number> => mediaSessions(m.ngPort);

async function ua(user: string, via: string): Promise<TestUa> {
  const u = await TestUa.create({ transport: 'udp', proxy: { host: via, port }, user, password: `${user}-secret`, domain: DOMAIN });
  uas.push(u);
  return u;
}

beforeAll(async () => {
  redis = await SingleRedis.start();
  port = await freePort();
  for (let i = 0; i < 2; i++) media.push(await spawnMediaNode(['--ng', '127.0.0.1:0', '--interface', '127.0.0.1', '--rtp-ports', randomRtpRange(1000), '--workers', '1']));
  await startNode('sip1', '127.0.0.2');
  await startNode('sip2', '127.0.0.3');
}, 60_000);

afterAll(async () => {
  for (const u of uas) u.close();
  for (const t of nodes.values()) await t.stop('SIGKILL');
  for (const m of media) await m.stop();
  await redis?.stop();
});

describe('signalling cluster: any node continues any call', () => {
  it('a user registered through one node is reached through the other (shared location, shared nonces)', async () => {
    const bobOn1 = await ua('bob', '127.0.0.2');
    expect((await bobOn1.register()).status).toBe(200);
    const alice = await ua('alice', '127.0.0.3');
    const call = new TestCall(alice, 'bob');
    const invP = bobOn1.waitRequest('INVITE', 5000);
    const first = call.invite({ sdp: SAMPLE_SDP(40100) });
    const inv = await invP;
    bobOn1.send(bobOn1.response(inv, 486, 'Busy Here', { toTag: 'busy' }));
    const res = await first;
    expect(res.status === 486 || (await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200)).status === 486).toBe(true);
  });

  it('a REGISTER accepted by one node and replayed to the other is refused (nonce counts are shared)', async () => {
    const on1 = await ua('alice', '127.0.0.2');
    const on2 = await ua('alice', '127.0.0.3');
    const uri = `sip:${DOMAIN}`;
    const mk = (cseq: number, auth?: string) =>
      on1.request({ method: 'REGISTER', uri, callId: on1.callIdReg, cseq, fromTag: on1.regTag, to: on1.aor, headers: ['Expires: 60', ...(auth ? [`Authorization: ${auth}`] : [])] });
    on1.send(mk(1));
    const ch = await on1.waitResponse(on1.callIdReg, 'REGISTER');
    expect(ch.status).toBe(401);
    const signed = mk(2, on1.answer(ch, 'WWW-Authenticate', 'REGISTER', uri));
    on1.send(signed);
    expect((await on1.waitResponse(on1.callIdReg, 'REGISTER')).status).toBe(200);
    // The same bytes to the other node: its own memory never saw the nonce, the cluster did.
    on2.send(signed);
    expect((await on2.waitResponse(on1.callIdReg, 'REGISTER')).status).toBe(401);
  });

  it(`${CALLS} calls through the VIP survive the SIGKILL of the node holding it: every BYE completes through the survivor, media deleted where it lives`, async () => {
    const bob = await ua('bob', VIP);
    expect((await bob.register()).status).toBe(200);
    autoAnswer(bob, { sdpPort: 42000 });
    const alice = await ua('alice', VIP);
    const calls: TestCall[] = [];
    for (let i = 0; i < CALLS; i++) {
      const call = new TestCall(alice, 'bob');
      let res: SipResponse = await call.invite({ sdp: SAMPLE_SDP(40000 + 2 * (i % 1000)), retransmit: true });
      if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200);
      expect(res.status).toBe(200);
      call.learn(res);
      call.ack2xx();
      calls.push(call);
    }
    const before = await Promise.all(media.map(sessionsOn));
    expect(before[0]! + before[1]!).toBe(CALLS);
    // Both media nodes carry calls (round-robin), so "deleted where it lives" means something.
    expect(Math.min(...before)).toBeGreaterThan(0);

    const victim = await holder();
    const killedAt = Date.now();
    await nodes.get(victim)!.stop('SIGKILL');
    const survivor = victim === 'sip1' ? 'sip2' : 'sip1';
    const movedIn = await waitFor('the VIP lease to move', async () => {
      const v = await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`]);
      return typeof v === 'string' && v.startsWith(`${survivor}|`) ? Date.now() - killedAt : undefined;
    }, 5000, 10);

    // Every BYE, sent to the VIP along the route set the dead node issued, is answered 200: half
    // at once (the survivor has not claimed the dead node's dialogs yet), half after the claim.
    const half = CALLS / 2;
    const byes = await Promise.all(calls.slice(0, half).map(async (c, i) => {
      await new Promise((r) => setTimeout(r, i * 2));
      return (await retryBye(c)).status;
    }));
    const tookMs = Date.now() - killedAt;
    // The dead node's heartbeat lapses (3 s): the survivor claims the rest, with their epoch bumped.
    const status = async () => (await (await fetch(`${adminUrl(nodes.get(survivor)!)}/signalling/status`)).json()) as { dialogs: { confirmed: number } };
    await waitFor('the survivor to claim the dead node\'s dialogs', async () => ((await status()).dialogs.confirmed === half ? true : undefined), 10_000, 100);
    expect(await respCommand(redis.port, ['SCARD', `tandem:tandem:owned:${survivor}`])).toBe(half);
    expect(await respCommand(redis.port, ['EXISTS', `tandem:tandem:owned:${victim}`])).toBe(0);
    const claimed = JSON.parse(String(await respCommand(redis.port, ['HGET', `tandem:tandem:dlg:${calls[half]!.callId}`, 'rec']))) as { owner: string; epoch: number; creator: string };
    expect(claimed).toMatchObject({ owner: survivor, epoch: 1, creator: victim });
    byes.push(...(await Promise.all(calls.slice(half).map(async (c) => (await retryBye(c)).status))));
    expect(byes.filter((s) => s === 200)).toHaveLength(CALLS);
    expect((await status()).dialogs.confirmed).toBe(0);
    await waitFor('media sessions deleted', async () => (await Promise.all(media.map(sessionsOn))).every((n) => n === 0) || undefined, 5000);
    // The dialogs' shared records are gone too.
    const keys = (await respCommand(redis.port, ['KEYS', 'tandem:tandem:dlg:*'])) as string[];
    expect(keys.length).toBeGreaterThanOrEqual(CALLS);
    const live = [];
    for (const k of keys) if ((await respCommand(redis.port, ['HEXISTS', k, '_del'])) !== 1) live.push(k);
    expect(live).toEqual([]);
    console.log(`takeover: lease moved ${movedIn} ms after the SIGKILL of ${victim}; ${half} BYEs completed ${tookMs} ms after it`);
    // Accounting: exactly one record per call, written by the survivor, naming the dead node as
    // the one that set the call up.
    const entries = (await respCommand(redis.port, ['XRANGE', 'tandem:tandem:cdr', '-', '+'])) as Array<[string, string[]]>;
    const records = entries.map(([, f]) => JSON.parse(f[1]!) as { callId: string; setupNode: string; endNode: string; endReason: string; answerMs?: number; durationSec: number });
    for (const c of calls) {
      const mine = records.filter((r) => r.callId === c.callId);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ setupNode: victim, endNode: survivor, endReason: 'bye' });
      expect(mine[0]!.answerMs).toBeGreaterThan(0);
    }

    // New calls connect through the survivor.
    const fresh = new TestCall(alice, 'bob');
    let res = await fresh.invite({ sdp: SAMPLE_SDP(41000) });
    if (res.status < 200) res = await alice.waitResponse(fresh.callId, 'INVITE', (s) => s >= 200);
    expect(res.status).toBe(200);
    fresh.learn(res);
    fresh.ack2xx();
    expect((await fresh.bye()).status).toBe(200);
  }, 90_000);
});

/** BYE with Timer E style retransmission while the VIP moves (the first tries may go nowhere). */
async function retryBye(c: TestCall): Promise<SipResponse> {
  c.cseq++;
  const text = c.inDialog('BYE', c.cseq);
  for (let attempt = 0; attempt < 12; attempt++) {
    c.ua.send(text);
    try {
      return await c.ua.waitResponse(c.callId, 'BYE', (s) => s >= 200, 500);
    } catch {
      /* retransmit */
    }
  }
  throw new Error(`BYE for ${c.callId} never answered`);
}
