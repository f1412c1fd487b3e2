/**
 * Calls still ringing when the node that forwarded them dies: the survivor completes them. The
 * callee answers after the takeover; the 200 reaches the caller with its SDP through the media
 * node that took the offer, the ACK and BYE pass, the dialog is recorded. CANCELs sent after the
 * takeover reach the callee and the caller gets 487.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaSessions } from './helpers.js';
import type { SipRequest, SipResponse } from '../../../src/sip/message/sip-message.js';
import { randomRtpRange, spawnMediaNode, type SpawnedMediaNode } from '../media/media-harness.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from '../signalling/helpers/test-ua.js';
import { freePort, respCommand, SingleRedis, waitFor } from '../state/redis-harness.js';

const DOMAIN = 'ring.test';
const VIP = '127.0.0.11';
const ANSWERED = 200;
const CANCELLED = 100;
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\ncarol,carol-secret\n');

let redis: SingleRedis;
let port: number;
const media: SpawnedMediaNode[] = [];
const nodes = new Map<string, TandemProcess>();
const uas: TestUa[] = [];

const sessions = (m: SpawnedMediaNode): Promise<number> => mediaSessions(m.ngPort);

beforeAll(async () => {
  redis = await SingleRedis.start();
  port = await freePort();
  for (let i = 0; i < 2; i++) media.push(await spawnMediaNode(['--ng', '127.0.0.1:0', '--interface', '127.0.0.1', '--rtp-ports', randomRtpRange(1400), '--workers', '1']));
  for (const [name, addr] of [['sip1', '127.0.0.4'], ['sip2', '127.0.0.5']] as const) {
    nodes.set(
      name,
      await startTandem(['--node-id', name, '--sip', `udp:${addr}:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url, '--domain', DOMAIN, '--users', users, ...media.flatMap((m) => ['--media-ng', `127.0.0.1:${m.ngPort}`])], 30_000),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const u of uas) u.close();
  for (const t of nodes.values()) await t.stop('SIGKILL');
  for (const m of media) await m.stop();
  await redis?.stop();
});

describe('calls still ringing survive the death of their node', () => {
  it(`${ANSWERED} ringing calls answered after a SIGKILL of the VIP holder all connect and end; ${CANCELLED} CANCELled after it all get 487`, async () => {
    const mk = async (user: string) => {
      const u = await TestUa.create({ transport: 'udp', proxy: { host: VIP, port }, user, password: `${user}-secret`, domain: DOMAIN });
      uas.push(u);
      return u;
    };
    const bob = await mk('bob');
    expect((await bob.register()).status).toBe(200);
    const alice = await mk('alice');
    // bob rings on every INVITE; answers later; a CANCEL gets 200 and the INVITE 487.
    const invites = new Map<string, SipRequest>();
    let stop = false;
    void (async () => {
      while (!stop) {
        let req: SipRequest;
        try {
          req = (await bob.waitFor((m) => m.isRequest() && ['INVITE', 'CANCEL', 'BYE', 'ACK'].includes((m as SipRequest).method), 60_000)) as SipRequest;
        } catch {
          return;
        }
        const tag = `r${req.callId.slice(0, 8)}`;
        if (req.method === 'INVITE') {
          invites.set(req.callId, req);
          bob.send(bob.response(req, 180, 'Ringing', { toTag: tag }));
        } else if (req.method === 'CANCEL') {
          bob.send(bob.response(req, 200, 'OK'));
          const inv = invites.get(req.callId);
          if (inv) bob.send(bob.response(inv, 487, 'Request Terminated', { toTag: tag }));
        } else if (req.method === 'BYE') bob.send(bob.response(req, 200, 'OK'));
      }
    })();

    const calls: TestCall[] = [];
    for (let i = 0; i < ANSWERED + CANCELLED; i++) {
      const c = new TestCall(alice, 'bob');
      const r = await c.invite({ sdp: SAMPLE_SDP(40000 + 2 * i) });
      expect(r.status).toBe(180);
      calls.push(c);
    }
    await waitFor('every INVITE at the callee', async () => (invites.size === calls.length ? true : undefined), 5000);
    expect((await Promise.all(media.map(sessions))).reduce((a, b) => a + b, 0)).toBe(calls.length);

    const victim = String(await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`])).split('|')[0]!;
    const survivor = victim === 'sip1' ? 'sip2' : 'sip1';
    await nodes.get(victim)!.stop('SIGKILL');
    await waitFor('the VIP to move', async () => (String(await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`])).startsWith(`${survivor}|`) ? true : undefined), 5000, 10);
    await new Promise((r) => setTimeout(r, 100));

    // A forged failure for a ringing call (its Call-ID, a made-up branch of ours) ends nothing.
    const victimCall = calls[0]!;
    const inv0 = invites.get(victimCall.callId)!;
    const forged = bob
      .response(inv0, 486, 'Busy Here', { toTag: 'forged' })
      .replace(/^Via: SIP\/2\.0\/UDP [^;\r]+;branch=[^;\r]+/m, (v) => v.replace(/branch=[^;\r]+/, 'branch=z9hG4bK.forged00000.tdm.x.'));
    bob.send(forged);
    await new Promise((r) => setTimeout(r, 300));
    expect(alice.received.some((m) => !m.isRequest() && m.callId === victimCall.callId && (m as SipResponse).status === 486)).toBe(false);

    // The callee answers the first ones: each 200 reaches the caller through the survivor.
    const answered = calls.slice(0, ANSWERED);
    const oks = await Promise.all(
      answered.map(async (c) => {
        const inv = invites.get(c.callId)!;
        const okP = alice.waitResponse(c.callId, 'INVITE', (s) => s === 200, 8000);
        bob.send(bob.response(inv, 200, 'OK', { toTag: `r${c.callId.slice(0, 8)}`, body: SAMPLE_SDP(45000) }));
        return okP;
      }),
    );
    for (const [i, ok] of oks.entries()) {
      // Its SDP was rewritten by the media node that took the offer: not the callee's own port.
      expect(/m=audio (\d+)/.exec(ok.body.toString())?.[1]).not.toBe('45000');
      answered[i]!.learn(ok as SipResponse);
      answered[i]!.ack2xx();
    }
    // The CANCELs, after the takeover: 200 for each, then the callee's 487 for each INVITE.
    const cancelled = calls.slice(ANSWERED);
    // A CANCEL that does not name the INVITE's transaction (another branch) cancels nothing.
    const target = cancelled[0]!;
    const realBranch = target.branch;
    target.branch = 'z9hG4bKforged0000';
    const forgedP = alice.waitResponse(target.callId, 'CANCEL', (s) => s >= 200, 5000);
    target.cancel();
    expect((await forgedP).status).toBe(481);
    target.branch = realBranch;
    await new Promise((r) => setTimeout(r, 200));
    expect(bob.received.some((m) => m.isRequest() && (m as SipRequest).method === 'CANCEL')).toBe(false);
    const finals = await Promise.all(
      cancelled.map(async (c) => {
        const cancelOk = alice.waitResponse(c.callId, 'CANCEL', (s) => s >= 200, 5000);
        const final = alice.waitResponse(c.callId, 'INVITE', (s) => s >= 300, 8000);
        c.cancel();
        expect((await cancelOk).status).toBe(200);
        const f = await final;
        c.ackNon2xx(f);
        return f.status;
      }),
    );
    expect(finals).toEqual(Array(CANCELLED).fill(487));
    // The answered calls end normally through the survivor.
    const byes = await Promise.all(answered.map(async (c) => (await c.bye()).status));
    expect(byes).toEqual(Array(ANSWERED).fill(200));
    stop = true;

    await waitFor('every media session deleted', async () => ((await Promise.all(media.map(sessions))).every((n) => n === 0) ? true : undefined), 5000);
    // A call's record is written after its BYE or CANCEL is answered: read once every call has one
    // (or the wait ran out, and the assertions below show which is missing).
    const readRecords = async () => {
      const entries = (await respCommand(redis.port, ['XRANGE', 'tandem:tandem:cdr', '-', '+'])) as Array<[string, string[]]>;
      return entries.map(([, f]) => JSON.parse(f[1]!) as { callId: string; endReason: string; setupNode: string; endNode: string });
    };
    const everyCall = [...answered, ...cancelled];
    const records = await waitFor('a record for every call', async () => {
      const r = await readRecords();
      return everyCall.every((c) => r.some((x) => x.callId === c.callId)) ? r : undefined;
    }, 5000).catch(readRecords);
    for (const c of answered) expect(records.filter((r) => r.callId === c.callId).map((r) => [r.endReason, r.endNode])).toEqual([['bye', survivor]]);
    for (const c of cancelled) expect(records.filter((r) => r.callId === c.callId).map((r) => [r.endReason, r.endNode])).toEqual([['cancel', survivor]]);
  }, 120_000);

  it('an INVITE retransmitted to the survivor goes out again on the dead node\'s branch: the callee sees one call', async () => {
    // The node killed above comes back as the standby.
    const dead = [...nodes.entries()].find(([, t]) => t.child.exitCode !== null || t.child.signalCode !== null)!;
    const addr = dead[0] === 'sip1' ? '127.0.0.4' : '127.0.0.5';
    nodes.set(dead[0], await startTandem(['--node-id', dead[0], '--sip', `udp:${addr}:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url, '--domain', DOMAIN, '--users', users, ...media.flatMap((m) => ['--media-ng', `127.0.0.1:${m.ngPort}`])], 30_000));
    const carol = await TestUa.create({ transport: 'udp', proxy: { host: VIP, port }, user: 'carol', password: 'carol-secret', domain: DOMAIN });
    uas.push(carol);
    expect((await carol.register()).status).toBe(200);
    const alice = await TestUa.create({ transport: 'udp', proxy: { host: VIP, port }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    uas.push(alice);
    const call = new TestCall(alice, 'carol');
    // The callee is silent at first; the caller's INVITE (after its 407) reaches it once.
    const firstP = carol.waitRequest('INVITE', 5000, call.callId);
    const inviteP = call.invite({ sdp: SAMPLE_SDP(43000) });
    const first = await firstP;
    // The INVITE's record leaves through the outbox within ~5 ms; a node killed inside that
    // window takes the call with it (documented limit): the kill comes once it is in Redis.
    await waitFor('the INVITE\'s record in Redis', async () => (String(await respCommand(redis.port, ['HGET', `tandem:tandem:dlg:${call.callId}`, 'rec'])).includes('"branches"') ? true : undefined), 5000, 10);
    const victim = String(await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`])).split('|')[0]!;
    const survivor = victim === 'sip1' ? 'sip2' : 'sip1';
    await nodes.get(victim)!.stop('SIGKILL');
    await waitFor('the VIP to move', async () => (String(await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`])).startsWith(`${survivor}|`) ? true : undefined), 5000, 10);
    // During the takeover window an INVITE with this call's Call-ID and From-tag but another
    // branch names no transaction of the dead node: it is challenged like any new call and
    // reaches no one.
    const forgedBranch = 'z9hG4bKforgedretrans01';
    const mallory = await TestUa.create({ transport: 'udp', proxy: { host: VIP, port }, user: 'alice', password: 'wrong', domain: DOMAIN });
    uas.push(mallory);
    const forgedP = mallory.waitFor((m) => !m.isRequest() && m.callId === call.callId && m.topVia.branch === forgedBranch && (m as SipResponse).status >= 200, 5000);
    for (let i = 0; i < 10; i++) {
      mallory.send(mallory.request({ method: 'INVITE', uri: call.target, callId: call.callId, cseq: call.cseq, fromTag: call.fromTag, to: call.target, branch: forgedBranch, body: SAMPLE_SDP(43100) }));
      const got = await Promise.race([forgedP.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
      if (got) break;
    }
    expect(((await forgedP) as SipResponse).status).toBe(407);
    expect(carol.received.filter((m) => m.isRequest() && m.callId === call.callId && m.topVia.branch !== first.topVia.branch)).toHaveLength(0);

    // The caller retransmits its INVITE (Timer A): the survivor sends it on with the same branch.
    // (Re-sent every 200 ms, as Timer A would: the lease may show the survivor a moment before it
    // has bound the address.)
    const againP = carol.waitRequest('INVITE', 5000, call.callId);
    let arrived = false;
    void againP.then(() => (arrived = true), () => undefined);
    for (let i = 0; i < 20 && !arrived; i++) {
      alice.send(call.inviteText);
      await new Promise((r) => setTimeout(r, 200));
    }
    const again = await againP;
    expect(again.topVia.branch).toBe(first.topVia.branch);
    expect(/m=audio (\d+)/.exec(again.body.toString())?.[1]).toBe(/m=audio (\d+)/.exec(first.body.toString())?.[1]);
    // The callee answers; the survivor carries the transaction: one 200, ACK and BYE pass.
    carol.send(carol.response(again, 200, 'OK', { toTag: 'c1', body: SAMPLE_SDP(46000) }));
    const ok = await inviteP;
    expect(ok.status).toBe(200);
    call.learn(ok);
    call.ack2xx();
    await carol.waitRequest('ACK', 5000, call.callId);
    const byeP = carol.waitRequest('BYE', 5000, call.callId).then((bye) => carol.send(carol.response(bye, 200, 'OK')));
    expect((await call.bye()).status).toBe(200);
    await byeP;
    // Every INVITE the callee saw for this call carries the one branch: one call, retransmitted.
    const seen = carol.received.filter((m) => m.isRequest() && (m as SipRequest).method === 'INVITE' && m.callId === call.callId);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(new Set(seen.map((m) => m.topVia.branch))).toEqual(new Set([first.topVia.branch]));
  }, 60_000);
});
