/**
 * `tandem start --workers 2` as a process: every message of a call reaches the worker its Call-ID
 * is steered to, registrations made through one worker are found by the other, nothing is
 * forwarded twice, retransmissions are absorbed, the node's metrics are the workers' sum, and a
 * worker killed with SIGKILL is started again while the other goes on serving.
 *
 * Which worker holds a call is known from outside: slot = FNV-1a(Call-ID) mod 2, the same hash the
 * receiving step uses, so each test picks Call-IDs for the worker it means.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { gcThreadsFor } from '../../../src/util/gc-threads.js';
import { callIdHashOf } from '../../../src/signalling/workers/call-id-hash.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';
import { startTandem, tempFile, type TandemProcess } from './helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from './helpers/test-ua.js';

const DOMAIN = 'example.test';
const WORKERS = 2;
let tandem: TandemProcess;
let admin: string;
const uas: TestUa[] = [];

/** A Call-ID the node steers to worker `w`. */
function callIdFor(w: number): string {
  for (;;) {
    const id = `${randomBytes(8).toString('hex')}@test`;
    if (callIdHashOf(id) % WORKERS === w) return id;
  }
}

function onWorker<T extends TestCall | TestUa>(o: T, w: number): T {
  if (o instanceof TestCall) (o as { callId: string }).callId = callIdFor(w);
  else (o as { callIdReg: string }).callIdReg = callIdFor(w);
  return o;
}

async function ua(user: string, transport: 'udp' | 'tcp' = 'udp'): Promise<TestUa> {
  const u = await TestUa.create({ transport, proxy: { host: '127.0.0.1', port: tandem.ports[transport]! }, user, password: `${user}-secret`, domain: DOMAIN });
  uas.push(u);
  return u;
}

/** The callee answers every INVITE 200 (after `delayMs`) and every BYE 200; stops when closed. */
function answering(callee: TestUa, delayMs = 0): void {
  void (async () => {
    for (;;) {
      let req;
      try {
        req = await callee.waitFor((m) => m.isRequest() && ['INVITE', 'BYE'].includes((m as { method: string } & typeof m).method), 60_000);
      } catch {
        return;
      }
      const r = req as Parameters<TestUa['response']>[0];
      if (r.method === 'INVITE') setTimeout(() => callee.send(callee.response(r, 200, 'OK', { toTag: `t${r.callId.slice(0, 6)}`, body: SAMPLE_SDP(42000) })), delayMs);
      else callee.send(callee.response(r, 200, 'OK'));
    }
  })();
}

async function connect(call: TestCall): Promise<void> {
  let res: SipResponse = await call.invite({ sdp: SAMPLE_SDP(40000) });
  if (res.status < 200) res = await call.ua.waitResponse(call.callId, 'INVITE', (s) => s >= 200);
  expect(res.status).toBe(200);
  call.learn(res);
  call.ack2xx();
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : 0;
}

interface Status {
  workers: Array<{ index: number; pid: number; serving: boolean; restarts: number }>;
  dialogs: { confirmed: number };
  bindings: number;
}
const status = async (): Promise<Status> => (await (await fetch(`${admin}/signalling/status`)).json()) as Status;

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const invitesSeen = (callee: TestUa, callId: string) => callee.received.filter((m) => m.isRequest() && (m as { method: string } & typeof m).method === 'INVITE' && m.callId === callId).length;

beforeAll(async () => {
  const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\ncarol,carol-secret\n');
  tandem = await startTandem(['--workers', String(WORKERS), '--sip', 'udp:127.0.0.1:0', '--sip', 'tcp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--no-media', '--admin', '127.0.0.1:0'], 30_000);
  admin = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(tandem.stdout.join(''))![1]!;
}, 40_000);

afterEach(async () => {
  for (const u of uas.splice(0)) {
    await u.register(0).catch(() => undefined);
    u.close();
  }
});

afterAll(async () => {
  for (const u of uas) u.close();
  await tandem?.stop();
});

