/**
 * Signalling cluster benchmark.
 *
 *  1. Takeover: two `tandem start` nodes share a VIP through a Redis lease (`--takeover lease`).
 *     A call is set up through the VIP, the holder is SIGKILLed, and the call's BYE (retransmitted
 *     every 20 ms, as a phone's Timer E would at a faster pace) is sent to the VIP until the
 *     survivor answers it. Figure: SIGKILL -> BYE's 200, median and max over the trials (the
 *     published design quotes about 1 s for its switchover). The killed node is restarted and
 *     becomes the standby for the next trial.
 *  2. Cost of shared state: calls/s and server CPU per call through one node in memory mode, with
 *     `--redis`, and with `--redis` but calls still ringing not shared (`keepRingingCalls: false`),
 *     alternating at each rate (same background), plus Redis commands and Redis' own CPU per call.
 *
 *   node --import tsx bench/cluster.bench.ts [--trials N] [--quick]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runLoad } from '../src/loadgen/run-load.js';
import { startUas } from '../src/loadgen/uas.js';
import { CLK_TCK, cpuTicks, freePort } from './lib/proc.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const trials = argv.includes('--trials') ? Number(argv[argv.indexOf('--trials') + 1]) : quick ? 4 : 12;
const rates = quick ? [200] : [200, 400, 800];
const stepSec = quick ? 3 : 6;
const ROOT = resolve(import.meta.dirname, '..');
const DOMAIN = 'bench.test';
const VIP = '127.0.0.10';
const dir = mkdtempSync(join(tmpdir(), 'tandem-cluster-bench-'));

console.log(`cluster bench: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version} (2 cores shared by nodes, Redis and the load generator)`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

async function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((r) => child.once('exit', r));
}

// ---- Redis -------------------------------------------------------------------------------------

async function redisCommand(port: number, ...args: string[]): Promise<string> {
  const { createConnection } = await import('node:net');
  return new Promise((resolveReply, reject) => {
    const sock = createConnection(port, '127.0.0.1');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      // One reply is enough for our GET / INFO: a bulk string or simple line.
      if (buf.startsWith('$')) {
        const nl = buf.indexOf('\r\n');
        const len = Number(buf.slice(1, nl));
        if (len < 0) {
          sock.end();
          resolveReply('');
        } else if (buf.length >= nl + 2 + len) {
          sock.end();
          resolveReply(buf.slice(nl + 2, nl + 2 + len));
        }
      } else if (buf.includes('\r\n')) {
        sock.end();
        resolveReply(buf.slice(1, buf.indexOf('\r\n')));
      }
    });
    sock.on('error', reject);
    sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

async function startRedis(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' });
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await redisCommand(port, 'PING')) === 'PONG') break;
    } catch {
      /* not yet */
    }
    if (Date.now() > until) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, child };
}

/** calls per command name from INFO commandstats. */
async function commandCounts(port: number): Promise<Map<string, number>> {
  const info = await redisCommand(port, 'INFO', 'commandstats');
  return new Map([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

async function redisStat(port: number, field: string, section = 'stats'): Promise<number> {
  const info = await redisCommand(port, 'INFO', section);
  return Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
}

// ---- nodes -------------------------------------------------------------------------------------

interface Node {
  child: ChildProcess;
  name: string;
}

async function startNode(args: string[], name: string): Promise<Node> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'start', '--workers', '1', ...args, '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TANDEM_FROM_SOURCE: '1' } });
  await new Promise<void>((r, j) => {
    const t = setTimeout(() => j(new Error(`${name} not ready`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('tandem: listening')) {
        clearTimeout(t);
        r();
      }
    });
  });
  return { child, name };
}

/** One UDP socket that sends SIP text and collects responses by Call-ID. */
class Phone {
  sock = dgram.createSocket('udp4');
  port = 0;
  #waiters: Array<{ match: (t: string) => boolean; resolve: (t: string) => void }> = [];
  async open(): Promise<void> {
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r()));
    this.port = this.sock.address().port;
    this.sock.on('message', (m) => {
      const t = m.toString('latin1');
      const i = this.#waiters.findIndex((w) => w.match(t));
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(t);
    });
  }
  send(text: string, host: string, port: number): void {
    this.sock.send(Buffer.from(text, 'latin1'), port, host);
  }
  wait(match: (t: string) => boolean, ms: number): Promise<string | undefined> {
    return new Promise((r) => {
      const w = { match, resolve: (t: string) => r(t) };
      this.#waiters.push(w);
      setTimeout(() => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) {
          this.#waiters.splice(i, 1);
          r(undefined);
        }
      }, ms);
    });
  }
}

