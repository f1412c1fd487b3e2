/**
 * RTP relay benchmark: Tandem's media node against Debian's rtpengine (userspace forwarding),
 * driven the same way and measured in the same run.
 *
 *   node --import tsx bench/relay.bench.ts [--budget-sec 150] [--duration-ms 3000] [--only tandem|rtpengine]
 *        [--tandem engine|ng] [--forwarders js,native] [--repeat N] [--workers N] [--gen native|node] [--gen-threads 2]
 *        [--levels 100,200,...] [--ports 2000-15999] [--cpu-prof]
 *
 * Each relay runs as its own process so its CPU is attributable (/proc/<pid>/stat: all threads).
 * Tandem is driven either through its RelayEngine in a small child process (`--tandem engine`,
 * the default: the forwarding engine alone) or as `tandem media` over ng (`--tandem ng`,
 * exactly like rtpengine). rtpengine is always driven over ng: offer + answer per call, bencode
 * written here directly.
 *
 * Generator: every call has two streams (A -> relay -> B and B -> relay -> A) of G.711-sized
 * packets (12-octet RTP header + 160 octets) every 20 ms, i.e. 100 packets/s through the relay
 * per call, spread evenly over time (1 ms or finer). `--gen native` (default) is a small C
 * program embedded below, built with the system compiler, batching with sendmmsg/recvmmsg so it
 * takes a fraction of a core; `--gen node` uses worker threads with one dgram send per packet
 * (about as costly as the relay itself, so on 2 cores it is the bottleneck). A step runs N calls
 * for a fixed time, waits until nothing more arrives, and compares packets received with
 * packets sent. A step passes with < 0.1% loss and the last packet within 500 ms of the end
 * (a relay that is seconds behind is not forwarding in real time). N steps up; one retry at a
 * failing level.
 *
 * Columns: relay cores = relay CPU over the sending window; pps/core = packets received per
 * relay CPU-second (the efficiency figure); queued = octets waiting in relay / generator socket
 * queues when sending ended (where the backlog is); drops = kernel drops at relay sockets /
 * other sockets / per-CPU input backlog.
 *
 * Figures are from a shared 2-core machine: the generator, the relay and other people's work
 * compete for the same cores, so absolute numbers are a floor and noisy. Runs at the same N
 * alternate between the relays to share the noise.
 *
 * Tandem runs each forwarder it is asked for (`--forwarders js,native`, default both) in its own
 * child; rtpengine is the third relay. `--repeat N` runs the sweep N times and prints ranges.
 * The headline figure is packets per relay CPU-second (less sensitive to the machine's load than
 * the highest passing rate, which on 2 shared cores is mostly set by the generator and neighbours).
 *
 * Recorded 2026-11-22 ~04:20 UTC, 2 vCPU VM shared with other engineers' builds and tests (load
 * average 7-9, machine 1.8-2.0 cores busy during steps), Node 20.20, rtpengine 10.5.3.5 userspace,
 * native generator, 2000 ms steps, 3 rounds each:
 *   js, native, rtpengine (--levels 400,700,1100; every relay passed every level, so the highest
 *   passing rate is a tie at 110k pkt/s, ratio 1.00):
 *     pkt per relay CPU-second  js 113-124k, native 259-293k, rtpengine 153-176k
 *     native/rtpengine 1.47-1.77, js/rtpengine 0.64-0.81
 *     CPU at 110k pkt/s (of a core)  js 71-84%, native 35-39%, rtpengine 52-61%
 *   native vs rtpengine (--forwarders native --ports 2000-29999 --levels 1800,2600,3400):
 *     highest passing rate  native 340k pkt/s in 3/3 rounds (the top level; 3400 calls),
 *     rtpengine 260-340k; ratio 1.00-1.31
 *     pkt per relay CPU-second  native 326-356k, rtpengine 214-235k; ratio 1.45-1.62
 *   --tandem ng (tandem media, native by default, control thread included), one round:
 *     236k vs 183k pkt per CPU-second (1.29); ng offer+answer RTT p50 0.56 ms vs 0.35 ms.
 * Before the native forwarder (JS workers only): ratio 0.6-0.85 of rtpengine. Profile of a JS
 * worker at 80k pkt/s (perf): ~57% kernel, ~28% Node's per-datagram C++ (UDPWrap, rinfo objects,
 * 64 KiB receive buffer per datagram), ~10% malloc/free, ~5% JavaScript: the per-datagram cost
 * of Node's dgram, which the native forwarder removes (recvmmsg/sendmmsg batches, no objects).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createInterface } from 'node:readline';

const LO = '127.0.0.1';
const PACKET_BYTES = 172;
const STREAM_PPS = 50;
const CALL_PPS = 2 * STREAM_PPS;
const LOSS_LIMIT = 0.001;
/** Calls set up one at a time (idle relay) whose round trips give the control RTT figure. */
const RTT_SAMPLES = 50;
/** A relay whose last packets arrive this long after sending stopped has fallen behind real time. */
const SETTLE_LIMIT_MS = 500;

function passes(r: { loss: number; settleMs: number }): boolean {
  return r.loss < LOSS_LIMIT && r.settleMs <= SETTLE_LIMIT_MS;
}

/** Packets forwarded per second of relay CPU (all its threads). */
function perCore(r: { recv: number; relayCpuSec: number }): number {
  return r.recv / Math.max(r.relayCpuSec, 0.01);
}
const here = fileURLToPath(import.meta.url);
const repo = join(dirname(here), '..');

function literalLookup(address: string, _f: unknown, cb: (e: Error | null, a: string, f: number) => void): void {
  cb(null, address, 4);
}

// ---------------------------------------------------------------------------------------------
// Generator worker
// ---------------------------------------------------------------------------------------------

interface GenCall {
  sock: number;
  /** Relay port where side A sends (and B receives from). */
  toA: number;
  /** Relay port where side B sends. */
  toB: number;
}
type GenIn = { t: 'run'; calls: GenCall[]; durationMs: number; ssrcBase: number } | { t: 'collect' } | { t: 'exit' };

