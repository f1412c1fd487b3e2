/**
 * A caller hears ringing only once a peer could finish the call: provisional responses to an
 * INVITE (our 100 Trying included) wait until the INVITE's shared record is in Redis. Were they
 * sent first, a node killed in between would leave a caller who stopped retransmitting and a
 * survivor with no record to relay the answer by. Redis is frozen (SIGSTOP) to hold the record.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bdecodePrefix, bencodeWithPrefix, type BDict } from '../../../src/ng/bencode.js';
import type { SipRequest } from '../../../src/sip/message/sip-message.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import { freePort, respCommand, SingleRedis, waitFor } from '../state/redis-harness.js';

const DOMAIN = 'durable.test';
const VIP = '127.0.0.13';
let redis: SingleRedis;
let node: TandemProcess;
let slowMediaNode: TandemProcess | undefined;
let slowNg: dgram.Socket | undefined;
let port: number;
const uas: TestUa[] = [];

beforeAll(async () => {
  redis = await SingleRedis.start();
  port = await freePort();
  // A long cap, so the test sees the hold end with Redis, not with the cap.
  const config = tempFile('durable.yaml', 'signalling:\n  proxy:\n    earlyDurableWaitMs: 20000\n');
  node = await startTandem(['--config', config, '--node-id', 'sip1', '--sip', `udp:127.0.0.14:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url, '--domain', DOMAIN, '--no-auth', '--no-media'], 30_000);
}, 60_000);

afterAll(async () => {
  for (const u of uas) u.close();
  redis?.server?.signal('SIGCONT');
  slowNg?.close();
  await slowMediaNode?.stop('SIGKILL');
  await node?.stop('SIGKILL');
  await redis?.stop();
});

describe('ringing is relayed once the call is shared', () => {
  it('no 100 or 180 reaches the caller while the INVITE record cannot reach Redis; both come once it does', async () => {
    const mk = async (user: string) => {
      const u = await TestUa.create({ transport: 'udp', proxy: { host: VIP, port }, user, password: 'x', domain: DOMAIN });
      uas.push(u);
      return u;
    };
    const bob = await mk('bob');
    expect((await bob.register()).status).toBe(200);
    const alice = await mk('alice');
    let stop = false;
    const seen = new Set<string>();
    void (async () => {
      while (!stop) {
        let req: SipRequest;
        try {
          req = (await bob.waitFor((m) => m.isRequest() && (m as SipRequest).method === 'INVITE', 60_000)) as SipRequest;
        } catch {
          return;
        }
        seen.add(req.callId);
        bob.send(bob.response(req, 180, 'Ringing', { toTag: `r${req.callId.slice(0, 8)}` }));
      }
    })();

    // Redis answering: ringing as usual.
    const first = new TestCall(alice, 'bob');
    expect((await first.invite({ noAuth: true })).status).toBe(180);

    redis.server!.signal('SIGSTOP');
    const call = new TestCall(alice, 'bob');
    const ringing = call.invite({ noAuth: true });
    await waitFor('the INVITE at the callee', async () => seen.has(call.callId) || undefined, 5000);
    // The callee rang; the record of the INVITE is stuck on its way to Redis: the caller hears nothing.
    await new Promise((r) => setTimeout(r, 700));
    expect(alice.received.filter((m) => !m.isRequest() && m.callId === call.callId)).toEqual([]);

    redis.server!.signal('SIGCONT');
    expect((await ringing).status).toBe(180);
    const statuses = alice.received.filter((m) => !m.isRequest() && m.callId === call.callId).map((m) => (m as unknown as { status: number }).status);
    expect(statuses).toContain(100);
    // And the record a peer would continue the call from is there.
    const keys = await waitFor('the INVITE record in Redis', async () => {
      const k = await respCommand(redis.port, ['KEYS', `*${call.callId}*`]);
      return Array.isArray(k) && k.length ? k : undefined;
    }, 5000);
    expect(keys.length).toBeGreaterThan(0);
    stop = true;
  }, 60_000);
});

describe('a 100 Trying never quenches a caller before the INVITE has left', () => {
  it('with the offer to the media relay slower than the hold, the 100 waits for the INVITE to go out', async () => {
    // An ng peer on a real socket that answers pings at once and offers after 350 ms: the INVITE
    // cannot leave before then. Were the 100 sent when the 100 ms hold ran out, a node dying in
    // those 250 ms would leave a caller who stopped retransmitting and a callee who never rang.
    slowNg = dgram.createSocket('udp4');
    await new Promise<void>((r) => slowNg!.bind(0, '127.0.0.1', () => r()));
    slowNg.on('message', (msg, from) => {
      const space = msg.indexOf(0x20);
      if (space < 0) return;
      const cookie = msg.subarray(0, space).toString();
      const d = bdecodePrefix(msg, space + 1);
      if (!d.ok) return;
      const cmd = String((d.value.value as BDict)['command'] ?? '');
      const sdp = (d.value.value as BDict)['sdp'];
      const reply = cmd === 'ping' ? { result: 'pong' } : sdp ? { result: 'ok', sdp: sdp.toString() } : { result: 'ok' };
      setTimeout(() => slowNg?.send(bencodeWithPrefix(`${cookie} `, reply), from.port, from.address), cmd === 'offer' ? 350 : 0);
    });
    const slowPort = await freePort();
    const slowVip = '127.0.0.15';
    slowMediaNode = await startTandem(
      ['--node-id', 'sip2', '--sip', `udp:127.0.0.16:${slowPort}`, '--vip', slowVip, '--takeover', 'lease', '--redis', redis.url, '--domain', 'slow.test', '--no-auth', '--workers', '1', '--media-ng', `127.0.0.1:${slowNg.address().port}`],
      30_000,
    );
    const mk = async (user: string) => {
      const u = await TestUa.create({ transport: 'udp', proxy: { host: slowVip, port: slowPort }, user, password: 'x', domain: 'slow.test' });
      uas.push(u);
      return u;
    };
    const bob = await mk('bob');
    expect((await bob.register()).status).toBe(200);
    const alice = await mk('alice');
    const call = new TestCall(alice, 'bob');
    const ringing = call.invite({ noAuth: true });
    const invite = (await bob.waitFor((m) => m.isRequest() && (m as SipRequest).method === 'INVITE' && m.callId === call.callId, 10_000)) as SipRequest;
    // Read as the INVITE lands (no other socket event runs in between): the caller heard nothing yet.
    const heardBefore = alice.received.filter((m) => !m.isRequest() && m.callId === call.callId).map((m) => (m as unknown as { status: number }).status);
    expect(heardBefore).toEqual([]);
    bob.send(bob.response(invite, 180, 'Ringing', { toTag: 'slow1' }));
    expect((await ringing).status).toBe(180);
    const heard = alice.received.filter((m) => !m.isRequest() && m.callId === call.callId).map((m) => (m as unknown as { status: number }).status);
    expect(heard).toContain(100);
  }, 60_000);
});
