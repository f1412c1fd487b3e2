/**
 * Signalling node benchmark: `tandem start --no-media` against Kamailio 5.6 (Debian) with an
 * equivalent registrar + stateful proxy script, both driven by the same independent generator,
 * SIPp (Debian `sip-tester`). Steps alternate between the servers at each rate so both see the
 * same background load.
 *
 *  1. calls/s through the proxy: INVITE-200-ACK-pause-BYE-200 (test/fixtures/sipp/bench-uac.xml;
 *     the callee is a SIPp UAS registered as `service`, found by location lookup, Record-Route
 *     on). Each step is sustained for --step-sec seconds.
 *  2. digest REGISTER/s (qop=auth, MD5) over 10,000 users (test/fixtures/sipp/bench-register.xml,
 *     users from an injection CSV, SIPp answers each challenge).
 *
 * For each step: calls passed / failed, SIPp retransmissions, p50/p99 response time (SIPp rtd,
 * every request of the scenario, from -trace_rtt), server CPU per call (utime+stime of every
 * server process from /proc over the step), and for Tandem the V8 heap and collections
 * (`--trace-gc`: live heap after the last full collection, the longest full and young pauses,
 * and the bytes allocated on the heap per call: its growth between collections).
 * The figure per server is the highest rate with 0 failed calls and 0 retransmissions.
 *
 *   node --import tsx bench/signalling.bench.ts [--quick] [--step-sec 60] [--rates 400,1000]
 *     [--reg-rates 2000,4000] [--only calls|register] [--no-kamailio] [--workers 1,2]
 *     [--pin] [--call-ms 1000] [--no-trace-gc] [--root DIR] [--gc-threads N|node]
 *     [--generic-register] [--cpu-prof DIR] [--heap-snapshot DIR] [--gc-log FILE] [--sipp-buffer BYTES] [--dgram] [--linger MS] [--flags-b "NODE FLAGS"] [--env-b "K=V"] [--root-b DIR] [--kamailio-children 1,4]
 *
 * --pin runs each server on core 1 and SIPp on core 0 (taskset); without it all share the cores.
 * --root runs the Tandem of another checkout (e.g. `git archive <commit>` unpacked) for an A/B.
 * --workers 1,2 starts one Tandem per count with `tandem start --workers N` (named tandem-wN);
 * when `tandem start` has the flag, a run without --workers passes `--workers 1`. The event-loop
 * delay per step comes from Tandem's admin /metrics; CPU is also split into user and kernel time.
 * --gc-threads: garbage-collection helper threads per Tandem process (`node --v8-pool-size`), by
 * default what Tandem chooses for the machine (src/util/gc-threads.ts); `node` keeps Node's 4.
 * --generic-register adds to the REGISTER sweep a Tandem with its registrar fast path off
 * (`registrar.fastPath: false`, named tandem-generic): the A/B of that path in one run.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { registerContact, sipRequest } from './lib/udp-sip.js';
import { CLK_TCK, freePort } from './lib/proc.js';
import { percentile } from './lib/percentile.js';
import { gcThreadsFor, NODE_DEFAULT_POOL_SIZE } from '../src/util/gc-threads.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const list = (s: string | undefined): number[] | undefined => s?.split(',').map(Number).filter((n) => n > 0);

const quick = process.argv.includes('--quick');
const withKamailio = !process.argv.includes('--no-kamailio') && existsSync('/usr/sbin/kamailio');
const pin = process.argv.includes('--pin');
const traceGc = !process.argv.includes('--no-trace-gc');
const only = arg('--only');
const ROOT = resolve(import.meta.dirname, '..');
const SCENARIOS = join(ROOT, 'test/fixtures/sipp');
/** The Tandem checkout to run (--root: an A/B against another commit's tree, with this bench). */
const TANDEM_ROOT = resolve(arg('--root') ?? ROOT);
const DOMAIN = 'bench.test';
const USERS = 10_000;
const stepSec = Number(arg('--step-sec') ?? (quick ? 10 : 60));
const callMs = Number(arg('--call-ms') ?? 1000);
const callRates = list(arg('--rates')) ?? (quick ? [200, 400] : [400, 700, 1000, 1400, 1750, 2100, 2500]);
const regRates = list(arg('--reg-rates')) ?? (quick ? [500, 1000] : [1000, 2000, 3000, 4000, 6000, 8000]);
const workersArg = list(arg('--workers'));
const workerCounts = workersArg ?? [1];
const gcThreadsArg = arg('--gc-threads');
const genericRegister = process.argv.includes('--generic-register');
/** --dgram adds a Tandem on node:dgram (TANDEM_NATIVE_UDP=0, named tandem-dgram): the A/B of the native UDP path in one run. */
const dgramToo = process.argv.includes('--dgram');
/**
 * --linger MS adds a Tandem whose finished transactions are kept MS instead of 64*T1 (32 s),
 * named tandem-lMS: Kamailio's tm keeps them 5 s (wt_timer), so `--linger 5000` compares like
 * with like (signalling.transaction.lingerMs).
 */
