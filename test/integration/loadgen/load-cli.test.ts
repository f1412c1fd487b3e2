/**
 * `tandem load` as real processes on 127.0.0.1: the UAC against its own UAS (UDP and TCP, RTP
 * both ways, digest), against a raw responder that answers badly, and bounded runs. Assertions
 * are about counts and reasons, never timings.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, runLoadCli, startUas } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tandem-load-'));

/** 16-bit mono PCM WAV of a 1 kHz sine. */
function pcmWav(rate: number, frames: number): Buffer {
  const data = Buffer.alloc(frames * 2);
  for (let i = 0; i < frames; i++) data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / rate)), i * 2);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}
afterAll(() => killAll());

describe('uac-call-expect-all-succeed: UAC against its own UAS', () => {
  it('UDP, 2 workers, RTP both ways (UAS echoes): every call succeeds, figures add up', async () => {
    const uas = await startUas(['--rtp', 'echo']);
    const csv = join(dir, 'stats.csv');
    const { summary: s, code } = await runLoadCli(
      ['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '40', '--calls', '40', '--duration', '1s', '--rtp', '--workers', '2', '--stats-file', csv],
      40_000,
    );
    const u = await uas.stop();
    expect(code).toBe(0);
    expect(s.workers).toBe(2);
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 40, successful: 40, failed: 0, failures: {} });
    expect(s.setupP50Ms).toBeGreaterThan(0);
    expect(s.setupP99Ms).toBeGreaterThanOrEqual(s.setupP50Ms);
    // one UAC stream per call; about 50 packets each over a 1 s hold, all echoed back
    expect(s.rtpStreams).toBe(40);
    expect(s.rtpSent).toBeGreaterThanOrEqual(40 * 40);
    expect(s.rtpReceived, JSON.stringify(s)).toBeGreaterThanOrEqual(s.rtpSent * 0.99);
    expect(s.rtpLossPct).toBeLessThan(1);
    expect(s.rtpWorstGapMs).toBeGreaterThan(0);
    // the UAS saw exactly those calls and echoed what it received
    expect(u).toMatchObject({ generated: 40, successful: 40, failed: 0 });
    expect(u.requests).toMatchObject({ INVITE: 40, ACK: 40, BYE: 40 });
    expect(u.rtpStreams).toBe(40);
    expect(u.rtpSent).toBe(u.rtpReceived);
    expect(u.rtpReceived).toBeGreaterThanOrEqual(s.rtpReceived);
    // stats file: header, periodic rows, a final row
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows[0]).toMatch(/^kind,elapsedSec,callsPerSec/);
    expect(rows.at(-1)).toMatch(/^final,/);
    expect(rows.length).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('UAS sends its own stream, UAC plays a WAV file: both directions measured', async () => {
    const wav = join(dir, 'tone.wav');
    writeFileSync(wav, pcmWav(8000, 4000)); // 0.5 s, looped
    const uas = await startUas(['--rtp', 'send', '--ring-delay', '200ms']);
    const json = join(dir, 'stats.json');
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '20', '--calls', '10', '--duration', '1s', '--rtp-file', wav, '--workers', '1', '--stats-file', json]);
    const u = await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 10, successful: 10, failed: 0 });
    expect(s.setupP50Ms).toBeGreaterThanOrEqual(200); // ringing delay is inside call setup
    expect(s.rtpReceived, JSON.stringify(s)).toBeGreaterThan(10 * 30);
    expect(u.rtpReceived).toBeGreaterThan(10 * 30);
    expect(u.rtpSent).toBeGreaterThan(10 * 30);
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { final: { successful: number }; periods: unknown[] };
    expect(doc.final.successful).toBe(10);
  }, 60_000);

  it('TCP with digest: INVITEs challenged by the UAS and answered from --users', async () => {
    const users = join(dir, 'users.csv');
    writeFileSync(users, 'SEQUENTIAL\nalice;secret1\nbob,secret2\ncarol;secret3\n');
    const uas = await startUas(['--transport', 'tcp', '--auth-users', users]);
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--transport', 'tcp', '--users', users, '--rate', '30', '--calls', '30', '--workers', '2']);
    const u = await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 30, successful: 30, failed: 0, retransmissions: 0 });
    expect(u.requests).toMatchObject({ INVITE: 60, BYE: 30 }); // each INVITE challenged once
  }, 60_000);
});

describe('uac-register-expect-digest-and-refresh', () => {
  it('UDP REGISTER: 401, authenticated REGISTER 200, refresh 200; wrong password fails with 401', async () => {
    const users = join(dir, 'reg-users.csv');
    writeFileSync(users, 'SEQUENTIAL\nu1;p1\nu2;p2\nu3;p3\nu4;p4\n');
    const uas = await startUas(['--auth-users', users]);
    const ok = await runLoadCli(['register', '--target', `127.0.0.1:${uas.port}`, '--users', users, '--rate', '20', '--calls', '8', '--duration', '500ms', '--workers', '2']);
    expect(ok.summary).toMatchObject({ generated: 8, successful: 8, failed: 0 });
    const wrong = join(dir, 'wrong.csv');
    writeFileSync(wrong, 'u1,nope\n');
    const bad = await runLoadCli(['register', '--target', `127.0.0.1:${uas.port}`, '--users', wrong, '--rate', '20', '--calls', '3', '--workers', '1']);
    expect(bad.code).toBe(1);
    expect(bad.summary).toMatchObject({ generated: 3, successful: 0, failed: 3, failures: { 'status 401': 3 } });
    const u = await uas.stop();
    // per good registration: challenged REGISTER, authenticated one, refresh (reusing the nonce, nc=2)
    expect(u.requests.REGISTER).toBe(8 * 3 + 3 * 3);
  }, 60_000);

  it('OPTIONS: every ping answered 200', async () => {
    const uas = await startUas([]);
    const { summary: s } = await runLoadCli(['options', '--target', `127.0.0.1:${uas.port}`, '--rate', '50', '--calls', '50']);
    await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 50, successful: 50, failed: 0 });
  }, 30_000);
});

