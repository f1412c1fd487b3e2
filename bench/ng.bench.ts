// ng control latency: offer + answer through `tandem media` (spawned, as deployed) and Debian's
// rtpengine (userspace, --table=-1), driven by the same independent client at a paced rate, in
// alternating rounds so both see the same machine load.
//
// The client is `bench/lib/ng-probe.c` (built here with cc): a C client has no event loop or
// garbage collector of its own to add to the tail. `--client node` uses the npm rtpengine-client
// instead (the figures before 2026-12-03 evening); its own tail on 2 cores is ~1-3 ms.
//
// Each call: offer, then answer as soon as the offer's reply is in (both timed, and together);
// the call is held `--hold-sec` and then deleted (not timed), so about rate x hold calls are live.
// The first round of each server right after its start is reported apart ("cold": Tandem's
// JavaScript is still being compiled); then ROUNDS alternating rounds. Per server: p50 / p99 / max
// of offer+answer, offer and answer alone, and the server's CPU per call (utime + stime from /proc
// over the rounds, offer + answer + delete, divided by calls).
//
//   flock /tmp/tandem-cpu.lock node --import tsx bench/ng.bench.ts [--rate 50] [--round-sec 30]
//        [--rounds 2] [--cold-sec 30] [--hold-sec 2] [--workers 1] [--quick] [--only tandem|rtpengine]
//        [--client c|node] [--cpu-prof DIR] [--node-args "--trace-gc"]
//        [--base DIR: also an older checkout, e.g. `git worktree add /tmp/base <commit>`, as tandem@base]
//        [--serial 1000: calls back to back per server afterwards (0: none)]
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { CLK_TCK, cpuTicks, freePort } from './lib/proc.js';
import { percentile } from './lib/percentile.js';

const require = createRequire(import.meta.url);
// rtpengine-client is CommonJS without types.
interface RtpeClient {
  ping(port: number, host: string): Promise<Record<string, unknown>>;
  offer(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  answer(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  delete(port: number, host: string, opts: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
  on(event: string, fn: (...a: unknown[]) => void): void;
}
const { Client } = require('rtpengine-client') as { Client: new (opts: { timeout?: number }) => RtpeClient };

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : dflt);
const quick = argv.includes('--quick');
const RATE = Number(opt('--rate', '50'));
const ROUND_SEC = Number(opt('--round-sec', quick ? '10' : '30'));
const ROUNDS = Number(opt('--rounds', quick ? '1' : '2'));
const HOLD_SEC = Number(opt('--hold-sec', '2'));
/** The first round after a server starts, reported on its own line. */
const COLD_SEC = Number(opt('--cold-sec', quick ? '10' : '30'));
const CLIENT = opt('--client', 'c');
/** Calls set up back to back (no pacing, the next as soon as the previous is deleted) per server after the paced rounds. */
const SERIAL = Number(opt('--serial', quick ? '300' : '1000'));
const WORKERS = opt('--workers', '1');
const ONLY = opt('--only', '');
const CPU_PROF = opt('--cpu-prof', '');
/** Extra node flags for the tandem process (e.g. `--trace-gc`), space-separated. */
const NODE_ARGS = opt('--node-args', '').split(' ').filter(Boolean);
/** Another checkout of Tandem (e.g. a git worktree of an older commit) measured in the same rounds as `tandem@base`. */
const BASE_ROOT = opt('--base', '');
const ROOT = resolve(import.meta.dirname, '..');
const H = '127.0.0.1';

function sdp(port: number, sess: number): string {
  return (
    `v=0\r\no=- ${sess} 1 IN IP4 ${H}\r\ns=-\r\nc=IN IP4 ${H}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 8 101\r\n` +
    'a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n'
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Samples {
  total: number[];
  offer: number[];
  answer: number[];
}
const noSamples = (): Samples => ({ total: [], offer: [], answer: [] });

interface Server {
  name: string;
  port: number;
  proc: ChildProcess;
  samples: Samples;
  /** The first round after the server started. */
  cold: Samples;
  /** offer+answer of the back-to-back calls, ms. */
  serial: number[];
  calls: number;
  errors: number;
  ticks: number;
  seconds: number;
}

async function spawnTandem(range: string, root = ROOT, name = 'tandem'): Promise<Server> {
  const args = [...NODE_ARGS, ...(CPU_PROF ? [`--cpu-prof`, `--cpu-prof-dir=${CPU_PROF}`] : []), resolve(root, 'bin/tandem.mjs'), 'media', '--ng', `${H}:0`, '--interface', H, '--rtp-ports', range, '--max-sessions', '100000', '--workers', WORKERS];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: 'warn' } });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      if (NODE_ARGS.length) process.stderr.write(d);
      out += d.toString();
      const m = /"ngPort":(\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    proc.once('exit', (c) => rej(new Error(`tandem media exited ${c}`)));
  });
  return { name, port, proc, samples: noSamples(), cold: noSamples(), serial: [], calls: 0, errors: 0, ticks: 0, seconds: 0 };
}

