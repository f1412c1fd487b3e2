import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTandem, tempFile, type TandemProcess } from './helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from './helpers/test-ua.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const DOMAIN = 'example.test';
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\n');
const procs: TandemProcess[] = [];
const uas: TestUa[] = [];

afterAll(async () => {
  for (const u of uas) u.close();
  for (const p of procs) await p.stop('SIGKILL');
});

async function pair(t: TandemProcess): Promise<[TestUa, TestUa]> {
  const mk = (user: string) => TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: t.ports['udp']! }, user, password: `${user}-secret`, domain: DOMAIN });
  const a = await mk('alice');
  const b = await mk('bob');
  uas.push(a, b);
  expect((await a.register()).status).toBe(200);
  expect((await b.register()).status).toBe(200);
  return [a, b];
}

describe('tandem start as a process', () => {
  it('rejects a bad config, printing every error with its field path', () => {
    const bad = tempFile('bad.yaml', 'signalling:\n  listen: [udp:nowhere:5060]\n  auth: { nonceLifetimeSec: 0 }\n  bogus: 1\n');
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'start', '--config', bad], { encoding: 'utf8', env: { ...process.env, TANDEM_FROM_SOURCE: '1' }, timeout: 20000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('signalling.listen.0: expected transport:address:port');
    expect(r.stderr).toContain('signalling.auth.nonceLifetimeSec');
    expect(r.stderr).toContain('signalling.bogus: unknown option');
  });

  it('relays media through the in-process media node: both SDPs point at the relay', async () => {
    // A private media port range: other suites run media nodes at the same time.
    const base = 47000 + Math.floor(Math.random() * 30) * 100;
    const cfg = tempFile('media.yaml', `media:\n  rtpPorts: ${base}-${base + 99}\n`);
    const t = await startTandem(['--config', cfg, '--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users]);
    procs.push(t);
    const [alice, bob] = await pair(t);
    const call = new TestCall(alice, 'bob');
    const calleeP = (async () => {
      const inv = await bob.waitRequest('INVITE');
      bob.send(bob.response(inv, 180, 'Ringing', { toTag: 'b1' }));
      bob.send(bob.response(inv, 200, 'OK', { toTag: 'b1', body: SAMPLE_SDP(41000) }));
      return inv;
    })();
    let res = await call.invite({ sdp: SAMPLE_SDP(40000) });
    const inv = await calleeP;
    const offerPort = Number(/m=audio (\d+)/.exec(inv.body.toString())?.[1]);
    expect(offerPort).toBeGreaterThan(0);
    expect(offerPort).not.toBe(40000);
    if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200);
    const answerPort = Number(/m=audio (\d+)/.exec(res.body.toString())?.[1]);
    expect(answerPort).toBeGreaterThan(0);
    expect(answerPort).not.toBe(41000);
    call.learn(res as SipResponse);
    call.ack2xx();
    await bob.waitRequest('ACK', 5000, call.callId);
    const byeP = bob.waitRequest('BYE', 5000, call.callId).then((bye) => bob.send(bob.response(bye, 200, 'OK')));
    expect((await call.bye()).status).toBe(200);
    await byeP;
  });

  it('SIGTERM: new calls get 503 while a ringing call finishes, then the process exits', async () => {
    const t = await startTandem(['--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--no-media']);
    procs.push(t);
    const [alice, bob] = await pair(t);
    const call = new TestCall(alice, 'bob');
    const invP = bob.waitRequest('INVITE');
    const first = call.invite();
    const inv = await invP;
    bob.send(bob.response(inv, 180, 'Ringing', { toTag: 'b2' }));
    expect((await first).status).toBe(180);
    const started = Date.now();
    t.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 150));
    const second = new TestCall(alice, 'bob');
    expect((await second.invite()).status).toBe(503);
    bob.send(bob.response(inv, 200, 'OK', { toTag: 'b2', body: SAMPLE_SDP(41000) }));
    const ok = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200);
    expect(ok.status).toBe(200);
    const code = await t.stop();
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(8000);
  });
});