/** A raw UDP responder that answers the Nth INVITE (by Call-ID) with the Nth bad behaviour. */
function badResponder(behaviours: ((req: string) => string | Buffer | null)[]): Promise<{ port: number; socket: Socket }> {
  const socket = createSocket('udp4');
  const seen = new Map<string, number>();
  socket.on('message', (msg, rinfo) => {
    const req = msg.toString('latin1');
    if (!req.startsWith('INVITE ')) return;
    const callId = /^Call-ID: (.*)$/m.exec(req)?.[1]?.trim() ?? '';
    if (!seen.has(callId)) seen.set(callId, seen.size);
    const b = behaviours[seen.get(callId)! % behaviours.length]!;
    const out = b(req);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve({ port: socket.address().port, socket })));
}

function hdr(req: string, name: string): string {
  return new RegExp(`^${name}: (.*)\r$`, 'm').exec(req)?.[1] ?? '';
}
function response(req: string, status: string, opts: { cseq?: string; toTag?: boolean } = {}): string {
  const to = hdr(req, 'To') + (opts.toTag === false ? '' : ';tag=bad1');
  return `SIP/2.0 ${status}\r\nVia: ${hdr(req, 'Via')}\r\nFrom: ${hdr(req, 'From')}\r\nTo: ${to}\r\nCall-ID: ${hdr(req, 'Call-ID')}\r\nCSeq: ${opts.cseq ?? hdr(req, 'CSeq')}\r\nContent-Length: 0\r\n\r\n`;
}

describe('uac-call-expect-failures-with-reasons: bad responses', () => {
  it('garbled, wrong CSeq, 500, 2xx without To tag, pure garbage: each a failure with its reason, no crash', async () => {
    const r = await badResponder([
      (q) => `SIP/2.0 2OO OK\r\nVia: ${hdr(q, 'Via')}\r\nCall-ID: ${hdr(q, 'Call-ID')}\r\n\r\n`,
      (q) => response(q, '200 OK', { cseq: '99 INVITE' }),
      (q) => response(q, '500 Server Internal Error'),
      (q) => response(q, '200 OK', { toTag: false }),
      () => Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 13, 10, 13, 10]),
    ]);
    try {
      const { summary: s, code } = await runLoadCli(['call', '--target', `127.0.0.1:${r.port}`, '--rate', '20', '--calls', '5', '--workers', '1', '--timeout', '1500ms'], 30_000);
      expect(code).toBe(1);
      expect(s, JSON.stringify(s)).toMatchObject({ generated: 5, successful: 0, failed: 5 });
      expect(s.failures).toEqual({
        'bad response: garbled (bad status line)': 1,
        'bad response: wrong CSeq': 1,
        'status 500': 1,
        'bad response: 2xx without To tag': 1,
        timeout: 1,
      });
      // the garbage-answered INVITE was retransmitted (Timer A) until the timeout
      expect(s.retransmissions).toBeGreaterThanOrEqual(1);
    } finally {
      r.socket.close();
    }
  }, 40_000);

  it('far end hangs up first: its BYE answered 200, the call counted as remote BYE', async () => {
    const socket = createSocket('udp4');
    const byeAnswers: string[] = [];
    socket.on('message', (msg, rinfo) => {
      const req = msg.toString('latin1');
      if (req.startsWith('SIP/2.0 ')) {
        byeAnswers.push(req.split('\r\n')[0]!);
        return;
      }
      if (!req.startsWith('INVITE ')) return;
      const ok = response(req, '200 OK').replace('Content-Length: 0', `Contact: <sip:pbx@127.0.0.1:${socket.address().port}>\r\nContent-Length: 0`);
      socket.send(ok, rinfo.port, rinfo.address);
      const bye =
        `BYE sip:tandem@127.0.0.1:${rinfo.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${socket.address().port};branch=z9hG4bKbye${Math.random()}\r\n` +
        `From: ${hdr(req, 'To')};tag=bad1\r\nTo: ${hdr(req, 'From')}\r\nCall-ID: ${hdr(req, 'Call-ID')}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
      setTimeout(() => socket.send(bye, rinfo.port, rinfo.address), 100);
    });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    try {
      const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${socket.address().port}`, '--rate', '10', '--calls', '2', '--duration', '5s', '--workers', '1']);
      expect(s, JSON.stringify(s)).toMatchObject({ generated: 2, failed: 2, failures: { 'remote BYE': 2 } });
      expect(byeAnswers).toEqual(['SIP/2.0 200 OK', 'SIP/2.0 200 OK']);
    } finally {
      socket.close();
    }
  }, 30_000);

  it('UAS answering 503: failures counted as status 503', async () => {
    const uas = await startUas(['--answer-status', '503']);
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '20', '--calls', '10', '--workers', '2']);
    const u = await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 10, successful: 0, failed: 10, failures: { 'status 503': 10 } });
    expect(u.requests.ACK).toBe(10); // every non-2xx final was ACKed
  }, 30_000);
});

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
    expect(c.rtpReceived).toBeGreaterThan(6 * 15);
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
    expect(s.generated).toBeGreaterThan(5);
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
