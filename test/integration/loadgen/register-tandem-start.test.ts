/**
 * `tandem load register` against Tandem's own registrar (`tandem start`, digest on): the
 * generator's REGISTER flow (401, authenticated REGISTER, refresh) against an independent
 * implementation of the server side, plus wrong credentials counted as failures; then calls
 * through Tandem's proxy to a `tandem load uas` registered there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, ROOT, runLoadCli, startUas } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-load-reg-'));
let tandem: ChildProcess | undefined;
let port = 0;

beforeAll(async () => {
  const users = join(dir, 'users.csv');
  writeFileSync(users, 'u1,p1\nu2,p2\nu3,p3\nu4,p4\npbx,pbxpw\n');
  // --no-media: the in-process relay's fixed RTP port range collides with other suites running
  // at the same time; RTP then flows caller <-> UAS directly (relay path: see the media tests)
  tandem = spawn(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'start', '--sip', 'udp:127.0.0.1:0', '--domain', 'tandem.test', '--users', users, '--no-media', '--log-level', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`tandem start did not listen: ${out}`)), 20_000);
    const on = (d: Buffer): void => {
      out += d.toString();
      const m = /listening udp:127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    };
    tandem!.stdout!.on('data', on);
    tandem!.stderr!.on('data', on);
  });
}, 30_000);

afterAll(() => {
  tandem?.kill('SIGKILL');
  killAll();
});

describe('uac-register-via-tandem-start', () => {
  it('digest REGISTER and refresh for every user: all succeed', async () => {
    const users = join(dir, 'load-users.csv');
    writeFileSync(users, 'SEQUENTIAL\nu1;p1\nu2;p2\nu3,p3\nu4;p4\n');
    const { summary: s, code } = await runLoadCli(['register', '--target', `127.0.0.1:${port}`, '--domain', 'tandem.test', '--users', users, '--rate', '20', '--calls', '12', '--duration', '300ms', '--workers', '2']);
    expect(code).toBe(0);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 12, successful: 12, failed: 0 });
  }, 40_000);

  it('wrong password: failures with the status code', async () => {
    const users = join(dir, 'bad-users.csv');
    writeFileSync(users, 'u1;wrong\n');
    const { summary: s } = await runLoadCli(['register', '--target', `127.0.0.1:${port}`, '--domain', 'tandem.test', '--users', users, '--rate', '20', '--calls', '3', '--workers', '1']);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 3, successful: 0, failed: 3 });
    expect(Object.keys(s.failures)).toEqual(['status 401']);
  }, 30_000);
});

describe('uac-call-via-tandem-start-to-registered-uas', () => {
  it('INVITE challenged by the proxy (407), routed to the registered UAS, RTP echoed', async () => {
    const uas = await startUas(['--rtp', 'echo', '--register', `127.0.0.1:${port}`, '--user', 'pbx', '--password', 'pbxpw', '--domain', 'tandem.test']);
    const callers = join(dir, 'callers.csv');
    writeFileSync(callers, 'u1;p1\nu2;p2\n');
    const { summary: s } = await runLoadCli(
      ['call', '--target', `127.0.0.1:${port}`, '--service', 'pbx', '--domain', 'tandem.test', '--users', callers, '--rate', '20', '--calls', '10', '--duration', '1s', '--rtp', '--workers', '1'],
      40_000,
    );
    const u = await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 10, successful: 10, failed: 0 });
    expect(s.rtpReceived, JSON.stringify(s)).toBeGreaterThan(10 * 20);
    expect(u).toMatchObject({ generated: 10, successful: 10 });
    expect(u.requests.INVITE).toBe(10); // the 407 round happened at the proxy only
  }, 60_000);
});