async function spawnRtpengine(range: string): Promise<Server> {
  const [min, max] = range.split('-');
  const port = await freePort();
  const proc = spawn('/usr/bin/rtpengine', ['--foreground', `--interface=${H}`, `--listen-ng=${H}:${port}`, `--port-min=${min}`, `--port-max=${max}`, '--table=-1', '--log-stderr', '--log-level=3', `--num-threads=${WORKERS}`], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  return { name: 'rtpengine', port, proc, samples: noSamples(), cold: noSamples(), serial: [], calls: 0, errors: 0, ticks: 0, seconds: 0 };
}

async function waitPing(client: RtpeClient, s: Server): Promise<void> {
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    const r = await Promise.race([client.ping(s.port, H).catch(() => undefined), sleep(300).then(() => undefined)]);
    if (r && r['result'] === 'pong') return;
  }
  throw new Error(`${s.name}: no pong`);
}

/** `bench/lib/ng-probe.c` built into node_modules/.cache (rebuilt when the source is newer); undefined without cc. */
function buildProbe(): string | undefined {
  const src = join(import.meta.dirname, 'lib/ng-probe.c');
  const dir = join(ROOT, 'node_modules/.cache/tandem-bench');
  const bin = join(dir, 'ng-probe');
  try {
    if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
    mkdirSync(dir, { recursive: true });
    execFileSync('cc', ['-O2', '-o', bin, src], { stdio: ['ignore', 'ignore', 'inherit'] });
    return bin;
  } catch {
    return undefined;
  }
}

type Calls = (s: Server, tag: string, into: Samples | undefined, n: number, serial?: boolean) => Promise<void>;

/** One answered call's times, ms: into the back-to-back list, or into `into` when the round records. */
function record(s: Server, into: Samples | undefined, serial: boolean, offerMs: number, answerMs: number): void {
  if (serial) s.serial.push(offerMs + answerMs);
  else if (into) {
    into.total.push(offerMs + answerMs);
    into.offer.push(offerMs);
    into.answer.push(answerMs);
  }
}

/** Calls through the C probe: one process per round, its per-call lines parsed afterwards. */
function probeCalls(bin: string): Calls {
  return async (s, tag, into, n, serial = false) => {
    const out = await new Promise<string>((res, rej) =>
      execFile(bin, [H, String(s.port), String(RATE), String(n), String(serial ? 0 : HOLD_SEC * 1000), serial ? 'serial' : 'paced', tag], { maxBuffer: 64 << 20 }, (err, stdout) =>
        err ? rej(err) : res(stdout),
      ),
    );
    for (const line of out.split('\n')) {
      const f = line.split(' ');
      if (f.length !== 5) continue;
      const [offerUs, answerUs, ok] = [Number(f[2]), Number(f[3]), f[4] === '1'];
      if (!ok) {
        s.errors++;
        continue;
      }
      record(s, into, serial, offerUs / 1000, answerUs / 1000);
    }
  };
}

/** Calls through the npm rtpengine-client (Node). */
function nodeClientCalls(client: RtpeClient): Calls {
  return async (s, tag, into, n, serial = false) => {
    const intervalMs = 1000 / RATE;
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      if (!serial) {
        const wait = t0 + i * intervalMs - performance.now();
        if (wait > 1) await sleep(wait);
      }
      const callId = `${tag}-${i}-${Date.now()}@bench`;
      const call = (async () => {
        const a0 = performance.now();
        const o = await client.offer(s.port, H, { 'call-id': callId, 'from-tag': `f${i}`, sdp: sdp(10_000 + (i % 5000) * 2, i), flags: ['trust-address'], replace: ['origin'] });
        const a1 = performance.now();
        const a = await client.answer(s.port, H, { 'call-id': callId, 'from-tag': `f${i}`, 'to-tag': `t${i}`, sdp: sdp(20_000 + (i % 5000) * 2, i + 1), flags: ['trust-address'] });
        const a2 = performance.now();
        if (o['result'] !== 'ok' || a['result'] !== 'ok') {
          s.errors++;
          if (s.errors < 4) console.log(`  ${s.name} error: ${JSON.stringify(o['result'] !== 'ok' ? o : a).slice(0, 200)}`);
        } else record(s, into, serial, a1 - a0, a2 - a1);
        if (!serial) await sleep(HOLD_SEC * 1000);
        // No delete delay (rtpengine keeps a deleted call 30 s by default): both free the call now.
        await client.delete(s.port, H, { 'call-id': callId, 'from-tag': `f${i}`, 'delete delay': 0 });
      })().catch(() => {
        s.errors++;
      });
      if (serial) await call;
      else pending.push(call);
    }
    await Promise.all(pending);
  };
}

/** One round at RATE for `sec` seconds against `s`, returning once every call is deleted; CPU counted when `cpu`. */
async function round(calls: Calls, s: Server, tag: string, into: Samples | undefined, sec: number, cpu: boolean): Promise<void> {
  const ticks0 = cpuTicks(s.proc.pid);
  const wall0 = performance.now();
  const n = Math.round(RATE * sec);
  await calls(s, tag, into, n);
  if (cpu) {
    s.ticks += cpuTicks(s.proc.pid) - ticks0;
    s.seconds += (performance.now() - wall0) / 1000;
    s.calls += n;
  }
}