async function generatorWorker(): Promise<void> {
  const { sockets: nSock } = workerData as { sockets: number };
  const port = parentPort!;
  const mk = async (): Promise<Socket> => {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literalLookup as never });
    await new Promise<void>((res) => s.bind(0, LO, () => res()));
    return s;
  };
  const aSocks: Socket[] = [];
  const bSocks: Socket[] = [];
  for (let i = 0; i < nSock; i++) {
    aSocks.push(await mk());
    bSocks.push(await mk());
  }
  let recv = 0;
  for (const s of [...aSocks, ...bSocks]) {
    s.on('message', () => {
      recv++;
    });
    s.on('error', () => undefined);
  }
  port.postMessage({ t: 'ready', a: aSocks.map((s) => s.address().port), b: bSocks.map((s) => s.address().port) });

  let sent = 0;
  let sendErrors = 0;
  port.on('message', (m: GenIn) => {
    if (m.t === 'exit') {
      for (const s of [...aSocks, ...bSocks]) s.close();
      port.close();
      return;
    }
    if (m.t === 'collect') {
      port.postMessage({ t: 'result', sent, recv, sendErrors });
      return;
    }
    // One stream per call direction, each with its own packet buffer.
    const n = m.calls.length * 2;
    const socks: Socket[] = [];
    const dests = new Int32Array(n);
    const bufs: Buffer[] = [];
    const seqs = new Uint16Array(n);
    const tss = new Uint32Array(n);
    m.calls.forEach((c, i) => {
      socks.push(aSocks[c.sock]!, bSocks[c.sock]!);
      dests[2 * i] = c.toA;
      dests[2 * i + 1] = c.toB;
    });
    for (let i = 0; i < n; i++) {
      const b = Buffer.alloc(PACKET_BYTES, 0xd5); // PCMA silence
      b[0] = 0x80;
      b[1] = 8;
      b.writeUInt32BE((m.ssrcBase + i) >>> 0, 8);
      bufs.push(b);
      seqs[i] = (Math.random() * 65536) | 0;
    }
    sent = 0;
    recv = 0;
    sendErrors = 0;
    const ratePerMs = (n * STREAM_PPS) / 1000;
    const total = Math.floor(ratePerMs * m.durationMs);
    const start = performance.now();
    let next = 0;
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - start) * ratePerMs));
      while (sent < due) {
        const i = next;
        next = next + 1 === n ? 0 : next + 1;
        const b = bufs[i]!;
        const seq = seqs[i]!;
        b[2] = seq >> 8;
        b[3] = seq & 0xff;
        seqs[i] = seq + 1;
        const ts = tss[i]!;
        b.writeUInt32BE(ts, 4);
        tss[i] = ts + 160;
        try {
          socks[i]!.send(b, dests[i]!, LO);
        } catch {
          sendErrors++;
        }
        sent++;
      }
      if (sent >= total) {
        clearInterval(timer);
        port.postMessage({ t: 'sent', sent });
      }
    };
    const timer = setInterval(tick, 1);
  });
}

// ---------------------------------------------------------------------------------------------
// Tandem engine child process (--tandem engine)
// ---------------------------------------------------------------------------------------------

async function relayChild(): Promise<void> {
  const opts = JSON.parse(process.argv[3]!) as { portMin: number; portMax: number; workers?: number; forwarder: 'js' | 'native' };
  const { RelayEngine } = await import('../src/media/relay/relay-engine.js');
  const engine = new RelayEngine({
    interface: LO,
    portMin: opts.portMin,
    portMax: opts.portMax,
    quarantineMs: 1000,
    forwarder: opts.forwarder,
    ...(opts.workers ? { workers: opts.workers } : {}),
  });
  await engine.start();
  const out = (o: unknown): boolean => process.stdout.write(JSON.stringify(o) + '\n');
  out({ t: 'ready', pid: process.pid, workers: engine.workerCount, forwarder: engine.forwarder });
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const m = JSON.parse(line) as { t: string; req: number; a?: number; b?: number; id?: number };
    if (m.t === 'call') {
      // Like an offer/answer with symmetric latching: peers known from SDP.
      const r = await engine.allocatePair(`call-${m.req}`);
      if (!r.ok) {
        out({ t: 'reply', req: m.req, error: r.code });
        continue;
      }
      engine.setPeer(r.value.id, 'a', { rtp: { address: LO, port: m.a! } }, { latch: true, strictSource: false });
      engine.setPeer(r.value.id, 'b', { rtp: { address: LO, port: m.b! } }, { latch: true, strictSource: false });
      out({ t: 'reply', req: m.req, id: r.value.id, toA: r.value.a.rtpPort, toB: r.value.b.rtpPort });
    } else if (m.t === 'totals') {
      out({ t: 'reply', req: m.req, totals: await engine.totals() });
    } else if (m.t === 'exit') {
      await engine.stop();
      process.exit(0);
    }
  }
  await engine.stop();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Relay drivers
// ---------------------------------------------------------------------------------------------

interface CallTargets {
  toA: number;
  toB: number;
}

interface Relay {
  name: string;
  pid: number;
  /** Sets up one call whose A side is at `a` and B side at `b`; returns where each side sends. */
  call(i: number, a: number, b: number): Promise<CallTargets>;
  portMin: number;
  portMax: number;
  /** Offer+answer (or engine) round trips measured, ms. */
  rtts: number[];
  stop(): Promise<void>;
}

function waitLine(child: ChildProcess, pred: (o: Record<string, unknown>) => boolean, ms: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error('timed out waiting for child'));
    }, ms);
    rl.on('line', (line) => {
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        if (pred(o)) {
          clearTimeout(timer);
          rl.close();
          resolve(o);
        }
      } catch {
        /* not ours */
      }
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

function killChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function startTandemEngine(portMin: number, portMax: number, cpuProf: boolean, forwarder: 'js' | 'native', workers?: number): Promise<Relay> {
  const child = spawn(process.execPath, [...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir=/tmp/relay-prof'] : []), '--import', 'tsx', here, '--relay-child', JSON.stringify({ portMin, portMax, forwarder, ...(workers ? { workers } : {}) })], {
    cwd: repo,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, TANDEM_LOG_LEVEL: 'warn', ...tandemEnv() },
  });
  // The first native start may compile the addon (a few seconds).
  const ready = await waitLine(child, (o) => o.t === 'ready', 120_000);
  if (ready.forwarder !== forwarder) {
    await killChild(child);
    throw new Error(`asked for the ${forwarder} forwarder, got ${String(ready.forwarder)}`);
  }
  const pending = new Map<number, (o: Record<string, unknown>) => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const o = JSON.parse(line) as Record<string, unknown>;
    const done = pending.get(o.req as number);
    if (done) {
      pending.delete(o.req as number);
      done(o);
    }
  });
  let req = 0;
  const rtts: number[] = [];
  const ask = (m: Record<string, unknown>): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const r = ++req;
      pending.set(r, resolve);
      child.stdin!.write(JSON.stringify({ ...m, req: r }) + '\n');
    });
  return {
    name: `Tandem ${forwarder} (engine, ${String(ready.workers)} thr)`,
    pid: child.pid!,
    portMin,
    portMax,
    rtts,
    async call(_i, a, b) {
      const r = await ask({ t: 'call', a, b });
      if (r.error) throw new Error(String(r.error));
      return { toA: r.toA as number, toB: r.toB as number };
    },
    async stop() {
      child.stdin!.write(JSON.stringify({ t: 'exit', req: 0 }) + '\n');
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
      await killChild(child);
    },
  };
}

