/**
 * Interop: `tandem load` UAC -> Kamailio (Debian package, minimal stateful proxy from
 * test/fixtures/kamailio-proxy) -> `tandem load uas`. Calls must complete with no failures, over
 * UDP and TCP, with the dialog record-routed through Kamailio and RTP echoed end to end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, ROOT, runLoadCli, startUas, type Uas } from '../../integration/loadgen/helpers.js';

const KAMAILIO = '/usr/sbin/kamailio';
const MODULES = '/usr/lib/x86_64-linux-gnu/kamailio/modules';

/** A port free for both UDP and TCP on 127.0.0.1. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (tcpFree) return port;
  }
}

async function waitTcp(port: number, limitMs: number): Promise<void> {
  const until = Date.now() + limitMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('kamailio did not start');
}

describe.skipIf(!existsSync(KAMAILIO))('interop: UAC -> Kamailio stateful proxy -> UAS', () => {
  let kamailio: ChildProcess | undefined;
  let uas: Uas;
  let port: number;
  let log = '';

  beforeAll(async () => {
    uas = await startUas(['--rtp', 'echo']);
    port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'tandem-kam-'));
    const cfg = readFileSync(join(ROOT, 'test/fixtures/kamailio-proxy/kamailio.cfg'), 'utf8')
      .replaceAll('__SIP_PORT__', String(port))
      .replaceAll('__UAS__', `127.0.0.1:${uas.port}`);
    const cfgPath = join(dir, 'kamailio.cfg');
    writeFileSync(cfgPath, cfg);
    kamailio = spawn(KAMAILIO, ['-f', cfgPath, '-DD', '-E', '-L', MODULES, '-Y', dir], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    kamailio.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20000)));
    await waitTcp(port, 15_000);
  }, 30_000);

  afterAll(async () => {
    if (kamailio?.pid) {
      try {
        process.kill(-kamailio.pid, 'SIGTERM'); // its own process group: the proxy and its children
      } catch {
        // already gone
      }
    }
    await uas?.stop().catch(() => undefined);
    killAll();
  });

  it('uac-udp-via-kamailio-expect-all-calls-complete (with RTP echoed)', async () => {
    const { summary: s, code } = await runLoadCli(['call', '--target', `127.0.0.1:${port}`, '--rate', '50', '--calls', '100', '--duration', '1s', '--rtp', '--workers', '2'], 60_000);
    expect(code, log).toBe(0);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 100, successful: 100, failed: 0, failures: {} });
    expect(s.rtpReceived, JSON.stringify(s)).toBeGreaterThanOrEqual(s.rtpSent * 0.9); // echoes still in flight at hang-up are not received
  }, 60_000);

  it('uac-tcp-via-kamailio-expect-all-calls-complete (proxy bridges TCP to the UDP UAS)', async () => {
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${port}`, '--transport', 'tcp', '--rate', '50', '--calls', '100', '--duration', '200ms', '--workers', '2'], 60_000);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 100, successful: 100, failed: 0 });
  }, 60_000);

  it('uac-options-via-kamailio-expect-200', async () => {
    const { summary: s } = await runLoadCli(['options', '--target', `127.0.0.1:${port}`, '--rate', '50', '--calls', '30'], 30_000);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 30, successful: 30, failed: 0 });
  }, 30_000);
});
