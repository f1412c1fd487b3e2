// ng control round trip: offer + answer (+ delete, not timed) per call, one call at a time,
// against `tandem media` (spawned, as deployed) and Debian's rtpengine (userspace, --table=-1)
// through the same client. Also a pipelined run (C calls in flight). Prints p50/p99 in ms.
// Usage: node --import tsx bench/ng.bench.ts [calls=400] [concurrency=8]
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import dgram from 'node:dgram';
import { NgClient } from '../src/ng/ng-client.js';

const ROOT = resolve(import.meta.dirname, '..');
const CALLS = Number(process.argv[2] ?? 400);
const CONCURRENCY = Number(process.argv[3] ?? 8);
const H = '127.0.0.1';

function sdp(port: number): string {
  return `v=0\r\no=- 1 1 IN IP4 ${H}\r\ns=-\r\nc=IN IP4 ${H}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n`;
}

function range(): [number, number] {
  const base = 30000 + 2 * Math.floor(Math.random() * 5000);
  return [base, Math.min(65_534, base + (CALLS * 2 + 300) * 4 + 4000)];
}

async function waitPing(ng: NgClient, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await ng.ping()).ok) return;
  }
  throw new Error(`no pong from ${ng.target}`);
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, H, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function oneCall(ng: NgClient, tag: string, i: number): Promise<number> {
  const callId = `bench-${tag}-${i}-${Date.now()}`;
  const t0 = process.hrtime.bigint();
  const o = await ng.offer({ callId, fromTag: 'a', sdp: sdp(10_000 + (i % 1000) * 2), flags: ['trust-address'], replace: ['origin'] });
  if (!o.ok) throw new Error(`offer: ${o.reason}`);
  const a = await ng.answer({ callId, fromTag: 'a', toTag: 'b', sdp: sdp(20_000 + (i % 1000) * 2), flags: ['trust-address'] });
  if (!a.ok) throw new Error(`answer: ${a.reason}`);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const d = await ng.delete({ callId, fromTag: 'a' });
  if (!d.ok) throw new Error(`delete: ${d.reason}`);
  return ms;
}

async function measure(name: string, port: number): Promise<{ p50: number; p99: number; cps: number }> {
  const ng = new NgClient({ host: H, port, retransmits: 3, retransmitIntervalMs: 1000 });
  await waitPing(ng);
  for (let i = 0; i < 300; i++) await oneCall(ng, `${name}w`, i); // warm-up (JIT)
  const pings: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const s = process.hrtime.bigint();
    await ng.ping();
    pings.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  pings.sort((x, y) => x - y);
  const lat: number[] = [];
  const t0 = Date.now();
  for (let i = 0; i < CALLS; i++) lat.push(await oneCall(ng, name, i));
  const serialMs = Date.now() - t0;
  lat.sort((x, y) => x - y);
  // Pipelined: CONCURRENCY calls in flight.
  const t1 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CALLS) await oneCall(ng, `${name}p`, next++);
    }),
  );
  const pipeMs = Date.now() - t1;
  ng.close();
  const r = { p50: pct(lat, 50), p99: pct(lat, 99), cps: Math.round((CALLS * 1000) / pipeMs) };
  console.log(
    `${name.padEnd(8)} offer+answer RTT p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  ping p50 ${pct(pings, 50).toFixed(3)} ms (serial ${CALLS} calls in ${serialMs} ms; ` +
      `pipelined x${CONCURRENCY}: ${r.cps} calls/s incl. delete)`,
  );
  return r;
}

function stop(p: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (p.exitCode !== null) return res();
    p.once('exit', () => res());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 3000).unref();
  });
}

async function main(): Promise<void> {
  console.log(`ng bench: ${CALLS} calls, machine ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'} (shared; figures are noisy)`);
  const [tMin, tMax] = range();
  const tandem = spawn(process.execPath, [resolve(ROOT, 'bin/tandem.mjs'), 'media', '--ng', `${H}:0`, '--interface', H, '--rtp-ports', `${tMin}-${tMax}`, '--max-sessions', '1000000', '--workers', '1'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: 'warn' },
  });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    tandem.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"ngPort":(\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    tandem.once('exit', (c) => rej(new Error(`tandem media exited ${c}`)));
  });
  let t: Awaited<ReturnType<typeof measure>> | undefined;
  try {
    t = await measure('tandem', port);
  } finally {
    await stop(tandem);
  }
  if (!existsSync('/usr/bin/rtpengine')) {
    console.log('rtpengine not installed; no comparison');
    return;
  }
  const [rMin, rMax] = range();
  const ngPort = await freeUdpPort();
  const rtpe = spawn('/usr/bin/rtpengine', ['--foreground', `--interface=${H}`, `--listen-ng=${H}:${ngPort}`, `--port-min=${rMin}`, `--port-max=${rMax}`, '--table=-1', '--log-stderr', '--log-level=3', '--num-threads=1'], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  try {
    const r = await measure('rtpengine', ngPort);
    console.log(`ratio (rtpengine p50 / tandem p50): ${(r.p50 / t.p50).toFixed(2)}  (>1 means tandem is faster); pipelined calls/s ratio tandem/rtpengine: ${(t.cps / r.cps).toFixed(2)}`);
  } finally {
    await stop(rtpe);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