// --- minimal bencode (requests we write, replies we read) ---

function bencode(v: unknown): string {
  if (typeof v === 'number') return `i${Math.trunc(v)}e`;
  if (typeof v === 'string') return `${Buffer.byteLength(v)}:${v}`;
  if (Array.isArray(v)) return `l${v.map(bencode).join('')}e`;
  const o = v as Record<string, unknown>;
  return `d${Object.keys(o)
    .sort()
    .map((k) => bencode(k) + bencode(o[k]))
    .join('')}e`;
}

function bdecode(buf: Buffer, pos = { i: 0 }): unknown {
  const c = buf[pos.i]!;
  if (c === 0x69) {
    const end = buf.indexOf(0x65, pos.i);
    const n = Number(buf.subarray(pos.i + 1, end).toString());
    pos.i = end + 1;
    return n;
  }
  if (c === 0x6c || c === 0x64) {
    pos.i++;
    const list: unknown[] = [];
    while (buf[pos.i] !== 0x65) list.push(bdecode(buf, pos));
    pos.i++;
    if (c === 0x6c) return list;
    const o: Record<string, unknown> = {};
    for (let k = 0; k < list.length; k += 2) o[String(list[k])] = list[k + 1];
    return o;
  }
  const colon = buf.indexOf(0x3a, pos.i);
  const len = Number(buf.subarray(pos.i, colon).toString());
  const s = buf.subarray(colon + 1, colon + 1 + len).toString();
  pos.i = colon + 1 + len;
  return s;
}

class NgClient {
  readonly #sock = createSocket('udp4');
  readonly #pending = new Map<string, (o: Record<string, unknown>) => void>();
  #n = 0;
  constructor(readonly port: number) {
    this.#sock.on('message', (m) => {
      const sp = m.indexOf(0x20);
      if (sp < 0) return;
      const cookie = m.subarray(0, sp).toString();
      const done = this.#pending.get(cookie);
      if (!done) return;
      this.#pending.delete(cookie);
      try {
        done(bdecode(m.subarray(sp + 1)) as Record<string, unknown>);
      } catch {
        done({ result: 'error', 'error-reason': 'undecodable reply' });
      }
    });
  }
  async open(): Promise<void> {
    await new Promise<void>((res) => this.#sock.bind(0, LO, () => res()));
  }
  send(msg: Record<string, unknown>, timeoutMs = 2000): Promise<Record<string, unknown>> {
    const cookie = `b${process.pid}_${++this.#n}`;
    const data = Buffer.from(`${cookie} ${bencode(msg)}`);
    return new Promise((resolve, reject) => {
      let tries = 0;
      const attempt = (): void => {
        if (tries++ >= 3) {
          this.#pending.delete(cookie);
          reject(new Error(`ng ${String(msg.command)} timed out`));
          return;
        }
        this.#sock.send(data, this.port, LO);
        timer = setTimeout(attempt, timeoutMs);
      };
      let timer: NodeJS.Timeout | undefined;
      this.#pending.set(cookie, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
      attempt();
    });
  }
  close(): void {
    this.#sock.close();
  }
}

function sdp(port: number, id: number): string {
  return ['v=0', `o=- ${id} 1 IN IP4 ${LO}`, 's=-', `c=IN IP4 ${LO}`, 't=0 0', `m=audio ${port} RTP/AVP 8 0 101`, 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');
}

function sdpPort(s: unknown): number {
  const m = /m=audio (\d+)/.exec(String(s));
  if (!m) throw new Error(`no m=audio in reply SDP: ${String(s).slice(0, 200)}`);
  return Number(m[1]);
}

async function ngRelay(name: string, child: ChildProcess, ngPort: number, portMin: number, portMax: number): Promise<Relay> {
  const ng = new NgClient(ngPort);
  await ng.open();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pong = await ng.send({ command: 'ping' }, 300).catch(() => undefined);
    if (pong?.result === 'pong') break;
    if (Date.now() > deadline) throw new Error(`${name} does not answer ng ping`);
  }
  const rtts: number[] = [];
  const tag = `${process.pid}`;
  return {
    name,
    pid: child.pid!,
    portMin,
    portMax,
    rtts,
    async call(i, a, b) {
      const callId = `bench-${tag}-${i}`;
      const offer = await ng.send({ command: 'offer', 'call-id': callId, 'from-tag': `ft${i}`, sdp: sdp(a, i), flags: ['trust-address'], replace: ['origin'] });
      if (offer.result !== 'ok') throw new Error(`${name} offer: ${JSON.stringify(offer)}`);
      const answer = await ng.send({ command: 'answer', 'call-id': callId, 'from-tag': `ft${i}`, 'to-tag': `tt${i}`, sdp: sdp(b, i), flags: ['trust-address'], replace: ['origin'] });
      if (answer.result !== 'ok') throw new Error(`${name} answer: ${JSON.stringify(answer)}`);
      // The offer's rewritten SDP goes to B: B sends there. The answer's goes to A.
      return { toA: sdpPort(answer.sdp), toB: sdpPort(offer.sdp) };
    },
    async stop() {
      ng.close();
      await killChild(child);
    },
  };
}

