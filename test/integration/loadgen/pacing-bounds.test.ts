/**
 * `tandem load` pacing and bounds: local address ranges, rate ramp and concurrency limit,
 * --stop-after and per-call timeouts (runs always end by themselves).
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, runLoadCli, startUas } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-load-pace-'));
afterAll(() => killAll());

function hdr(req: string, name: string): string {
  return new RegExp(`^${name}: (.*)\r$`, 'm').exec(req)?.[1] ?? '';
}
function response(req: string, status: string, opts: { cseq?: string; toTag?: boolean } = {}): string {
  const to = hdr(req, 'To') + (opts.toTag === false ? '' : ';tag=bad1');
  return `SIP/2.0 ${status}\r\nVia: ${hdr(req, 'Via')}\r\nFrom: ${hdr(req, 'From')}\r\nTo: ${to}\r\nCall-ID: ${hdr(req, 'Call-ID')}\r\nCSeq: ${opts.cseq ?? hdr(req, 'CSeq')}\r\nContent-Length: 0\r\n\r\n`;
}

describe('local address range', () => {
  it('calls take the local addresses in turn (SIP and RTP)', async () => {
    const socket = createSocket('udp4');
    const sources = new Set<string>();
    socket.on('message', (msg, rinfo) => {
      const req = msg.toString('latin1');
      if (!req.startsWith('OPTIONS ')) return;
      sources.add(rinfo.address);
      socket.send(response(req, '200 OK'), rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    try {
      const { summary: s } = await runLoadCli(['options', '--target', `127.0.0.1:${socket.address().port}`, '--local', '127.0.0.2-127.0.0.4', '--rate', '30', '--calls', '12', '--workers', '2']);
      expect(s, JSON.stringify(s)).toMatchObject({ generated: 12, successful: 12, failed: 0 });
      expect([...sources].sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    } finally {
      socket.close();
    }
    const uas = await startUas(['--rtp', 'echo']);
    const { summary: c } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--local', '127.0.0.2-127.0.0.3', '--rate', '20', '--calls', '6', '--duration', '500ms', '--rtp', '--workers', '1']);
    await uas.stop();
    expect(c).toMatchObject({ generated: 6, successful: 6, failed: 0 });
    expect(c.rtpReceived).toBeGreaterThan(6 * 10);
  }, 40_000);
});

describe('pacing', () => {
  it('ramp raises the rate every interval up to the max; --limit caps calls in progress', async () => {
    const uas = await startUas([]);
    const json = join(dir, 'ramp.json');
    const { summary: s } = await runLoadCli(
      ['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '20', '--rate-increase', '20', '--rate-interval', '1s', '--rate-max', '60',
        '--limit', '15', '--duration', '1s', '--stop-after', '3500ms', '--workers', '2', '--stats-file', json, '--report-interval', '250ms'],
      30_000,
    );
    await uas.stop();
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { periods: { targetRate: number; active: number }[] };
    const rates = doc.periods.map((p) => p.targetRate);
    expect(Math.min(...rates)).toBe(20);
    expect(Math.max(...rates)).toBe(60);
    expect(rates).toEqual([...rates].sort((a, b) => a - b)); // never decreases
    expect(Math.max(...doc.periods.map((p) => p.active))).toBeLessThanOrEqual(15);
    expect(s.failed).toBe(0);
    expect(s.successful).toBe(s.generated);
  }, 40_000);
});

describe('bounded runs', () => {
  it('--stop-after ends an open-ended run against a UAS that rings forever', async () => {
    const uas = await startUas(['--ring-forever']);
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '20', '--stop-after', '1s', '--timeout', '60s', '--workers', '2'], 30_000);
    const u = await uas.stop();
    expect(s.generated).toBeGreaterThan(0);
    expect(s.successful).toBe(0);
    expect(s.failures.aborted).toBe(s.generated);
    expect(u.requests.INVITE).toBeGreaterThanOrEqual(s.generated);
  }, 40_000);

  it('per-call --timeout: ringing calls time out and are cancelled', async () => {
    const uas = await startUas(['--ring-forever']);
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '20', '--calls', '6', '--timeout', '1s', '--workers', '1'], 30_000);
    const u = await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 6, failed: 6, failures: { timeout: 6 } });
    expect(u.requests.CANCEL).toBe(6);
    expect(u.failures.cancelled).toBe(6);
  }, 30_000);

  it('nothing listening: calls time out, the run still ends', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    sock.close();
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${port}`, '--rate', '10', '--calls', '3', '--timeout', '1s', '--workers', '1'], 30_000);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 3, failed: 3 });
  }, 30_000);
});