const lingerMs = arg('--linger') ? Number(arg('--linger')) : undefined;
/**
 * --flags-b "FLAGS": adds a Tandem started with these extra Node/V8 flags (space-separated, e.g.
 * "--max-semi-space-size=64"), named tandem-b, alternated with the others at every step.
 */
/**
 * --kamailio-children 1,4: one Kamailio per count of UDP worker processes (named kamailio-cN);
 * without it one Kamailio with 4, named kamailio.
 */
const kamailioChildren = list(arg('--kamailio-children'));
/** --root-b DIR: tandem-b runs the Tandem of another checkout (A/B of two versions in one run). */
const ROOT_B = arg('--root-b') ? resolve(arg('--root-b')!) : undefined;
const flagsB = arg('--flags-b')?.split(/\s+/).filter(Boolean) ?? (arg('--env-b') || ROOT_B ? [] : undefined);
/** --env-b "K=V ...": environment variables of tandem-b (with or without --flags-b). */
const envB = Object.fromEntries((arg('--env-b') ?? '').split(/\s+/).filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
/** --cpu-prof DIR: Tandem runs under V8's sampling profiler; one .cpuprofile per process lands in DIR at its exit. */
const cpuProfDir = arg('--cpu-prof') ? resolve(arg('--cpu-prof')!) : undefined;
/**
 * --heap-snapshot DIR: Tandem writes a V8 heap snapshot into DIR two thirds into each step (its
 * `--heapsnapshot-signal`): what the live heap holds under load. Writing one stops the process for
 * seconds, so that step's figures are not comparable.
 */
/** --gc-log FILE: every collection line of Tandem's `--trace-gc`, appended to FILE (with the reason V8 gives). */
const gcLogFile = arg('--gc-log') ? resolve(arg('--gc-log')!) : undefined;
const heapSnapshotDir = arg('--heap-snapshot') ? resolve(arg('--heap-snapshot')!) : undefined;
/**
 * --sipp-buffer BYTES: SIPp's socket buffers (its -buff_size), 4 MB unless given; 0 keeps SIPp's
 * own default, 64 KB, which the kernel doubles. Each SIPp process has one socket for all its
 * calls, where a deployment has one per phone, so with SIPp's default a burst of answers after
 * any pause of the server overflowed it and the datagrams dropped there counted as the server's
 * failures (each step prints the drops at SIPp's sockets and at the server's). The kernel caps
 * the size at net.core.rmem_max.
 */
const sippBuffer = arg('--sipp-buffer') ?? '4194304';
const sippBufferArgs = sippBuffer !== '0' ? ['-buff_size', sippBuffer] : [];

console.log(
  `signalling bench (SIPp): ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${spawnSync('sipp', ['-v']).stdout.toString().match(/SIPp v[\w.-]+/)?.[0] ?? 'sipp'}; ` +
    `${stepSec} s per step, calls of ${callMs} ms, ${pin ? 'server on core 1, SIPp on core 0' : 'server and SIPp share the cores'}, SIPp socket buffers ${sippBuffer !== '0' ? sippBuffer : "SIPp's default"}; load average ${loadavg()[0]!.toFixed(2)}`,
);

console.log(`garbage-collection helper threads per Tandem process: ${gcThreadsArg === 'node' ? `Node's default (${NODE_DEFAULT_POOL_SIZE})` : (gcThreadsArg ?? `Tandem's choice (${workerCounts.map((w) => `${gcThreadsFor(cpus().length, w)} with ${w} worker${w > 1 ? 's' : ''}`).join(', ')})`)}`);

const dir = mkdtempSync(join(tmpdir(), 'tandem-sig-bench-'));
const userName = (i: number) => `u${String(i).padStart(5, '0')}`;
const usersCsv = join(dir, 'users.csv');
writeFileSync(usersCsv, Array.from({ length: USERS }, (_, i) => `${userName(i)},p-${userName(i)}`).join('\n') + '\n');
const injectionCsv = join(dir, 'sipp-users.csv');
writeFileSync(injectionCsv, 'SEQUENTIAL\n' + Array.from({ length: USERS }, (_, i) => `${userName(i)};p-${userName(i)};${DOMAIN};[authentication username=${userName(i)} password=p-${userName(i)}]`).join('\n') + '\n');

/** utime and stime of the processes, in clock ticks (user: the server's own code; system: the kernel's, mostly the UDP sends and receives). */
function cpuSplit(pids: number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]);
      system += Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return { user, system };
}