function stop(p: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (p.exitCode !== null) return res();
    p.once('exit', () => res());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 5000).unref();
  });
}

function report(s: Server): { p50: number; p99: number; max: number; cpuUs: number } {
  const f = (xs: number[]): string => {
    const v = [...xs].sort((x, y) => x - y);
    return `p50 ${percentile(v, 50).toFixed(3)}  p99 ${percentile(v, 99).toFixed(3)}  max ${(v[v.length - 1] ?? NaN).toFixed(3)} ms`;
  };
  const total = [...s.samples.total].sort((x, y) => x - y);
  const cpuUs = ((s.ticks / CLK_TCK) * 1e6) / Math.max(1, s.calls);
  console.log(`${s.name.padEnd(11)} offer+answer ${f(s.samples.total)}   (${s.samples.total.length} calls, ${s.errors} errors)`);
  console.log(`${''.padEnd(11)} offer        ${f(s.samples.offer)}`);
  console.log(`${''.padEnd(11)} answer       ${f(s.samples.answer)}`);
  if (s.cold.total.length) console.log(`${''.padEnd(11)} cold (first ${COLD_SEC} s after start): offer+answer ${f(s.cold.total)}`);
  if (s.serial.length) console.log(`${''.padEnd(11)} back to back (${s.serial.length} calls): offer+answer ${f(s.serial)}`);
  console.log(`${''.padEnd(11)} CPU ${cpuUs.toFixed(0)} µs per call (offer+answer+delete; ${((s.ticks / CLK_TCK / Math.max(0.001, s.seconds)) * 100).toFixed(1)} % of a core over ${s.seconds.toFixed(0)} s)`);
  return { p50: percentile(total, 50), p99: percentile(total, 99), max: total[total.length - 1] ?? NaN, cpuUs };
}

async function main(): Promise<void> {
  const probe = CLIENT === 'c' ? buildProbe() : undefined;
  if (CLIENT === 'c' && !probe) console.log('cc not available: using the npm rtpengine-client');
  console.log(
    `ng bench: ${probe ? 'C client (bench/lib/ng-probe.c)' : 'rtpengine-client (Node)'}, ${RATE} calls/s, cold round ${COLD_SEC} s then ${ROUNDS} x ${ROUND_SEC} s per server (alternating), ` +
      `hold ${HOLD_SEC} s, ${WORKERS} forwarding thread(s); ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`,
  );
  // Live calls plus released ports in quarantine (tandem: 10 s), 4 ports per call; the serial calls
  // come in blocks of 100, each well under the quarantine.
  const span = Math.ceil(RATE * (HOLD_SEC + 15)) * 4 + 1000;
  const base = 28000 + 2 * Math.floor(Math.random() * 2000);
  const servers: Server[] = [];
  const haveRtpe = existsSync('/usr/bin/rtpengine');
  if (!haveRtpe) console.log('rtpengine not installed; tandem only');
  const client = new Client({ timeout: 5000 });
  client.on('error', () => undefined);
  const calls = probe ? probeCalls(probe) : nodeClientCalls(client);
  try {
    if (ONLY !== 'rtpengine') servers.push(await spawnTandem(`${base}-${base + span}`));
    if (haveRtpe && ONLY !== 'tandem') servers.push(await spawnRtpengine(`${base + span + 2}-${base + 2 * span + 2}`));
    if (BASE_ROOT) servers.push(await spawnTandem(`${base + 2 * span + 4}-${base + 3 * span + 4}`, resolve(BASE_ROOT), 'tandem@base'));
    for (const s of servers) {
      await waitPing(client, s);
      await round(calls, s, `${s.name}-cold`, s.cold, COLD_SEC, false);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of servers) {
        await round(calls, s, `${s.name}-${r}`, s.samples, ROUND_SEC, true);
        await sleep(500);
      }
    }
    // Back to back, alternating in blocks of 100: the machine stays awake, so this is closer to the
    // servers' own processing time than the paced figure (which includes waking idle cores).
    for (let done = 0; done < SERIAL; done += 100) {
      for (const s of servers) await calls(s, `${s.name}-serial-${done}`, undefined, Math.min(100, SERIAL - done), true);
    }
    console.log('');
    const res = servers.map((s) => ({ name: s.name, ...report(s) }));
    const t = res.find((x) => x.name === 'tandem');
    const e = res.find((x) => x.name === 'rtpengine');
    if (t && e) {
      console.log(
        `\ntandem / rtpengine: p50 ${(t.p50 / e.p50).toFixed(2)}x, p99 ${(t.p99 / e.p99).toFixed(2)}x, CPU per call ${(t.cpuUs / e.cpuUs).toFixed(2)}x ` +
          `(goal: p50 <= rtpengine's -> ${t.p50 <= e.p50 ? 'met' : 'missed'}; p99 <= 1 ms -> ${t.p99 <= 1 ? 'met' : 'missed'})`,
      );
    }
  } finally {
    client.close();
    for (const s of servers) await stop(s.proc);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
