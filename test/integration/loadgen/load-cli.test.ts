/**
 * `tandem load` as real processes on 127.0.0.1: the UAC against its own UAS (UDP and TCP, RTP
 * both ways, digest), against a raw responder that answers badly, and bounded runs. Assertions
 * are about counts and reasons, never timings.
 */
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
    expect(s.rtpSent).toBeGreaterThanOrEqual(40 * 20); // a CPU-starved sender skips late packets: loose bound
    expect(s.rtpReceived, JSON.stringify(s)).toBeGreaterThanOrEqual(s.rtpSent * 0.9); // echoes still in flight at hang-up are not received
    expect(s.rtpLossPct).toBeLessThan(1);
    expect(s.rtpWorstGapMs).toBeGreaterThan(0);
    expect(s.rtpGapP50Ms).toBeGreaterThan(0);
    expect(s.rtpGapP99Ms).toBeLessThanOrEqual(s.rtpWorstGapMs);
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
    expect(s.rtpReceived, JSON.stringify(s)).toBeGreaterThan(10 * 20);
    expect(u.rtpReceived).toBeGreaterThan(10 * 20);
    expect(u.rtpSent).toBeGreaterThan(10 * 20);
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