async function startRtpengine(ngPort: number, portMin: number, portMax: number): Promise<Relay> {
  const child = spawn(
    '/usr/bin/rtpengine',
    [
      '--config-file=none',
      '--foreground',
      `--interface=${LO}`,
      `--listen-ng=${LO}:${ngPort}`,
      `--port-min=${portMin}`,
      `--port-max=${portMax}`,
      '--table=-1',
      '--log-stderr',
      '--log-level=4',
      '--num-threads=2',
      '--timeout=3600',
      '--delete-delay=0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let errText = '';
  child.stderr!.on('data', (d: Buffer) => (errText = (errText + d.toString()).slice(-2000)));
  try {
    return await ngRelay('rtpengine (userspace, 2 threads)', child, ngPort, portMin, portMax);
  } catch (err) {
    await killChild(child);
    throw new Error(`${(err as Error).message}; stderr: ${errText}`);
  }
}

async function startTandemNg(portMin: number, portMax: number, cpuProf: boolean): Promise<Relay> {
  const child = spawn(
    process.execPath,
    [...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir=/tmp/relay-prof'] : []), '--import', 'tsx', join(repo, 'src/cli/main.ts'), 'media', '--ng', `${LO}:0`, '--interface', LO, '--rtp-ports', `${portMin}-${portMax}`, '--max-sessions', '1000000', '--timeout', '3600', '--log-level', 'warn'],
    { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...tandemEnv() } },
  );
  const ready = await waitLine(child, (o) => o.event === 'ready', 20_000);
  return ngRelay('Tandem (tandem media over ng)', child, ready.ngPort as number, portMin, portMax);
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

const TICKS = 100; // USER_HZ on Linux

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS; // utime, stime (fields 14, 15)
}

/** Kernel receive-buffer drops summed over UDP sockets on 127.0.0.1, split by a port predicate. */
/** Inodes of the sockets a process holds (/proc/<pid>/fd -> socket:[inode]). */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (l.startsWith('socket:[')) out.add(l.slice(8, -1));
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // process gone
  }
  return out;
}

/**
 * Kernel receive drops and queued octets of the relay's and the generator's UDP sockets
 * (/proc/net/udp, matched by inode so other people's sockets on this machine do not count).
 */
function udpDrops(relay: Set<string>, gen: (port: number) => boolean): { relay: number; other: number; relayQueued: number; otherQueued: number } {
  const out = { relay: 0, other: 0, relayQueued: 0, otherQueued: 0 };
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = parseInt(f[1]!.split(':')[1]!, 16);
    const drops = Number(f[12]);
    const queued = parseInt(f[4]!.split(':')[1]!, 16);
    if (relay.has(f[9]!)) {
      out.relay += drops;
      out.relayQueued += queued;
    } else if (gen(port)) {
      out.other += drops;
      out.otherQueued += queued;
    }
  }
  return out;
}

/** /proc/net/softnet_stat column 2: packets dropped because a CPU's input backlog was full. */
function softnetDrops(): number {
  return readFileSync('/proc/net/softnet_stat', 'utf8')
    .trim()
    .split('\n')
    .reduce((s, l) => s + parseInt(l.trim().split(/\s+/)[1] ?? '0', 16), 0);
}

function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = line[3]! + (line[4] ?? 0);
  const total = line.reduce((s, x) => s + x, 0);
  return { busy: (total - idle) / TICKS, total: total / TICKS };
}

/** A traffic generator: `slots` are its sending/receiving socket pairs (one per thread). */
interface Generator {
  name: string;
  /** OS process to charge CPU to when it is not this one. */
  pid?: number;
  slots: { a: number[]; b: number[] }[];
  /** Starts every slot's share of calls; resolves when all packets of the step have been sent. */
  run(perSlot: GenCall[][], durationMs: number): Promise<void>;
  /** Packets sent and received so far in this step. */
  collect(): Promise<{ sent: number; recv: number }>;
  stop(): Promise<void>;
}

/** Node generator: worker threads in this process, one dgram send per packet. */
async function startNodeGenerator(threads: number, sockets: number): Promise<Generator> {
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsxApi = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(here).href)}); })`;
  const workers = await Promise.all(
    Array.from({ length: threads }, async () => {
      const worker = new Worker(code, { eval: true, workerData: { role: 'gen', sockets } });
      const ready = await new Promise<{ a: number[]; b: number[] }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      return { worker, a: ready.a, b: ready.b };
    }),
  );
  const ask = <T>(w: Worker, msg: unknown, reply: string): Promise<T> =>
    new Promise<T>((resolve) => {
      const onMsg = (m: { t: string }): void => {
        if (m.t === reply) {
          w.off('message', onMsg);
          resolve(m as T);
        }
      };
      w.on('message', onMsg);
      w.postMessage(msg);
    });
  return {
    name: `${threads} Node worker threads`,
    slots: workers.map((w) => ({ a: w.a, b: w.b })),
    async run(perSlot, durationMs) {
      await Promise.all(workers.map((w, g) => ask(w.worker, { t: 'run', calls: perSlot[g], durationMs, ssrcBase: g << 24 }, 'sent')));
    },
    async collect() {
      const rs = await Promise.all(workers.map((w) => ask<{ sent: number; recv: number }>(w.worker, { t: 'collect' }, 'result')));
      return { sent: rs.reduce((x, r) => x + r.sent, 0), recv: rs.reduce((x, r) => x + r.recv, 0) };
    },
    async stop() {
      for (const w of workers) {
        w.worker.postMessage({ t: 'exit' });
        await Promise.race([new Promise((r) => w.worker.once('exit', r)), new Promise((r) => setTimeout(r, 1000))]);
        await w.worker.terminate();
      }
    },
  };
}

/**
 * Native generator: a small C program (source below, built with the system compiler on first
 * use) that batches sends with sendmmsg and receives with recvmmsg, so it needs several times
 * less CPU than the relays under test and leaves the shared cores to them.
 */
const GEN_C = String.raw`#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PKT 172
#define BATCH 64
#define MAXT 16

typedef struct {
  int sa, sb, port_a, port_b;
  int ncalls;
  unsigned short *to_a, *to_b, *seq;
  unsigned int *ts;
  long total;
  double per_ns;
  struct timespec start;
  atomic_long sent, recv;
  atomic_int run, done;
} gen_t;

static gen_t gens[MAXT];
static int nthreads = 2;
static atomic_int quit;

