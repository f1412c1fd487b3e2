/**
 * End-to-end SIP figure and profile through `tandem start` (processes as a user runs them):
 *
 *   tandem load call  --UDP-->  tandem start --no-auth --no-media  --UDP-->  tandem load uas
 *
 * The callee registers as `service` (one raw REGISTER), then `tandem load call` places calls at
 * a fixed rate (INVITE-100-180-200-ACK-BYE-200). Prints completed calls/s, failures and the CPU
 * of the `tandem start` process (utime+stime from /proc, % of one core). With `--profile` the
 * node runs under `--cpu-prof` and the top self-time functions are printed.
 *
 *   node --import tsx bench/sip-e2e-profile.ts [--rate 300] [--seconds 10] [--profile] [--top 30]
 *
 * Bounded: calls stop after --seconds; every child is killed at the end. Loopback only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { registerContact } from './lib/udp-sip.js';
import { CLK_TCK, cpuTicks } from './lib/proc.js';

const ROOT = resolve(import.meta.dirname, '..');
const argv = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
};
const RATE = Number(opt('rate', '300'));
const SECONDS = Number(opt('seconds', '10'));
const PROFILE = argv.includes('--profile');
const TOP = Number(opt('top', '30'));
const DOMAIN = 'e2e.test';
const dir = mkdtempSync(join(tmpdir(), 'tandem-e2e-'));
const children: ChildProcess[] = [];

function start(args: string[], nodeFlags: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeFlags, join(ROOT, 'bin/tandem.mjs'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: 'error' },
  });
  children.push(child);
  return child;
}

function waitLine(child: ChildProcess, re: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolveLine, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`${what} not ready: ${buf.slice(-400)}`)), 30_000);
    const on = (d: Buffer) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) {
        clearTimeout(t);
        child.stdout!.off('data', on);
        resolveLine(m);
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', (d: Buffer) => (buf += d.toString()));
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${buf.slice(-400)}`)));
  });
}

/** [utime, stime] in clock ticks. */
function cpuSplit(pid: number): [number, number] {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return [Number(f[11]), Number(f[12])];
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function register(proxyPort: number, uasPort: number): Promise<number> {
  const status = await registerContact(proxyPort, DOMAIN, 'service', uasPort, 5000);
  if (status === 0) throw new Error('REGISTER: no answer');
  return status;
}

function topSelf(file: string, n: number): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const cf = byId.get(id)!.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*?\/(src|node_modules)\//, '$1/')}`;
    const dt = p.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}

try {
  console.log(`sip e2e: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; 2 shared cores: load generator, UAS and node compete, figures are noisy`);
  const port = await freeUdpPort();
  const profDir = join(dir, 'prof');
  const node = start(
    ['start', '--workers', '1', '--sip', `udp:127.0.0.1:${port}`, '--domain', DOMAIN, '--no-auth', '--no-media', '--log-level', 'error'],
    PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
  );
  await waitLine(node, /tandem: listening/, 'tandem start');
  const uas = start(['load', 'uas', '--listen', '127.0.0.1:0', '--progress', 'none']);
  const uasPort = Number((await waitLine(uas, /listening udp [\d.]+:(\d+)/, 'tandem load uas'))[1]);
  const st = await register(port, uasPort);
  if (st !== 200) throw new Error(`REGISTER of the callee failed: ${st}`);
  const calls = RATE * SECONDS;
  const cpu0 = cpuTicks(node.pid!);
  const split0 = cpuSplit(node.pid!);
  const t0 = performance.now();
  const caller = start([
    'load', 'call', '--target', `127.0.0.1:${port}`, '--domain', DOMAIN, '--rate', String(RATE), '--calls', String(calls),
    '--stop-after', `${SECONDS + 20}s`, '--progress', 'none', '--summary', 'json', '--workers', '1',
  ]);
  let out = '';
  caller.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  caller.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((r) => caller.once('exit', () => r()));
  const wallS = (performance.now() - t0) / 1000;
  const cpuS = (cpuTicks(node.pid!) - cpu0) / CLK_TCK;
  const split1 = cpuSplit(node.pid!);
  const userS = (split1[0] - split0[0]) / CLK_TCK;
  const sysS = (split1[1] - split0[1]) / CLK_TCK;
  const line = out.split('\n').reverse().find((l) => l.startsWith('{'));
  const fig = line ? (JSON.parse(line) as Record<string, unknown>) : {};
  const done = Number(fig['completed'] ?? fig['callsCompleted'] ?? fig['successful'] ?? NaN);
  console.log(`  offered ${RATE} calls/s for ${SECONDS} s (${calls} calls) in ${wallS.toFixed(1)} s`);
  console.log(`  load call summary: ${line ?? out.slice(-600)}`);
  if (Number.isFinite(done)) console.log(`  completed calls/s: ${(done / wallS).toFixed(0)}`);
  console.log(`  tandem start CPU: ${cpuS.toFixed(2)} s = ${((100 * cpuS) / wallS).toFixed(0)}% of one core; ${Number.isFinite(done) && done > 0 ? `${((cpuS * 1e6) / done).toFixed(0)} µs CPU per call` : ''} (user ${userS.toFixed(2)} s, system ${sysS.toFixed(2)} s)`);
  if (PROFILE) {
    node.kill('SIGTERM');
    await new Promise<void>((r) => node.once('exit', () => r()));
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    const biggest = files.map((f) => join(profDir, f)).sort((a, b) => readFileSync(b).length - readFileSync(a).length)[0];
    if (biggest) {
      console.log(`  top self time in tandem start (${biggest}):`);
      for (const l of topSelf(biggest, TOP)) console.log(`  ${l}`);
    }
  }
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.exit(0);