/** pid and all its descendants (Kamailio and Tandem workers are child processes). */
function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
    } catch {
      /* gone */
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, pp] of parent) if (pp === out[i]) out.push(pid);
  return out;
}

const options = (port: number) =>
  sipRequest(
    port,
    (lp) =>
      [
        `OPTIONS sip:127.0.0.1:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
        'Max-Forwards: 70',
        `From: <sip:ping@${DOMAIN}>;tag=o1`,
        `To: <sip:127.0.0.1:${port}>`,
        `Call-ID: ping-${Date.now()}${Math.random()}@bench`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    500,
  );

/** V8 collections seen in `--trace-gc` output since the last `take()`. */
class GcLog {
  fullCount = 0;
  fullMaxMs = 0;
  youngMaxMs = 0;
  youngCount = 0;
  /** Heap after the last full collection (MB): the live set. */
  liveMb = 0;
  peakMb = 0;
  /** Bytes allocated (MB): the heap's growth between one collection's end and the next one's start. */
  allocatedMb = 0;
  #lastAfterMb: number | undefined;
  #buf = '';

  feed(text: string): void {
    this.#buf += text;
    let nl: number;
    while ((nl = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      // [pid:0x..]   1234 ms: Mark-Compact 120.1 (130.0) -> 100.2 (125.0) MB, 45.67 / 0.01 ms  (...)
      const m = /\d+ ms: (Scavenge|Mark-Compact|Minor Mark-Compact|Mark-Sweep)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/.exec(line);
      if (!m) continue;
      if (gcLogFile) appendFileSync(gcLogFile, `${line}\n`);
      const before = Number(m[2]);
      const after = Number(m[3]);
      const pause = Number(m[4]);
      this.peakMb = Math.max(this.peakMb, before);
      if (this.#lastAfterMb !== undefined && before > this.#lastAfterMb) this.allocatedMb += before - this.#lastAfterMb;
      this.#lastAfterMb = after;
      if (m[1] === 'Mark-Compact' || m[1] === 'Mark-Sweep') {
        this.fullCount++;
        this.fullMaxMs = Math.max(this.fullMaxMs, pause);
        this.liveMb = after;
      } else {
        this.youngCount++;
        this.youngMaxMs = Math.max(this.youngMaxMs, pause);
      }
    }
  }

  take(): { fullCount: number; fullMaxMs: number; youngCount: number; youngMaxMs: number; liveMb: number; peakMb: number; allocatedMb: number } {
    const r = { fullCount: this.fullCount, fullMaxMs: this.fullMaxMs, youngCount: this.youngCount, youngMaxMs: this.youngMaxMs, liveMb: this.liveMb, peakMb: this.peakMb, allocatedMb: this.allocatedMb };
    this.fullCount = this.youngCount = 0;
    this.fullMaxMs = this.youngMaxMs = this.peakMb = this.allocatedMb = 0;
    return r;
  }
}

interface Server {
  name: string;
  port: number;
  pids: () => number[];
  gc?: GcLog;
  /** Admin /metrics URL (Tandem): event-loop delay since the previous scrape. */
  metricsUrl?: string;
  stop: () => Promise<void>;
}

const taskset = (core: number, cmd: string, args: string[]): [string, string[]] => (pin ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args]);

const startHelp = (() => {
  try {
    return execFileSync(process.execPath, [join(TANDEM_ROOT, 'bin/tandem.mjs'), 'start', '--help'], { env: { ...process.env, TANDEM_FROM_SOURCE: '1' } }).toString();
  } catch {
    return '';
  }
})();
const workersFlag = startHelp.includes('--workers');
const gcThreadsFlag = startHelp.includes('--gc-threads');
if (workerCounts.some((n) => n !== 1) && !workersFlag) throw new Error('this tandem has no `start --workers`: only --workers 1 can be measured');

async function startTandemServer(auth: boolean, workers: number, fastRegister = true, nativeUdp = true, linger?: number, extraFlags?: string[]): Promise<Server> {
  const port = await freePort();
  const adminPort = await freePort();
  const root = extraFlags && ROOT_B ? ROOT_B : TANDEM_ROOT;
  const args = [join(root, 'bin/tandem.mjs'), 'start', '--sip', `udp:127.0.0.1:${port}`, '--domain', DOMAIN, '--users', usersCsv, '--no-media', '--log-level', 'error', '--admin', `127.0.0.1:${adminPort}`];
  if (workersFlag) args.push('--workers', String(workers));
  if (!auth) args.push('--no-auth');
  // As deployed: one process is started with its helper count, workers get theirs from the primary.
  const gcThreads = gcThreadsArg === 'node' ? NODE_DEFAULT_POOL_SIZE : Number(gcThreadsArg ?? gcThreadsFor(cpus().length, workers));
  const nodeFlags = traceGc ? ['--trace-gc'] : [];
  if (cpuProfDir) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`);
  if (heapSnapshotDir) nodeFlags.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapSnapshotDir}`);
  if (workers === 1) nodeFlags.push(`--v8-pool-size=${gcThreads}`);
  if (extraFlags) nodeFlags.push(...extraFlags);
  else if (gcThreadsFlag) args.push('--gc-threads', String(gcThreads));
  const cfg = join(dir, `tandem${fastRegister ? '' : '-generic'}${linger ? `-l${linger}` : ''}.yaml`);
  writeFileSync(
    cfg,
    `signalling:\n  auth:\n    algorithms: [MD5]\n    maxFailures: 1000000\n${fastRegister ? '' : '  registrar:\n    fastPath: false\n'}${linger ? `  transaction:\n    lingerMs: ${linger}\n` : ''}`,
  );
  args.push('--config', cfg);
  const [cmd, full] = taskset(1, process.execPath, [...nodeFlags, ...args]);
  const child = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TANDEM_FROM_SOURCE: '1', ...(nativeUdp ? {} : { TANDEM_NATIVE_UDP: '0' }), ...(extraFlags ? envB : {}) } });
  const gc = new GcLog();
  await new Promise<void>((r, j) => {
    const t = setTimeout(() => j(new Error('tandem start not ready')), 30000);
    child.once('exit', (code, sig) => {
      clearTimeout(t);
      j(new Error(`tandem start exited: ${code ?? sig}`));
    });
    child.stdout!.on('data', (d: Buffer) => {
      const s = d.toString();
      gc.feed(s);
      if (s.includes('tandem: listening')) {
        clearTimeout(t);
        r();
      }
    });
  });
  const name = (workersArg ? `tandem-w${workers}` : 'tandem') + (fastRegister ? '' : '-generic') + (nativeUdp ? '' : '-dgram') + (linger ? `-l${linger}` : '') + (extraFlags ? '-b' : '');
  return { name, port, gc, metricsUrl: `http://127.0.0.1:${adminPort}/metrics`, pids: () => processTree(child.pid!), stop: () => stopChild(child) };
}