describe('tandem start --workers 2', () => {
  it('serves through two worker processes behind one address', async () => {
    expect(tandem.stdout.join('')).toContain(`workers=${WORKERS}`);
    const st = await status();
    expect(st.workers.map((w) => w.serving)).toEqual([true, true]);
    expect(new Set(st.workers.map((w) => w.pid)).size).toBe(WORKERS);
    expect(await metric('tandem_workers')).toBe(WORKERS);
  });

  it('each worker runs with the garbage-collection helper threads the machine leaves it (node --v8-pool-size), once', async () => {
    const want = `--v8-pool-size=${gcThreadsFor(availableParallelism(), WORKERS)}`;
    for (const w of (await status()).workers) {
      const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
      expect(argv.filter((a) => a.startsWith('--v8-pool-size'))).toEqual([want]);
    }
  });

  it('--gc-threads sets the workers\' helper threads; a single process started with more than asked says how to start it', async () => {
    const t = await startTandem(['--workers', '2', '--gc-threads', '3', '--sip', 'udp:127.0.0.1:0', '--no-auth', '--no-media', '--admin', '127.0.0.1:0'], 30_000);
    try {
      const url = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''))![1]!;
      const st = (await (await fetch(`${url}/signalling/status`)).json()) as Status;
      for (const w of st.workers) expect(readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0')).toContain('--v8-pool-size=3');
    } finally {
      await t.stop();
    }
    // startTandem runs node without --v8-pool-size: Node's 4 helpers.
    for (const [asked, warned] of [['1', true], ['4', false]] as const) {
      const one = await startTandem(['--workers', '1', '--gc-threads', asked, '--sip', 'udp:127.0.0.1:0', '--no-auth', '--no-media'], 30_000);
      try {
        const out = one.stdout.join('') + one.stderr.join('');
        expect(out.includes(`start node with --v8-pool-size=${asked}`)).toBe(warned);
      } finally {
        await one.stop();
      }
    }
  }, 60_000);

  it('signalling.workers in the YAML config starts that many workers', async () => {
    const cfg = tempFile('tandem.yaml', 'signalling:\n  workers: 3\n');
    const t = await startTandem(['--config', cfg, '--sip', 'udp:127.0.0.1:0', '--no-auth', '--no-media', '--admin', '127.0.0.1:0'], 30_000);
    try {
      expect(t.stdout.join('')).toContain('workers=3');
      const url = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''))![1]!;
      const st = (await (await fetch(`${url}/signalling/status`)).json()) as Status;
      expect(st.workers.filter((w) => w.serving)).toHaveLength(3);
    } finally {
      await t.stop();
    }
  }, 40_000);

  it('a user registered through one worker is found by an INVITE the other worker routes (both ways)', async () => {
    for (const [regOn, callOn] of [[0, 1], [1, 0]] as const) {
      const bob = onWorker(await ua('bob'), regOn);
      expect((await bob.register()).status).toBe(200);
      answering(bob);
      const alice = await ua('alice');
      const call = onWorker(new TestCall(alice, 'bob'), callOn);
      expect(callIdHashOf(bob.callIdReg) % WORKERS).not.toBe(callIdHashOf(call.callId) % WORKERS);
      await connect(call);
      expect((await call.bye()).status).toBe(200);
      for (const u of uas.splice(0)) {
        await u.register(0).catch(() => undefined);
        u.close();
      }
    }
  });

  it('calls on both workers complete; the callee sees each INVITE and each BYE once; the metrics are the sum over the workers', async () => {
    const bob = await ua('bob');
    expect((await bob.register()).status).toBe(200);
    answering(bob);
    const alice = await ua('alice');
    const invitesBefore = await metric('tandem_signalling_requests_total', '{method="INVITE"}');
    const byesBefore = await metric('tandem_signalling_requests_total', '{method="BYE"}');
    const steeredBefore = await metric('tandem_workers_steered_total');
    const calls: TestCall[] = [];
    for (let i = 0; i < 20; i++) calls.push(onWorker(new TestCall(alice, 'bob'), i % WORKERS));
    await Promise.all(calls.map(connect));
    for (const c of calls) expect((await c.bye()).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    for (const c of calls) {
      expect(invitesSeen(bob, c.callId)).toBe(1);
      expect(bob.received.filter((m) => m.isRequest() && (m as { method: string } & typeof m).method === 'BYE' && m.callId === c.callId)).toHaveLength(1);
    }
    // Each call: the INVITE challenged with 407, then the one with credentials; one BYE.
    expect((await metric('tandem_signalling_requests_total', '{method="INVITE"}')) - invitesBefore).toBe(2 * calls.length);
    expect((await metric('tandem_signalling_requests_total', '{method="BYE"}')) - byesBefore).toBe(calls.length);
    // Both workers read from the shared socket: some messages reached the worker not holding their call.
    expect(await metric('tandem_workers_steered_total')).toBeGreaterThan(steeredBefore);
    expect((await status()).dialogs.confirmed).toBe(0);
  });

  it('an INVITE retransmitted while the callee rings is absorbed by the worker holding it, whichever worker reads it', async () => {
    const bob = await ua('bob');
    expect((await bob.register()).status).toBe(200);
    answering(bob, 400);
    const alice = await ua('alice');
    for (const w of [0, 1]) {
      const call = onWorker(new TestCall(alice, 'bob'), w);
      const res = call.invite({ sdp: SAMPLE_SDP(40000) });
      await waitFor('the INVITE at the callee', async () => (invitesSeen(bob, call.callId) > 0 ? true : undefined), 5000);
      // Timer A's retransmissions: the very same bytes, three times.
      for (let k = 0; k < 3; k++) alice.send(call.inviteText);
      let r = await res;
      if (r.status < 200) r = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200);
      expect(r.status).toBe(200);
      call.learn(r);
      call.ack2xx();
      expect((await call.bye()).status).toBe(200);
      expect(invitesSeen(bob, call.callId)).toBe(1);
    }
  });

  it('TCP: a connection one worker accepted carries calls the other worker holds', async () => {
    const bob = await ua('bob', 'tcp');
    expect((await bob.register()).status).toBe(200);
    answering(bob);
    const alice = await ua('alice', 'tcp');
    const steeredBefore = await metric('tandem_workers_steered_total');
    for (let i = 0; i < 6; i++) {
      const call = onWorker(new TestCall(alice, 'bob'), i % WORKERS);
      await connect(call);
      expect((await call.bye()).status).toBe(200);
      expect(invitesSeen(bob, call.callId)).toBe(1);
    }
    expect(await metric('tandem_workers_steered_total')).toBeGreaterThan(steeredBefore);
  });

  it('a worker killed with SIGKILL is started again; calls held by the other worker are unaffected, and the restarted one knows the registrations', async () => {
    const bob = await ua('bob');
    expect((await bob.register()).status).toBe(200);
    answering(bob);
    const alice = await ua('alice');
    const before = await status();
    const victim = before.workers[0]!;
    // Calls established on worker 1 before the kill.
    const live: TestCall[] = [];
    for (let i = 0; i < 5; i++) live.push(onWorker(new TestCall(alice, 'bob'), 1));
    await Promise.all(live.map(connect));

    process.kill(victim.pid, 'SIGKILL');
    // Worker 1 goes on: new calls, and the BYEs of its calls.
    for (let i = 0; i < 5; i++) {
      const c = onWorker(new TestCall(alice, 'bob'), 1);
      await connect(c);
      live.push(c);
    }
    for (const c of live) expect((await c.bye()).status).toBe(200);

    const after = await waitFor('worker 0 to serve again', async () => {
      const st = await status();
      const w = st.workers[0]!;
      return w.serving && w.pid !== victim.pid ? st : undefined;
    }, 20_000);
    expect(after.workers[0]!.restarts).toBe(1);
    expect(after.workers[1]!.pid).toBe(before.workers[1]!.pid);
    expect(await metric('tandem_workers_restarts_total')).toBe(1);
    // The restarted worker got the node's registrations before it served: bob is found.
    for (let i = 0; i < 3; i++) {
      const c = onWorker(new TestCall(alice, 'bob'), 0);
      await connect(c);
      expect((await c.bye()).status).toBe(200);
    }
  }, 40_000);
});
