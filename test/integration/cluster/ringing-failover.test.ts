/**
 * Serial failover goes on after the node that started it dies: the first PBX is silent, the
 * holder of the VIP is SIGKILLed before fr_timer; the survivor claims the ringing call, tries the
 * first PBX again on the same branch, and after fr_timer the second PBX, whose answer reaches the
 * caller.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { SipRequest } from '../../../src/sip/message/sip-message.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import { freePort, respCommand, SingleRedis, waitFor } from '../state/redis-harness.js';

const DOMAIN = 'fo.test';
const VIP = '127.0.0.12';
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe('serial failover survives the node that started it', () => {
  it('first PBX silent, holder SIGKILLed before fr_timer: the survivor fails over to the second PBX and the call connects', async () => {
    const redis = await SingleRedis.start();
    cleanups.push(() => redis.stop());
    const port = await freePort();
    const mk = async (user: string, host: string) => {
      const u = await TestUa.create({ transport: 'udp', proxy: { host, port }, user, password: `${user}-secret`, domain: DOMAIN });
      cleanups.push(async () => u.close());
      return u;
    };
    // Two PBXs: plain sockets that see what the proxy sends them (pbx2 answers, pbx1 never does).
    const pbx1 = await mk('pbx', VIP);
    const pbx2 = await mk('pbx', VIP);
    const users = tempFile('users.csv', 'alice,alice-secret\n');
    const cfg = tempFile(
      'fo.yaml',
      `dispatcher:\n  sets:\n    pbx:\n      algorithm: priority\n      destinations:\n        - uri: sip:127.0.0.1:${pbx1.port}\n          priority: 0\n        - uri: sip:127.0.0.1:${pbx2.port}\n          priority: 1\n` +
        `  probing:\n    enabled: false\n  failover:\n    frTimerMs: 1500\n  routes:\n    - prefix: "9"\n      set: pbx\n`,
    );
    const nodes = new Map<string, TandemProcess>();
    for (const [name, addr] of [['sip1', '127.0.0.6'], ['sip2', '127.0.0.7']] as const) {
      const t = await startTandem(['--config', cfg, '--node-id', name, '--sip', `udp:${addr}:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url, '--domain', DOMAIN, '--users', users, '--no-media'], 30_000);
      nodes.set(name, t);
      cleanups.push(() => t.stop('SIGKILL').then(() => undefined));
    }
    const alice = await mk('alice', VIP);
    const call = new TestCall(alice, '9123');
    const firstP = pbx1.waitRequest('INVITE', 5000, call.callId);
    const inviteP = call.invite({ sdp: SAMPLE_SDP(44000) });
    const first = await firstP;
    // The kill comes once the INVITE's record is in Redis (a node killed within the outbox's
    // ~5 ms takes the call with it: a documented limit).
    await waitFor('the INVITE\'s record in Redis', async () => (String(await respCommand(redis.port, ['HGET', `tandem:tandem:dlg:${call.callId}`, 'rec'])).includes('"request"') ? true : undefined), 5000, 10);
    const victim = String(await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`])).split('|')[0]!;
    const killedAt = Date.now();
    await nodes.get(victim)!.stop('SIGKILL');

    // The survivor sends the INVITE to pbx1 again on the same branch, then (fr_timer) to pbx2.
    const again = await pbx1.waitRequest('INVITE', 10_000, call.callId);
    expect(again.topVia.branch).toBe(first.topVia.branch);
    const second = (await pbx2.waitRequest('INVITE', 10_000, call.callId)) as SipRequest;
    expect(second.topVia.branch).not.toBe(first.topVia.branch);
    const failedOverAfterMs = Date.now() - killedAt;
    pbx2.send(pbx2.response(second, 200, 'OK', { toTag: 'p2', body: SAMPLE_SDP(45500) }));
    const ok = await inviteP;
    expect(ok.status).toBe(200);
    expect(ok.toTag).toBe('p2');
    call.learn(ok);
    call.ack2xx();
    await pbx2.waitRequest('ACK', 5000, call.callId);
    const byeP = pbx2.waitRequest('BYE', 5000, call.callId).then((bye) => pbx2.send(pbx2.response(bye, 200, 'OK')));
    expect((await call.bye()).status).toBe(200);
    await byeP;
    console.log(`serial failover went on after the SIGKILL of ${victim}: second PBX tried ${failedOverAfterMs} ms after it`);
    await waitFor('no early record left', async () => ((await respCommand(redis.port, ['HEXISTS', `tandem:tandem:dlg:${call.callId}`, '_del'])) === 1 ? true : undefined), 5000);
  }, 60_000);
});
