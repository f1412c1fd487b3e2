/**
 * Published experiment A with an independent generator: SIPp places 200 calls through the VIP of
 * two `tandem start` nodes (the command lines, on a free port), the VIP holder is
 * SIGKILLed while calls are up and being set up, and SIPp must count every call successful (its
 * ACKs and BYEs follow the Record-Route the dead node issued).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, respCommand, SingleRedis, waitFor } from '../../integration/state/redis-harness.js';
import { startTandem, type TandemProcess } from '../../integration/signalling/helpers/tandem-process.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const SCENARIOS = join(ROOT, 'test/fixtures/sipp');
const VIP = '127.0.0.10';
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function sipp(args: string[], cwd: string): ChildProcess {
  const p = spawn('sipp', [...args, '-nostdin'], { cwd, stdio: 'ignore' });
  cleanups.push(async () => void p.kill('SIGKILL'));
  return p;
}

async function register(port: number, contactPort: number): Promise<string> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const reply = new Promise<string>((r) => s.once('message', (m) => r(m.toString('latin1').split('\r\n')[0]!)));
  const text = [
    `REGISTER sip:${VIP} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${s.address().port};branch=z9hG4bKreg${Date.now()};rport`,
    'Max-Forwards: 70',
    `From: <sip:service@${VIP}>;tag=r1`,
    `To: <sip:service@${VIP}>`,
    `Call-ID: reg-${Date.now()}@sipp`,
    'CSeq: 1 REGISTER',
    `Contact: <sip:service@127.0.0.1:${contactPort}>`,
    'Expires: 3600',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  s.send(text, port, VIP);
  const line = await Promise.race([reply, new Promise<string>((r) => setTimeout(() => r('timeout'), 3000))]);
  s.close();
  return line;
}

describe('interop: SIPp through a two-node cluster', () => {
  it('uac-sipp-via-vip-expect-every-call-complete-after-sigkill-of-the-holder', async () => {
    const redis = await SingleRedis.start();
    cleanups.push(() => redis.stop());
    const port = await freePort();
    const nodes = new Map<string, TandemProcess>();
    for (const [name, addr] of [['sip1', '127.0.0.2'], ['sip2', '127.0.0.3']] as const) {
      const t = await startTandem(['--node-id', name, '--sip', `udp:${addr}:${port}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url, '--no-auth', '--no-media'], 30_000);
      nodes.set(name, t);
      cleanups.push(() => t.stop('SIGKILL').then(() => undefined));
    }
    const dir = mkdtempSync(join(tmpdir(), 'tandem-sipp-'));
    const uasPort = await freePort();
    sipp(['-sf', join(SCENARIOS, 'uas-record-route.xml'), '-i', '127.0.0.1', '-p', String(uasPort)], dir);
    await waitFor('the callee registered', async () => ((await register(port, uasPort)) === 'SIP/2.0 200 OK' ? true : undefined), 10_000, 200);

    const stats = join(dir, 'uac.csv');
    const uac = sipp(['-sf', join(SCENARIOS, 'uac-record-route.xml'), '-s', 'service', `${VIP}:${port}`, '-i', '127.0.0.1', '-p', String(await freePort()), '-m', '200', '-r', '50', '-d', '4000', '-trace_stat', '-stf', stats, '-fd', '1'], dir);
    const done = new Promise<number | null>((r) => uac.once('exit', (code) => r(code)));
    // 3 s in: ~150 calls set up, some still being set up.
    await new Promise((r) => setTimeout(r, 3000));
    const holder = String(await respCommand(redis.port, ['GET', `tandem:tandem:lease:${VIP}`])).split('|')[0]!;
    await nodes.get(holder)!.stop('SIGKILL');
    const code = await Promise.race([done, new Promise<number | null>((r) => setTimeout(() => r(-1), 40_000))]);
    const rows = readFileSync(stats, 'utf8').trim().split('\n');
    const head = rows[0]!.split(';');
    const last = rows[rows.length - 1]!.split(';');
    const col = (name: string) => Number(last[head.indexOf(name)]);
    const figures = { created: col('TotalCallCreated'), successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)'), retransmissions: col('Retransmissions(C)') };
    console.log(`SIPp through the cluster, ${holder} SIGKILLed at 3 s: ${JSON.stringify(figures)}`);
    expect(code).toBe(0);
    expect(figures).toMatchObject({ created: 200, successful: 200, failed: 0 });
  }, 90_000);
});