const stopping = new WeakSet<ChildProcess>();

async function stopChild(child: ChildProcess): Promise<void> {
  stopping.add(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 6000);
  await exited;
  clearTimeout(t);
}

/**
 * Kamailio 5.6 registrar + stateful proxy with `children` UDP workers (4 unless --kamailio-children), equivalent to Tandem's default
 * route: REGISTER challenged (qop=auth) except the callee, INVITEs record-routed and sent to the
 * registered contact, in-dialog requests loose-routed, retransmissions absorbed by tm.
 */
async function startKamailio(children = 4, named = 'kamailio'): Promise<Server> {
  const port = await freePort();
  const cfg = join(dir, `kamailio-${port}.cfg`);
  writeFileSync(
    cfg,
    `#!KAMAILIO
debug=-1
log_stderror=yes
fork=yes
children=${children}
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:${port}
alias="${DOMAIN}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "siputils.so"
loadmodule "auth.so"
loadmodule "textops.so"
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "hash_size", 14)
modparam("registrar", "max_contacts", 10)

request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (is_method("OPTIONS") && uri == myself && $rU == $null) { sl_send_reply("200", "OK"); exit; }
  if (has_totag()) {
    if (loose_route()) { t_relay(); exit; }
    if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
    sl_send_reply("404", "Not Here"); exit;
  }
  if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
  t_check_trans();
  if (is_method("REGISTER")) {
    if ($fU != "service") {
      $var(pw) = "p-" + $fU;
      if (!pv_www_authenticate("$td", "$var(pw)", "0")) { www_challenge("$td", "1"); exit; }
    }
    save("location");
    exit;
  }
  if (is_method("INVITE")) { record_route(); }
  if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
  t_relay();
}
`,
  );
  const [cmd, args] = taskset(1, '/usr/sbin/kamailio', ['-f', cfg, '-DD', '-E', '-m', '512', '-M', '64', '-Y', dir]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const until = Date.now() + 10000;
  while ((await options(port)) !== 200) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`kamailio did not start: ${err.slice(-1500)}`);
  }
  child.once('exit', (code, sig) => {
    if (!stopping.has(child)) console.log(`  (kamailio exited unexpectedly: ${code ?? sig}; stderr tail: ${err.slice(-400).replace(/\s+/g, ' ')})`);
  });
  return { name: named, port, pids: () => processTree(child.pid!), stop: () => stopChild(child) };
}