function request(phone: Phone, o: { method: string; uri: string; callId: string; cseq: number; toTag?: string; routes?: string[]; branch: string; sdp?: boolean }): string {
  return [
    `${o.method} ${o.uri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=${o.branch};rport`,
    'Max-Forwards: 70',
    ...(o.routes ?? []).map((r) => `Route: ${r}`),
    `From: <sip:caller@${DOMAIN}>;tag=c1`,
    `To: <sip:service@${DOMAIN}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
    `Call-ID: ${o.callId}`,
    `CSeq: ${o.cseq} ${o.method}`,
    `Contact: <sip:caller@127.0.0.1:${phone.port}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

const isFinal = (callId: string, method: string) => (t: string) => /^SIP\/2\.0 [2-6]\d\d/.test(t) && t.includes(`Call-ID: ${callId}`) && new RegExp(`CSeq: \\d+ ${method}`).test(t);

async function takeoverTrials(): Promise<number[]> {
  const redis = await startRedis();
  const sipPort = await freePort();
  const uas = await startUas({ listen: { address: '127.0.0.1', port: 0 } });
  const nodeArgs = (n: number) => ['--node-id', `sip${n}`, '--sip', `udp:127.0.0.${n + 1}:${sipPort}`, '--vip', VIP, '--takeover', 'lease', '--redis', `redis://127.0.0.1:${redis.port}`, '--no-auth', '--no-media', '--domain', DOMAIN];
  const nodes = new Map<string, Node>();
  nodes.set('sip1', await startNode(nodeArgs(1), 'sip1'));
  nodes.set('sip2', await startNode(nodeArgs(2), 'sip2'));
  const phone = new Phone();
  await phone.open();
  const results: number[] = [];
  try {
    // The callee registers through the VIP (shared location store).
    const regId = `reg-${Date.now()}`;
    phone.send(
      [`REGISTER sip:${DOMAIN} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bKreg1;rport`, 'Max-Forwards: 70', `From: <sip:service@${DOMAIN}>;tag=r1`, `To: <sip:service@${DOMAIN}>`, `Call-ID: ${regId}`, 'CSeq: 1 REGISTER', `Contact: <sip:service@127.0.0.1:${uas.address.port}>`, 'Expires: 3600', 'Content-Length: 0', '', ''].join('\r\n'),
      VIP,
      sipPort,
    );
    await new Promise((r) => setTimeout(r, 1000));
    if (!(await phone.wait(isFinal(regId, 'REGISTER'), 1)) && !(await redisCommand(redis.port, 'GET', `tandem:tandem:lease:${VIP}`))) throw new Error('no VIP holder');
    for (let trial = 0; trial < trials; trial++) {
      const callId = `to-${trial}-${Date.now()}@bench`;
      const inviteP = phone.wait(isFinal(callId, 'INVITE'), 5000);
      phone.send(request(phone, { method: 'INVITE', uri: `sip:service@${DOMAIN}`, callId, cseq: 1, branch: `z9hG4bKi${trial}` }), VIP, sipPort);
      const ok = await inviteP;
      if (!ok || !ok.startsWith('SIP/2.0 200')) throw new Error(`trial ${trial}: INVITE not answered 200 (${ok?.split('\r\n')[0] ?? 'timeout'})`);
      const toTag = /\r\nTo:[^\r]*;tag=([^;\r\s>]+)/i.exec(ok)?.[1] ?? '';
      const routes = [...ok.matchAll(/\r\nRecord-Route: ([^\r]+)/gi)].map((m) => m[1]!).reverse();
      const contact = /\r\nContact: <([^>]+)>/i.exec(ok)?.[1] ?? `sip:service@127.0.0.1:${uas.address.port}`;
      phone.send(request(phone, { method: 'ACK', uri: contact, callId, cseq: 1, toTag, routes, branch: `z9hG4bKa${trial}` }), VIP, sipPort);
      await new Promise((r) => setTimeout(r, 100));
      const holder = (await redisCommand(redis.port, 'GET', `tandem:tandem:lease:${VIP}`)).split('|')[0]!;
      const victim = nodes.get(holder)!;
      const killedAt = performance.now();
      victim.child.kill('SIGKILL');
      const byeText = request(phone, { method: 'BYE', uri: contact, callId, cseq: 2, toTag, routes, branch: `z9hG4bKb${trial}` });
      const byeP = phone.wait(isFinal(callId, 'BYE'), 10_000);
      const timer = setInterval(() => phone.send(byeText, VIP, sipPort), 20);
      phone.send(byeText, VIP, sipPort);
      const bye = await byeP;
      clearInterval(timer);
      const ms = performance.now() - killedAt;
      if (!bye?.startsWith('SIP/2.0 200')) throw new Error(`trial ${trial}: BYE after takeover got ${bye?.split('\r\n')[0] ?? 'no answer'}`);
      results.push(ms);
      console.log(`  trial ${trial + 1}/${trials}: ${holder} SIGKILLed, BYE answered by the survivor after ${ms.toFixed(0)} ms`);
      await waitExit(victim.child);
      const n = Number(holder.slice(3));
      nodes.set(holder, await startNode(nodeArgs(n), holder));
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    phone.sock.close();
    for (const n of nodes.values()) n.child.kill('SIGKILL');
    await uas.close();
    redis.child.kill('SIGKILL');
  }
  return results;
}

// ---- cost of shared state ------------------------------------------------------------------------

interface CostStep {
  mode: string;
  rate: number;
  ok: number;
  failed: number;
  retrans: number;
  achieved: number;
  cpuUsPerCall: number;
  redisCmdsPerCall: number;
  redisUsPerCall: number;
}

async function costSteps(): Promise<CostStep[]> {
  const redis = await startRedis();
  const uas = await startUas({ listen: { address: '127.0.0.1', port: 0 } });
  const out: CostStep[] = [];
  try {
    const noRinging = join(dir, 'no-ringing.yaml');
    writeFileSync(noRinging, 'cluster:\n  keepRingingCalls: false\n');
    const modes: Array<{ mode: string; extra: string[] }> = [
      { mode: 'memory', extra: [] },
      { mode: 'redis', extra: ['--redis', `redis://127.0.0.1:${redis.port}`] },
      // Calls still ringing not shared (no INVITE record): the cost of keeping them.
      { mode: 'redis-no-ringing', extra: ['--redis', `redis://127.0.0.1:${redis.port}`, '--config', noRinging] },
    ];
    for (const rate of rates) {
      for (const m of modes) {
        const port = await freePort();
        const node = await startNode(['--node-id', `cost-${m.mode}`, '--sip', `udp:127.0.0.1:${port}`, '--no-auth', '--no-media', '--domain', DOMAIN, ...m.extra], m.mode);
        try {
          const phone = new Phone();
          await phone.open();
          const regId = `reg-${m.mode}-${rate}`;
          const regP = phone.wait(isFinal(regId, 'REGISTER'), 3000);
          phone.send(
            [`REGISTER sip:${DOMAIN} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bKr${rate};rport`, 'Max-Forwards: 70', `From: <sip:service@${DOMAIN}>;tag=r1`, `To: <sip:service@${DOMAIN}>`, `Call-ID: ${regId}`, 'CSeq: 1 REGISTER', `Contact: <sip:service@127.0.0.1:${uas.address.port}>`, 'Expires: 3600', 'Content-Length: 0', '', ''].join('\r\n'),
            '127.0.0.1',
            port,
          );
          await regP;
          phone.sock.close();
          // Warm-up (JIT, caches), not measured.
          const load = (calls: number) =>
            runLoad({
              scenario: 'call',
              target: { address: '127.0.0.1', port },
              transport: 'udp',
              localAddress: '127.0.0.1',
              rate,
              calls,
              durationMs: 0,
              timeoutMs: 8000,
              stopAfterMs: (calls / rate) * 1000 + 10_000,
              domain: DOMAIN,
              service: 'service',
              workers: 1,
              progress: 'none',
            });
          await load(rate * 2);
          const total = rate * stepSec;
          const c0 = cpuTicks(node.child.pid);
          const r0 = await redisStat(redis.port, 'total_commands_processed');
          const cc0 = await commandCounts(redis.port);
          const rc0 = (await redisStat(redis.port, 'used_cpu_sys', 'cpu')) + (await redisStat(redis.port, 'used_cpu_user', 'cpu'));
          const t0 = Date.now();
          const r = await load(total);
          const wall = (Date.now() - t0) / 1000;
          const f = r.figures;
          const cpuSec = (cpuTicks(node.child.pid) - c0) / CLK_TCK;
          const cmds = (await redisStat(redis.port, 'total_commands_processed')) - r0;
          const rcpu = (await redisStat(redis.port, 'used_cpu_sys', 'cpu')) + (await redisStat(redis.port, 'used_cpu_user', 'cpu')) - rc0;
          const calls = Math.max(1, f.successful);
          const cc1 = await commandCounts(redis.port);
          const perCmd = [...cc1].map(([k, v]) => [k, (v - (cc0.get(k) ?? 0)) / calls] as const).filter(([, v]) => v >= 0.05);
          const s: CostStep = {
            mode: m.mode,
            rate,
            ok: f.successful,
            failed: f.failed,
            retrans: f.retransmissions,
            achieved: f.successful / wall,
            cpuUsPerCall: (cpuSec * 1e6) / calls,
            redisCmdsPerCall: m.mode !== 'memory' ? cmds / calls : 0,
            redisUsPerCall: m.mode !== 'memory' ? (rcpu * 1e6) / calls : 0,
          };
          out.push(s);
          console.log(
            `  ${s.mode.padEnd(16)} ${String(rate).padStart(4)} calls/s: ${s.ok}/${total} ok, ${s.failed} failed, ${s.retrans} retrans, node CPU ${s.cpuUsPerCall.toFixed(0)} µs/call` +
              (m.mode !== 'memory' ? `, Redis ${s.redisCmdsPerCall.toFixed(1)} commands and ${s.redisUsPerCall.toFixed(0)} µs CPU per call (${perCmd.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')})` : ''),
          );
        } finally {
          node.child.kill('SIGTERM');
          await waitExit(node.child);
        }
      }
    }
  } finally {
    await uas.close();
    redis.child.kill('SIGKILL');
  }
  return out;
}

try {
  console.log(`takeover (SIGKILL of the VIP holder -> in-dialog BYE answered by the survivor), ${trials} trials:`);
  const t = await takeoverTrials();
  console.log('cost of shared state (one node, memory vs --redis, alternating):');
  const c = await costSteps();
  console.log('\ncluster results:');
  console.log(`  takeover: median ${median(t).toFixed(0)} ms, max ${Math.max(...t).toFixed(0)} ms, min ${Math.min(...t).toFixed(0)} ms over ${t.length} trials (published design: about 1 s)`);
  for (const rate of rates) {
    const mem = c.find((x) => x.mode === 'memory' && x.rate === rate);
    const red = c.find((x) => x.mode === 'redis' && x.rate === rate);
    const off = c.find((x) => x.mode === 'redis-no-ringing' && x.rate === rate);
    if (mem && red && off) {
      console.log(
        `  ${rate} calls/s: CPU per call ${mem.cpuUsPerCall.toFixed(0)} µs memory vs ${red.cpuUsPerCall.toFixed(0)} µs Redis (${(red.cpuUsPerCall / mem.cpuUsPerCall).toFixed(2)}x; goal <= 1.3x), ` +
          `${red.redisCmdsPerCall.toFixed(1)} Redis commands per call; ringing calls kept vs not: ${red.cpuUsPerCall.toFixed(0)} vs ${off.cpuUsPerCall.toFixed(0)} µs (${(red.cpuUsPerCall / off.cpuUsPerCall).toFixed(2)}x; goal <= 1.1x); failed ${mem.failed} / ${red.failed} / ${off.failed}`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