static long ns_since(struct timespec *a) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - a->tv_sec) * 1000000000L + (now.tv_nsec - a->tv_nsec);
}

static int mksock(int *port) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int sz = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  /* Two sockets per thread take every returning packet: past rmem_max where allowed (root), so
     a generator thread descheduled for a while on a busy machine does not drop what a relay
     forwarded in time. */
  int big = 64 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
  socklen_t l = sizeof a;
  getsockname(s, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return s;
}

static void *loop(void *arg) {
  gen_t *g = arg;
  static __thread unsigned char bufs[2][BATCH][PKT];
  static __thread struct sockaddr_in addrs[2][BATCH];
  static __thread struct iovec iov[2][BATCH];
  static __thread struct mmsghdr msgs[2][BATCH];
  static __thread unsigned char rb[BATCH][2048];
  static __thread struct iovec riov[BATCH];
  static __thread struct mmsghdr rmsgs[BATCH];
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < BATCH; i++) {
      memset(bufs[k][i], 0xd5, PKT);
      bufs[k][i][0] = 0x80;
      bufs[k][i][1] = 8;
      iov[k][i].iov_base = bufs[k][i];
      iov[k][i].iov_len = PKT;
      addrs[k][i].sin_family = AF_INET;
      addrs[k][i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      memset(&msgs[k][i], 0, sizeof msgs[k][i]);
      msgs[k][i].msg_hdr.msg_iov = &iov[k][i];
      msgs[k][i].msg_hdr.msg_iovlen = 1;
      msgs[k][i].msg_hdr.msg_name = &addrs[k][i];
      msgs[k][i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    }
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = rb[i];
    riov[i].iov_len = sizeof rb[i];
    memset(&rmsgs[i], 0, sizeof rmsgs[i]);
    rmsgs[i].msg_hdr.msg_iov = &riov[i];
    rmsgs[i].msg_hdr.msg_iovlen = 1;
  }
  long cursor = 0, sent = 0;
  int was_running = 0;
  while (!atomic_load(&quit)) {
    int busy = 0;
    if (atomic_load(&g->run)) {
      if (!was_running) { cursor = 0; sent = 0; was_running = 1; }
      long streams = 2L * g->ncalls;
      long due = (long)(ns_since(&g->start) * g->per_ns);
      if (due > g->total) due = g->total;
      while (sent < due && streams > 0) {
        int n[2] = {0, 0};
        long want = due - sent;
        if (want > BATCH) want = BATCH;
        for (long k = 0; k < want; k++) {
          long st = cursor;
          cursor = cursor + 1 == streams ? 0 : cursor + 1;
          int side = st & 1;
          long call = st >> 1;
          int j = n[side]++;
          unsigned char *b = bufs[side][j];
          unsigned short seq = g->seq[st]++;
          unsigned int ts = g->ts[st];
          g->ts[st] = ts + 160;
          b[2] = seq >> 8; b[3] = seq & 0xff;
          b[4] = ts >> 24; b[5] = ts >> 16; b[6] = ts >> 8; b[7] = ts;
          unsigned int ssrc = (unsigned int)st + 1;
          b[8] = ssrc >> 24; b[9] = ssrc >> 16; b[10] = ssrc >> 8; b[11] = ssrc;
          addrs[side][j].sin_port = htons(side == 0 ? g->to_a[call] : g->to_b[call]);
        }
        int stalled = 0;
        for (int side = 0; side < 2; side++) {
          int off = 0;
          while (off < n[side]) {
            int r = sendmmsg(side == 0 ? g->sa : g->sb, msgs[side] + off, n[side] - off, 0);
            if (r <= 0) { stalled = 1; break; }
            off += r;
          }
          sent += off;
          if (off < n[side]) sent += 0;
        }
        atomic_store(&g->sent, sent);
        busy = 1;
        if (stalled) break;
      }
      if (sent >= g->total) {
        atomic_store(&g->run, 0);
        atomic_store(&g->done, 1);
        was_running = 0;
      }
    }
    for (int side = 0; side < 2; side++) {
      for (;;) {
        int r = recvmmsg(side == 0 ? g->sa : g->sb, rmsgs, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        atomic_fetch_add(&g->recv, r);
        busy = 1;
        if (r < BATCH) break;
      }
    }
    if (!busy) {
      struct pollfd p[2] = {{.fd = g->sa, .events = POLLIN}, {.fd = g->sb, .events = POLLIN}};
      struct timespec t = {0, atomic_load(&g->run) ? 500000 : 20000000};
      ppoll(p, 2, &t, NULL);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) nthreads = atoi(argv[1]);
  if (nthreads < 1 || nthreads > MAXT) nthreads = 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t th[MAXT];
  for (int t = 0; t < nthreads; t++) {
    gens[t].sa = mksock(&gens[t].port_a);
    gens[t].sb = mksock(&gens[t].port_b);
    printf("ports %d %d %d\n", t, gens[t].port_a, gens[t].port_b);
    pthread_create(&th[t], NULL, loop, &gens[t]);
  }
  printf("ready\n");
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    long dur; int ncalls;
    if (sscanf(line, "run %ld %d", &dur, &ncalls) == 2) {
      int *tt = malloc(sizeof(int) * ncalls);
      unsigned short *ta = malloc(2 * ncalls), *tb = malloc(2 * ncalls);
      for (int i = 0; i < ncalls; i++) {
        if (!fgets(line, sizeof line, stdin)) return 1;
        int a, b, t;
        sscanf(line, "%d %d %d", &t, &a, &b);
        tt[i] = t % nthreads; ta[i] = a; tb[i] = b;
      }
      for (int t = 0; t < nthreads; t++) {
        gen_t *g = &gens[t];
        free(g->to_a); free(g->to_b); free(g->seq); free(g->ts);
        int n = 0;
        for (int i = 0; i < ncalls; i++) n += tt[i] == t;
        g->ncalls = n;
        g->to_a = malloc(2 * (n + 1)); g->to_b = malloc(2 * (n + 1));
        g->seq = malloc(2 * 2 * (n + 1)); g->ts = malloc(4 * 2 * (n + 1));
        for (int i = 0, k = 0; i < ncalls; i++) if (tt[i] == t) { g->to_a[k] = ta[i]; g->to_b[k] = tb[i]; k++; }
        for (int s = 0; s < 2 * n; s++) { g->seq[s] = rand(); g->ts[s] = rand(); }
        g->per_ns = 2.0 * n * 50 / 1e9;
        g->total = (long)(2.0 * n * 50 * dur / 1000);
        atomic_store(&g->sent, 0);
        atomic_store(&g->recv, 0);
        atomic_store(&g->done, g->total == 0);
      }
      free(tt); free(ta); free(tb);
      for (int t = 0; t < nthreads; t++) {
        clock_gettime(CLOCK_MONOTONIC, &gens[t].start);
        if (gens[t].total > 0) atomic_store(&gens[t].run, 1);
      }
      for (;;) {
        int all = 1;
        for (int t = 0; t < nthreads; t++) all &= atomic_load(&gens[t].done);
        if (all) break;
        usleep(1000);
      }
      long s = 0;
      for (int t = 0; t < nthreads; t++) s += atomic_load(&gens[t].sent);
      printf("sent %ld\n", s);
    } else if (strncmp(line, "collect", 7) == 0) {
      long s = 0, r = 0;
      for (int t = 0; t < nthreads; t++) { s += atomic_load(&gens[t].sent); r += atomic_load(&gens[t].recv); }
      printf("result %ld %ld\n", s, r);
    } else if (strncmp(line, "exit", 4) == 0) {
      break;
    }
  }
  atomic_store(&quit, 1);
  for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  return 0;
}
`;

async function startNativeGenerator(threads: number): Promise<Generator | undefined> {
  const { createHash } = await import('node:crypto');
  const { existsSync, writeFileSync } = await import('node:fs');
  const { spawnSync } = await import('node:child_process');
  const bin = `/tmp/tandem-relay-bench-gen-${createHash('sha1').update(GEN_C).digest('hex').slice(0, 12)}`;
  if (!existsSync(bin)) {
    writeFileSync(`${bin}.c`, GEN_C);
    const cc = spawnSync('cc', ['-O2', '-pthread', '-o', bin, `${bin}.c`], { encoding: 'utf8' });
    if (cc.status !== 0) {
      console.log(`native generator not built (${(cc.error?.message ?? cc.stderr).slice(0, 200)}); using the Node generator`);
      return undefined;
    }
  }
  const child = spawn(bin, [String(threads)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  const queued: string[] = [];
  lines.on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queued.push(l);
  });
  const next = (): Promise<string> => (queued.length ? Promise.resolve(queued.shift()!) : new Promise((r) => waiting.push(r)));
  const slots: { a: number[]; b: number[] }[] = [];
  for (;;) {
    const l = await next();
    if (l === 'ready') break;
    const [, , a, b] = l.split(' ');
    slots.push({ a: [Number(a)], b: [Number(b)] });
  }
  return {
    name: `native (C, sendmmsg/recvmmsg), ${threads} threads`,
    pid: child.pid!,
    slots,
    async run(perSlot, durationMs) {
      const rows = perSlot.flatMap((calls, t) => calls.map((c) => `${t} ${c.toA} ${c.toB}`));
      child.stdin!.write(`run ${durationMs} ${rows.length}\n${rows.join('\n')}${rows.length ? '\n' : ''}`);
      const l = await next();
      if (!l.startsWith('sent ')) throw new Error(`generator: ${l}`);
    },
    async collect() {
      child.stdin!.write('collect\n');
      const [, sent, recv] = (await next()).split(' ');
      return { sent: Number(sent), recv: Number(recv) };
    },
    async stop() {
      child.stdin!.write('exit\n');
      await killChild(child);
    },
  };
}

interface StepResult {
  relay: string;
  calls: number;
  offeredPps: number;
  sent: number;
  recv: number;
  loss: number;
  forwardedPps: number;
  /** Relay CPU (all threads) over the sending window, in cores. */
  relayCores: number;
  /** Relay CPU seconds from the start of sending until the last packet arrived. */
  relayCpuSec: number;
  /** Octets waiting in relay / generator socket receive queues when sending ended. */
  queuedAtEnd: string;
  machineBusyCores: number;
  /** Generator CPU in cores (native generator only). */
  genCores: number;
  /** Kernel drops during the step at the relay's sockets and elsewhere (generator sockets). */
  dropsRelay: number;
  dropsOther: number;
  /** Packets dropped by the kernel's per-CPU input backlog (loopback under CPU saturation). */
  backlogDrops: number;
  /** Time until the last packets of the step arrived after sending ended. */
  settleMs: number;
}

/** Calls set up so far on each relay, by generator: grown as N steps up, reused between steps. */
class CallPool {
  readonly perGen: GenCall[][];
  count = 0;
  constructor(
    readonly relay: Relay,
    readonly gen: Generator,
  ) {
    this.perGen = gen.slots.map(() => []);
  }
  async grow(n: number): Promise<void> {
    const todo: number[] = [];
    for (let i = this.count; i < n; i++) todo.push(i);
    let next = 0;
    // The first calls one at a time: their round trips are the RTT figure. The rest 16 at a time.
    while (next < todo.length && this.count + next < RTT_SAMPLES) {
      const i = todo[next++]!;
      await this.setup(i, true);
    }
    const workers = Array.from({ length: 16 }, async () => {
      while (next < todo.length) {
        await this.setup(todo[next++]!, false);
      }
    });
    await Promise.all(workers);
    this.count = Math.max(this.count, n);
  }
  async setup(i: number, timed: boolean): Promise<void> {
    const g = i % this.gen.slots.length;
    const gen = this.gen.slots[g]!;
    const sock = Math.floor(i / this.gen.slots.length) % gen.a.length;
    const t0 = performance.now();
    const t = await this.relay.call(i, gen.a[sock]!, gen.b[sock]!);
    if (timed) this.relay.rtts.push(performance.now() - t0);
    this.perGen[g]!.push({ sock, toA: t.toA, toB: t.toB });
  }
}

async function runStep(pool: CallPool, calls: number, durationMs: number): Promise<StepResult> {
  await pool.grow(calls);
  // Each generator slot takes its share of the first `calls` calls.
  const n = pool.gen.slots.length;
  const shares = pool.gen.slots.map((_, g) => pool.perGen[g]!.slice(0, Math.ceil((calls - g) / n)));
  const genPorts = new Set(pool.gen.slots.flatMap((g) => [...g.a, ...g.b]));
  const isGenPort = (p: number): boolean => genPorts.has(p);
  const inodes = socketInodes(pool.relay.pid);
  const d0 = udpDrops(inodes, isGenPort);
  const n0 = softnetDrops();
  const cpu0 = cpuSeconds(pool.relay.pid);
  const g0 = pool.gen.pid ? cpuSeconds(pool.gen.pid) : 0;
  const m0 = machineCpu();
  const t0 = performance.now();
  await pool.gen.run(shares, durationMs);
  const sendWall = (performance.now() - t0) / 1000;
  const atEnd = udpDrops(socketInodes(pool.relay.pid), isGenPort);
  // Stragglers: wait until nothing more arrives (100 ms quiet), at most 3 s, so that no packet
  // of this step is counted in the next one.
  let result = await pool.gen.collect();
  const quietUntil = Date.now() + 3000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const again = await pool.gen.collect();
    const same = again.recv === result.recv;
    result = again;
    if (same || Date.now() > quietUntil) break;
  }
  const settleMs = 3000 - (quietUntil - Date.now());
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(pool.relay.pid);
  const m1 = machineCpu();
  const d1 = udpDrops(socketInodes(pool.relay.pid), isGenPort);
  const { sent, recv } = result;
  const genCores = pool.gen.pid ? (cpuSeconds(pool.gen.pid) - g0) / wall : NaN;
  return {
    relay: pool.relay.name,
    calls,
    offeredPps: calls * CALL_PPS,
    sent,
    recv,
    loss: sent === 0 ? 1 : Math.max(0, 1 - recv / sent),
    // Stragglers of an overloaded previous step can arrive during this one: never count more than was sent.
    forwardedPps: Math.min(recv, sent) / (durationMs / 1000),
    relayCores: (cpu1 - cpu0) / sendWall,
    relayCpuSec: cpu1 - cpu0,
    queuedAtEnd: `${(atEnd.relayQueued / 1024).toFixed(0)}k/${(atEnd.otherQueued / 1024).toFixed(0)}k`,
    machineBusyCores: (m1.busy - m0.busy) / wall,
    genCores,
    settleMs,
    backlogDrops: softnetDrops() - n0,
    dropsRelay: d1.relay - d0.relay,
    dropsOther: d1.other - d0.other,
  };
}

/** `--tandem-env K=V` (repeatable): extra environment for the Tandem process only (e.g. LD_PRELOAD of another malloc). */
function tandemEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  process.argv.forEach((a, i) => {
    if (a === '--tandem-env' && process.argv[i + 1]?.includes('=')) {
      const kv = process.argv[i + 1]!;
      out[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    }
  });
  return out;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<void> {
  const budgetMs = Number(arg('--budget-sec', '150')) * 1000;
  const durationMs = Number(arg('--duration-ms', '3000'));
  const only = arg('--only', '');
  const tandemMode = arg('--tandem', 'engine');
  const forwarders = arg('--forwarders', 'js,native').split(',').filter((f): f is 'js' | 'native' => f === 'js' || f === 'native');
  const rounds = Math.max(1, Number(arg('--repeat', '1')));
  const genThreads = Number(arg('--gen-threads', '2'));
  const cpuProf = process.argv.includes('--cpu-prof');
  const levels = arg('--levels', '100,200,300,400,500,650,800,1000,1200,1400,1700,2000,2400,2800,3300,4000,5000')
    .split(',')
    .map(Number);
  const started = Date.now();

  const gen = (arg('--gen', 'native') === 'native' ? await startNativeGenerator(genThreads) : undefined) ?? (await startNodeGenerator(genThreads, 8));
  const relays: Relay[] = [];
  // One port range per relay (4 ports per call), splitting --ports. The default stays below the
  // ranges the test suites pick (16000-32000, 47000+) and the kernel's ephemeral ports (32768+);
  // it holds 14000 ports, 3500 calls over all relays. A dedicated machine can pass e.g. 2000-32599.
  const [portsLow, portsHigh] = arg('--ports', '2000-15999').split('-').map(Number) as [number, number];
  const nRelays = (only === 'rtpengine' ? 0 : tandemMode === 'ng' ? 1 : forwarders.length) + (only === 'tandem' ? 0 : 1);
  const span = 2 * Math.floor((portsHigh - portsLow + 1) / Math.max(1, nRelays) / 2);
  const base = portsLow + (portsLow % 2);
  const rangeOf = (k: number): [number, number] => [base + k * span, base + k * span + span - 1];
  try {
    if (only !== 'rtpengine') {
      if (tandemMode === 'ng') relays.push(await startTandemNg(...rangeOf(0), cpuProf));
      else {
        for (const [k, f] of forwarders.entries()) {
          try {
            relays.push(await startTandemEngine(...rangeOf(k), cpuProf, f, Number(arg('--workers', '0')) || undefined));
          } catch (err) {
            console.log(`Tandem ${f} not run: ${(err as Error).message.slice(0, 300)}`);
          }
        }
      }
    }
    if (only !== 'tandem') {
      try {
        relays.push(await startRtpengine(40000 + Math.floor(Math.random() * 2000), ...rangeOf(nRelays - 1)));
      } catch (err) {
        console.log(`rtpengine not run: ${(err as Error).message.slice(0, 300)}`);
      }
    }
    const pools = relays.map((r) => new CallPool(r, gen));
    const isRtpengine = (r: Relay): boolean => r.name.startsWith('rtpengine');
    const engineRelay = relays.find(isRtpengine);
    /** Per relay, per round: max pkt/s under the loss limit and pkt/s per relay CPU-second over passing steps. */
    const maxPps = new Map<string, number[]>();
    const effPps = new Map<string, number[]>();
    const push = (m: Map<string, number[]>, k: string, v: number): void => void (m.get(k) ?? m.set(k, []).get(k)!).push(v);
    console.log(`relay bench: ${PACKET_BYTES}-octet packets, ${STREAM_PPS} pps per stream, ${CALL_PPS} pps per call, ${durationMs} ms per step, generator: ${gen.name}, ${rounds} round(s)`);
    for (let round = 1; round <= rounds; round++) {
      if (Date.now() - started > budgetMs) break;
      const results: StepResult[] = [];
      const best = new Map<string, StepResult>();
      const failures = new Map<string, number>();
      console.log(`\nround ${round}/${rounds}`);
      console.log('relay                               calls  offered pps  fwd pps   loss%  relay cores  pps/core  gen cores  machine busy  settle ms  queued relay/gen  drops relay/gen/backlog');
      outer: for (const calls of levels) {
        for (const pool of pools) {
          const name = pool.relay.name;
          if ((failures.get(name) ?? 0) >= 2) continue;
          if (Date.now() - started > budgetMs) break outer;
          let r: StepResult;
          try {
            r = await runStep(pool, calls, durationMs);
          } catch (err) {
            console.log(`${name}: step ${calls} calls failed: ${(err as Error).message}`);
            failures.set(name, 2);
            continue;
          }
          results.push(r);
          console.log(
            `${name.padEnd(35)} ${String(calls).padStart(5)}  ${String(r.offeredPps).padStart(11)}  ${r.forwardedPps.toFixed(0).padStart(7)}  ${(r.loss * 100).toFixed(3).padStart(6)}  ${r.relayCores.toFixed(2).padStart(11)}  ${perCore(r).toFixed(0).padStart(8)}  ${(Number.isNaN(r.genCores) ? '-' : r.genCores.toFixed(2)).padStart(9)}  ${r.machineBusyCores.toFixed(2).padStart(12)}  ${String(r.settleMs).padStart(9)}  ${r.queuedAtEnd.padStart(16)}  ${r.dropsRelay}/${r.dropsOther}/${r.backlogDrops}`,
          );
          if (passes(r)) {
            const prev = best.get(name);
            if (!prev || r.forwardedPps > prev.forwardedPps) best.set(name, r);
          } else {
            // One retry at a failing level: the machine is shared and noisy.
            failures.set(name, (failures.get(name) ?? 0) + 1);
          }
        }
        if (pools.every((p) => (failures.get(p.relay.name) ?? 0) >= 2)) break;
      }

      console.log(`\nround ${round} summary (highest rate with < 0.1% loss and last packet within ${SETTLE_LIMIT_MS} ms; machine: 2 cores shared with generator and other work, figures noisy)`);
      for (const r of relays) {
        const b = best.get(r.name);
        const what = r.name.includes('engine,') ? 'engine allocate+setPeer RTT (no ng)' : 'ng offer+answer RTT';
        const rtt = `${what} p50 ${pct(r.rtts, 50).toFixed(2)} ms, max ${Math.max(...r.rtts).toFixed(2)} ms (${r.rtts.length} calls one at a time)`;
        // Efficiency over every passing step (more steps, less noise): packets per relay CPU-second.
        const ok = results.filter((x) => x.relay === r.name && passes(x));
        const cpu = ok.reduce((sum, x) => sum + x.relayCpuSec, 0);
        const eff = cpu > 0 ? ok.reduce((sum, x) => sum + x.recv, 0) / cpu : NaN;
        if (Number.isFinite(eff)) push(effPps, r.name, eff);
        if (!b) {
          console.log(`  ${r.name}: no step under the loss limit; ${rtt}`);
          continue;
        }
        push(maxPps, r.name, b.forwardedPps);
        console.log(
          `  ${r.name}: ${b.forwardedPps.toFixed(0)} pkt/s forwarded (${b.calls} concurrent calls at ${CALL_PPS} pkt/s), loss ${(b.loss * 100).toFixed(3)}%, relay CPU ${(b.relayCores * 100).toFixed(0)}% of a core; ${eff.toFixed(0)} pkt per relay CPU-second over passing steps; ${rtt}`,
        );
      }
      const e = engineRelay && best.get(engineRelay.name);
      for (const t of relays) {
        if (!engineRelay || t === engineRelay) continue;
        const tb = best.get(t.name);
        if (tb && e) console.log(`  ratio ${t.name} / rtpengine, max pkt/s under 0.1% loss: ${(tb.forwardedPps / e.forwardedPps).toFixed(2)}`);
        const te = effPps.get(t.name)?.[round - 1];
        const ee = effPps.get(engineRelay.name)?.[round - 1];
        if (te && ee) console.log(`  ratio ${t.name} / rtpengine, pkt per CPU-second: ${(te / ee).toFixed(2)}`);
      }
      // CPU at equal load: the highest level every relay passed.
      const passing = results.filter((r) => passes(r));
      const levelsAll = [...new Set(passing.map((r) => r.calls))].filter((c) => passing.filter((r) => r.calls === c).length === relays.length);
      const top = Math.max(...levelsAll);
      if (relays.length > 1 && Number.isFinite(top)) {
        const cores = relays.map((r) => `${r.name} ${(passing.find((x) => x.calls === top && x.relay === r.name)!.relayCores * 100).toFixed(0)}%`);
        console.log(`  CPU at equal load (${top} calls, ${top * CALL_PPS} pkt/s), of a core: ${cores.join(', ')}`);
      }
    }

    if (rounds > 1) {
      const range = (xs: number[] | undefined): string => (xs && xs.length ? `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)} (n=${xs.length})` : '-');
      const ratioRange = (a: number[] | undefined, b: number[] | undefined): string => {
        if (!a || !b) return '-';
        const rs = a.slice(0, b.length).map((x, i) => x / b[i]!);
        return rs.length ? `${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)}` : '-';
      };
      console.log(`\nranges over ${rounds} rounds (max pkt/s under 0.1% loss | pkt per relay CPU-second)`);
      for (const r of relays) console.log(`  ${r.name.padEnd(35)} ${range(maxPps.get(r.name)).padEnd(22)} | ${range(effPps.get(r.name))}`);
      if (engineRelay) {
        for (const t of relays) {
          if (t === engineRelay) continue;
          console.log(`  ratio ${t.name} / rtpengine: max pkt/s ${ratioRange(maxPps.get(t.name), maxPps.get(engineRelay.name))}, pkt per CPU-second ${ratioRange(effPps.get(t.name), effPps.get(engineRelay.name))}`);
        }
      }
    }
    console.log(`total time ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    for (const r of relays) await r.stop().catch(() => undefined);
    await gen.stop().catch(() => undefined);
  }
}

if (process.argv[2] === '--relay-child') {
  await relayChild();
} else if (!isMainThread && (workerData as { role?: string } | null)?.role === 'gen') {
  await generatorWorker();
} else if (isMainThread) {
  await main();
}