describe('tandem start: route script and failed-auth blocking', () => {
  it('runs the route script: local reply and a fixed target', async () => {
    const script = tempFile(
      'route.mjs',
      `export function route(request, context) {
  if (request.requestUri.user === 'blocked') return { kind: 'reply', status: 403, reason: 'Blocked By Script' };
  if (request.requestUri.user === 'desk') return { kind: 'parallel', targets: [{ uri: 'sip:bob@127.0.0.1:' + process.env.DESK_PORT }] };
  return { kind: 'default' };
}
`,
    );
    const dgram = await import('node:dgram');
    const desk = dgram.createSocket('udp4');
    await new Promise<void>((res) => desk.bind(0, '127.0.0.1', () => res()));
    const deskPort = desk.address().port;
    process.env.DESK_PORT = String(deskPort);
    const t = await startTandem(['--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--no-media', '--route', script]);
    procs.push(t);
    const alice = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: t.ports['udp']! }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    uas.push(alice);
    const blocked = new TestCall(alice, 'blocked');
    const r = await blocked.invite();
    expect(r.status).toBe(403);
    expect(r.reason).toBe('Blocked By Script');
    // The fixed target: a socket on DESK_PORT answers 486.
    desk.on('message', (m, rinfo) => {
      const text = m.toString('latin1');
      if (!text.startsWith('INVITE')) return;
      const head = text.split('\r\n');
      const keep = head.filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l)).map((l) => (/^To:/i.test(l) ? `${l};tag=d1` : l));
      desk.send(Buffer.from(['SIP/2.0 486 Busy Here', ...keep, 'Content-Length: 0', '', ''].join('\r\n')), rinfo.port, rinfo.address);
    });
    const c = new TestCall(alice, 'desk');
    let res = await c.invite();
    if (res.status < 200) res = await alice.waitResponse(c.callId, 'INVITE', (s) => s >= 200);
    expect(res.status).toBe(486);
    desk.close();
  });

  it('blocks a source after repeated failed authentications', async () => {
    const cfg = tempFile('block.yaml', 'signalling:\n  auth:\n    maxFailures: 3\n    blockSec: 60\n');
    const t = await startTandem(['--config', cfg, '--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--no-media']);
    procs.push(t);
    const u = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: t.ports['udp']! }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    uas.push(u);
    for (let i = 0; i < 2; i++) expect((await u.register(600, { password: 'guess' + i })).status).toBe(401);
    // The third failure blocks the source: no answer at all any more, even with the right password.
    await expect(u.register(600, { password: 'guess3', timeoutMs: 1500 })).rejects.toThrow(/timed out/);
    await expect(u.register(600, { timeoutMs: 1500 })).rejects.toThrow(/timed out/);
  });
});

describe('tandem start: external media nodes', () => {
  it('--media-ng twice with one dead node: calls are relayed by the live one', async () => {
    const { spawn } = await import('node:child_process');
    const media = spawn(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'media', '--ng', '127.0.0.1:0', '--rtp-ports', '46000-46999', '--workers', '1'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: 'warn' },
    });
    try {
      const ngPort = await new Promise<number>((res, rej) => {
        const t = setTimeout(() => rej(new Error('media node not ready')), 20000);
        let buf = '';
        media.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /"ngPort":(\d+)/.exec(buf);
          if (m) {
            clearTimeout(t);
            res(Number(m[1]));
          }
        });
      });
      const dgram = await import('node:dgram');
      const dead = dgram.createSocket('udp4');
      await new Promise<void>((r) => dead.bind(0, '127.0.0.1', () => r()));
      const deadPort = dead.address().port;
      dead.close();
      const t = await startTandem(['--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--media-ng', `127.0.0.1:${deadPort}`, '--media-ng', `127.0.0.1:${ngPort}`]);
      procs.push(t);
      const [alice, bob] = await pair(t);
      for (let i = 0; i < 2; i++) {
        const call = new TestCall(alice, 'bob');
        const calleeP = (async () => {
          const inv = await bob.waitRequest('INVITE', 8000);
          bob.send(bob.response(inv, 200, 'OK', { toTag: `m${i}`, body: SAMPLE_SDP(41000) }));
          return inv;
        })();
        let res = await call.invite({ sdp: SAMPLE_SDP(40000) });
        const inv = await calleeP;
        const port = Number(/m=audio (\d+)/.exec(inv.body.toString())?.[1]);
        expect(port).toBeGreaterThanOrEqual(46000);
        expect(port).toBeLessThanOrEqual(46999);
        if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200, 8000);
        call.learn(res as SipResponse);
        call.ack2xx();
        const byeP = bob.waitRequest('BYE', 5000, call.callId).then((bye) => bob.send(bob.response(bye, 200, 'OK')));
        expect((await call.bye()).status).toBe(200);
        await byeP;
      }
    } finally {
      media.kill('SIGKILL');
    }
  }, 40000);
});