/** The SIPp UAS the calls end at (one for the whole run, registered at each server as `service`). */
async function startUas(): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const uasDir = join(dir, 'uas');
  mkdirSync(uasDir, { recursive: true });
  const [cmd, args] = taskset(0, 'sipp', ['-sf', join(SCENARIOS, 'uas-record-route.xml'), '-i', '127.0.0.1', '-p', String(port), '-nostdin', '-bg', ...sippBufferArgs]);
  // -bg: SIPp forks, prints its pid and the parent exits.
  const out = spawnSync(cmd, args, { cwd: uasDir }).stdout.toString();
  const pid = Number(/PID=\[(\d+)\]/.exec(out)?.[1] ?? /(\d+)/.exec(out)?.[1]);
  if (!pid) throw new Error(`sipp uas did not start: ${out}`);
  return {
    port,
    pid,
    stop: async () => {
      try {
        process.kill(pid, 'SIGUSR1'); // SIPp: end the scenario and exit
      } catch {
        /* gone */
      }
      await new Promise((r) => setTimeout(r, 300));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    },
  };
}

/** Event-loop delay p99 and max (s) since the previous scrape of the server's admin /metrics (undefined when it has none). */
async function eventLoopDelay(server: Server): Promise<{ p99: number; max: number } | undefined> {
  if (!server.metricsUrl) return undefined;
  try {
    const text = await (await fetch(server.metricsUrl, { signal: AbortSignal.timeout(3000) })).text();
    const v = (q: string) => Number(new RegExp(`^tandem_event_loop_delay_seconds\\{quantile="${q}"\\} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
    return { p99: v('0.99'), max: v('1') };
  } catch {
    return undefined;
  }
}

interface Step {
  server: string;
  rate: number;
  achieved: number;
  total: number;
  successful: number;
  failed: number;
  retransmissions: number;
  p50Ms: number;
  p99Ms: number;
  cpuPct: number;
  cpuUsPerCall: number;
  /** Share of that CPU spent in the server's own code (utime), the rest in the kernel (stime). */
  userShare: number;
  /** CPU of the SIPp processes driving the step, % of one core. */
  generatorPct: number;
  clean: boolean;
  gc?: ReturnType<GcLog['take']>;
}

/** Datagrams the kernel dropped at the UDP sockets bound to these loopback ports (full receive buffer). */
function udpDrops(ports: number[]): number {
  let drops = 0;
  for (const line of readFileSync('/proc/net/udp', 'latin1').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const port = parseInt(f[1]?.split(':')[1] ?? '', 16);
    if (ports.includes(port)) drops += Number(f[f.length - 1]);
  }
  return drops;
}

/** Last line of a SIPp -trace_stat file as a column -> value map, and the rows' OutgoingCall(C) over ElapsedTime. */
function readStats(file: string): { last: Map<string, string>; rows: Map<string, string>[] } {
  const lines = readFileSync(file, 'latin1').trim().split('\n');
  const head = lines[0]!.split(';');
  const rows = lines.slice(1).map((l) => new Map(l.split(';').map((v, i) => [head[i]!, v] as [string, string])));
  return { last: rows[rows.length - 1] ?? new Map(), rows };
}

const seconds = (hms: string | undefined): number => {
  // "00:00:12:345000" (h:m:s:us) in SIPp's stat file
  const p = (hms ?? '').split(':').map(Number);
  return p.length >= 3 ? p[0]! * 3600 + p[1]! * 60 + p[2]! + (p[3] ?? 0) / 1e6 : NaN;
};

async function step(server: Server, scenario: 'call' | 'register', rate: number): Promise<Step> {
  const total = Math.round(rate * stepSec);
  const stepDir = join(dir, `${server.name}-${scenario}-${rate}-${Date.now()}`);
  mkdirSync(stepDir);
  const stats = join(stepDir, 'stats.csv');
  const rtt = join(stepDir, 'rtt.csv');
  const sippArgs =
    scenario === 'call'
      ? ['-sf', join(SCENARIOS, 'bench-uac.xml'), '-s', 'service', '-key', 'domain', DOMAIN, '-d', String(callMs)]
      : ['-sf', join(SCENARIOS, 'bench-register.xml'), '-inf', injectionCsv];
  const uacPort = await freePort();
  const args = [
    ...sippArgs,
    `127.0.0.1:${server.port}`,
    '-i', '127.0.0.1',
    '-p', String(uacPort),
    '-m', String(total),
    '-r', String(rate),
    '-rp', '1000',
    '-l', String(Math.max(1000, rate * 20)),
    '-timeout', `${stepSec + 40}s`,
    '-timeout_error',
    '-trace_stat', '-stf', stats, '-fd', '1',
    '-trace_err',
    '-trace_rtt', '-rtt_freq', '200',
    '-nostdin',
    ...sippBufferArgs,
  ];
  const pids = server.pids();
  server.gc?.take();
  await eventLoopDelay(server); // resets the histogram
  const c0 = cpuSplit(pids);
  const t0 = Date.now();
  const [cmd, full] = taskset(0, 'sipp', args);
  const sipp = spawn(cmd, full, { cwd: stepDir, stdio: ['ignore', 'ignore', 'pipe'] });
  // The generator's CPU (SIPp UAC, and the UAS for calls): with the server's, what the machine
  // spends. Read every 0.5 s, each process's last reading kept (the UAC's ends when it exits).
  const generatorPids = scenario === 'call' ? [sipp.pid!, uas.pid] : [sipp.pid!];
  const generatorPorts = scenario === 'call' ? [uacPort, uas.port] : [uacPort];
  const drops0 = udpDrops(generatorPorts);
  const serverDrops0 = udpDrops([server.port]);
  const ticksOf = (pid: number) => {
    const c = cpuSplit([pid]);
    return c.user + c.system;
  };
  const g0 = generatorPids.map((pid, i) => (i === 0 ? 0 : ticksOf(pid)));
  const gLast = g0.slice();
  const gPoll = setInterval(() => generatorPids.forEach((pid, i) => (gLast[i] = Math.max(gLast[i]!, ticksOf(pid)))), 500);
  const snapshot = heapSnapshotDir && server.gc ? setTimeout(() => pids.forEach((pid) => process.kill(pid, 'SIGUSR2')), (stepSec * 2000) / 3) : undefined;
  let err = '';
  sipp.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const killer = setTimeout(() => sipp.kill('SIGKILL'), (stepSec + 60) * 1000);
  await new Promise((r) => sipp.once('exit', r));
  clearTimeout(killer);
  clearTimeout(snapshot);
  clearInterval(gPoll);
  const wallSec = (Date.now() - t0) / 1000;
  const sippDrops = udpDrops(generatorPorts) - drops0;
  const serverDrops = udpDrops([server.port]) - serverDrops0;
  const c1 = cpuSplit(pids);
  generatorPids.forEach((pid, i) => (gLast[i] = Math.max(gLast[i]!, ticksOf(pid))));
  const generatorPct = (gLast.reduce((a, t, i) => a + t - g0[i]!, 0) / CLK_TCK / wallSec) * 100;
  const userTicks = c1.user - c0.user;
  const ticks = userTicks + c1.system - c0.system;
  const gc = server.gc?.take();
  const loop = await eventLoopDelay(server);
  let last = new Map<string, string>();
  let achieved = 0;
  try {
    const s = readStats(stats);
    last = s.last;
    // Generation rate: calls placed over the time until the last one was placed.
    const full = s.rows.find((r) => Number(r.get('OutgoingCall(C)') ?? r.get('IncomingCall(C)')) >= total);
    const genSec = seconds(full?.get('ElapsedTime(C)') ?? last.get('ElapsedTime(C)'));
    achieved = Number(full?.get('OutgoingCall(C)') ?? last.get('OutgoingCall(C)')) / genSec;
  } catch (e) {
    console.log(`  (no SIPp statistics: ${(e as Error).message}; stderr: ${err.replace(/\s+/g, ' ').slice(-300)})`);
  }
  const times: number[] = [];
  for (const f of readdirSync(stepDir)) {
    if (!f.endsWith('_rtt.csv')) continue;
    for (const line of readFileSync(join(stepDir, f), 'latin1').split('\n')) {
      const v = Number(line.split(';')[1]);
      if (line && !Number.isNaN(v) && /^\d/.test(line)) times.push(v);
    }
  }
  times.sort((a, b) => a - b);
  const successful = Number(last.get('SuccessfulCall(C)') ?? 0);
  const failed = Number(last.get('FailedCall(C)') ?? 0) + Math.max(0, total - successful - Number(last.get('FailedCall(C)') ?? 0));
  const retransmissions = Number(last.get('Retransmissions(C)') ?? 0);
  const s: Step = {
    server: server.name,
    rate,
    achieved,
    total,
    successful,
    failed,
    retransmissions,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    cpuPct: (ticks / CLK_TCK / wallSec) * 100,
    cpuUsPerCall: successful > 0 ? ((ticks / CLK_TCK) * 1e6) / successful : NaN,
    userShare: ticks > 0 ? userTicks / ticks : NaN,
    generatorPct,
    clean: failed === 0 && retransmissions === 0 && successful === total,
    ...(gc ? { gc } : {}),
  };
  const gcText = gc
    ? `; heap live ${gc.liveMb.toFixed(0)} MB, peak ${gc.peakMb.toFixed(0)} MB, ${gc.fullCount} full GC (max ${gc.fullMaxMs.toFixed(1)} ms), ${gc.youngCount} young (max ${gc.youngMaxMs.toFixed(1)} ms), ` +
      `allocated ${successful > 0 ? ((gc.allocatedMb * 1e6) / successful / 1000).toFixed(1) : '?'} kB per ${scenario}`
    : '';
  const loopText = loop ? `; event-loop delay p99 ${(loop.p99 * 1000).toFixed(1)} max ${(loop.max * 1000).toFixed(1)} ms` : '';
  console.log(
    `  ${server.name.padEnd(10)} ${scenario.padEnd(8)} ${String(rate).padStart(5)}/s (achieved ${achieved.toFixed(0).padStart(5)}): ${successful}/${total} ok, ${failed} failed, ` +
      `${retransmissions} retrans, p50 ${s.p50Ms.toFixed(2)} p99 ${s.p99Ms.toFixed(1)} ms (${times.length} samples), CPU ${s.cpuPct.toFixed(0)}% = ${s.cpuUsPerCall.toFixed(0)} µs per ${scenario} (${(s.userShare * 100).toFixed(0)}% user), SIPp ${generatorPct.toFixed(0)}% (datagrams dropped at its sockets ${sippDrops}, at the server's ${serverDrops})${gcText}${loopText}`,
  );
  if (!s.clean) {
    // Why SIPp failed calls (-trace_err): the distinct reasons, Call-IDs and times left out.
    const reasons = new Map<string, number>();
    for (const f of readdirSync(stepDir)) {
      if (!f.endsWith('_errors.log')) continue;
      // One entry per "date<TAB>time<TAB>epoch: text", the text often followed by the message.
      for (const entry of readFileSync(join(stepDir, f), 'latin1').split(/(?=\d{4}-\d\d-\d\d\t\d\d:)/)) {
        const text = entry.replace(/^[\d\s:.-]+/, '').replace(/\r/g, '');
        if (text.startsWith('Maximum number of open sockets') || text.startsWith('The following events')) continue; // SIPp's notes, not failures
        const reason = text.split('\n').slice(0, 2).join(' ').replace(/'[^'\n]*@[^'\n]*'|\d+-\d+@[\d.]+/g, '…').slice(0, 200).trim();
        if (reason) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
    }
    for (const [reason, n] of [...reasons].sort((x, y) => y[1] - x[1]).slice(0, 4)) console.log(`      SIPp: ${n} x ${reason}`);
  }
  return s;
}

/**
 * Steps the servers through the same rates, alternating at each rate; a server stops at its
 * first step that is not clean (or whose achieved rate falls well short of the asked one).
 */
async function sweep(servers: Server[], scenario: 'call' | 'register', rates: number[]): Promise<Map<string, Step | undefined>> {
  const best = new Map<string, Step | undefined>(servers.map((s) => [s.name, undefined]));
  const active = new Set(servers.map((s) => s.name));
  for (const rate of rates) {
    for (const server of servers) {
      if (!active.has(server.name)) continue;
      const s = await step(server, scenario, rate);
      if (s.clean && s.achieved >= rate * 0.9) {
        const prev = best.get(server.name);
        if (!prev || s.achieved > prev.achieved) best.set(server.name, s);
      } else active.delete(server.name);
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (active.size === 0) break;
  }
  return best;
}

const results = new Map<string, { calls?: Step | undefined; register?: Step | undefined }>();
const running: Server[] = [];
const uas = await startUas();
try {
  if (only !== 'register') {
    // Calls: INVITEs are not authenticated (both servers); the callee `service` is the SIPp UAS.
    const callServers: Server[] = [];
    for (const w of workerCounts) callServers.push(await startTandemServer(false, w));
    if (dgramToo) callServers.push(await startTandemServer(false, workerCounts[0]!, true, false));
    if (lingerMs) callServers.push(await startTandemServer(false, workerCounts[0]!, true, true, lingerMs));
    if (flagsB) callServers.push(await startTandemServer(false, workerCounts[0]!, true, true, undefined, flagsB));
    if (withKamailio) for (const c of kamailioChildren ?? [4]) callServers.push(await startKamailio(c, kamailioChildren ? `kamailio-c${c}` : 'kamailio'));
    running.push(...callServers);
    for (const srv of callServers) {
      const st = await registerContact(srv.port, DOMAIN, 'service', uas.port);
      if (st !== 200) throw new Error(`${srv.name}: registering the callee failed (${st})`);
    }
    for (const [k, v] of await sweep(callServers, 'call', callRates)) results.set(k, { ...results.get(k), calls: v });
    for (const s of callServers) await s.stop();
  }
  if (only !== 'calls') {
    const regServers: Server[] = [];
    for (const w of workerCounts) regServers.push(await startTandemServer(true, w));
    if (genericRegister) regServers.push(await startTandemServer(true, workerCounts[0]!, false));
    if (dgramToo) regServers.push(await startTandemServer(true, workerCounts[0]!, true, false));
    if (flagsB) regServers.push(await startTandemServer(true, workerCounts[0]!, true, true, undefined, flagsB));
    if (withKamailio) for (const c of kamailioChildren ?? [4]) regServers.push(await startKamailio(c, kamailioChildren ? `kamailio-c${c}` : 'kamailio'));
    running.push(...regServers);
    for (const [k, v] of await sweep(regServers, 'register', regRates)) results.set(k, { ...results.get(k), register: v });
  }
} finally {
  for (const s of running) await s.stop();
  await uas.stop();
}

const fmt = (s: Step | undefined, what: string) =>
  s ? `${s.achieved.toFixed(0)}/s (CPU ${s.cpuPct.toFixed(0)}% of a core, ${s.cpuUsPerCall.toFixed(0)} µs per ${what}, p99 ${s.p99Ms.toFixed(1)} ms)` : 'no clean step';
console.log('\nsignalling results (highest rate of a step with 0 failed and 0 retransmissions):');
for (const [k, v] of results) {
  console.log(`  ${k.padEnd(10)} calls ${fmt(v.calls, 'call')}; REGISTER with digest over ${USERS} users ${fmt(v.register, 'REGISTER')}`);
}
const kam = results.get('kamailio');
if (kam) {
  for (const [k, v] of results) {
    if (k === 'kamailio') continue;
    const r = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : 'n/a');
    console.log(
      `  ${k}/kamailio: clean calls/s ${r(v.calls?.achieved, kam.calls?.achieved)}, CPU per call ${r(v.calls?.cpuUsPerCall, kam.calls?.cpuUsPerCall)} (at each one's top step); ` +
        `REGISTER/s ${r(v.register?.achieved, kam.register?.achieved)}, CPU per REGISTER ${r(v.register?.cpuUsPerCall, kam.register?.cpuUsPerCall)}`,
    );
  }
}
process.exit(0);
