/**
 * The datagram floor: what one UDP datagram received and answered costs a server that does
 * nothing else, driven by the same C pacer at the same rates (evenly spaced, as SIPp spaces its
 * calls, so each datagram may wake the server): C's recvfrom/sendto, Node's `dgram`, and Node with
 * the signalling transport's native path (src/sip/transport/native-udp.ts: recvmmsg batches, one
 * JavaScript entry per batch, sendto without a request object).
 * The signalling node pays this floor for every message before any SIP work: a digest
 * registration is two datagrams in and two out, a proxied call about ten each way. The figure
 * puts the gap between Tandem's and Kamailio's CPU per request (bench/signalling.bench.ts) into
 * the part any Node server pays and the part Tandem's own code adds.
 *
 *   node --import tsx bench/udp-floor.bench.ts [--rates 2000,8000,16000] [--sec 10] [--rounds 2] [--size 600]
 *
 * Needs cc (bench/lib/udp-echo.c is built into node_modules/.cache/tandem-bench).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { CLK_TCK, cpuTicks, freePort } from './lib/proc.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const rates = (arg('--rates') ?? '2000,8000,16000').split(',').map(Number);
const sec = Number(arg('--sec') ?? 10);
const rounds = Number(arg('--rounds') ?? 2);
const size = Number(arg('--size') ?? 600);
const ROOT = resolve(import.meta.dirname, '..');

function buildEcho(): string {
  const src = join(import.meta.dirname, 'lib/udp-echo.c');
  const dir = join(ROOT, 'node_modules/.cache/tandem-bench');
  const bin = join(dir, 'udp-echo');
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
  mkdirSync(dir, { recursive: true });
  execFileSync('cc', ['-O2', '-o', bin, src], { stdio: ['ignore', 'ignore', 'inherit'] });
  return bin;
}

type Kind = 'c' | 'node' | 'native';
const KINDS: Kind[] = ['c', 'node', 'native'];

async function startServer(kind: Kind, echo: string, port: number): Promise<ChildProcess> {
  const child =
    kind === 'c'
      ? spawn(echo, ['serve', String(port)])
      : kind === 'node'
        ? spawn(process.execPath, [join(import.meta.dirname, 'lib/node-echo.mjs'), String(port)])
        : spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'lib/native-echo.ts'), String(port)], { cwd: ROOT });
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`${kind} echo server not ready`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        ok();
      }
    });
  });
  return child;
}

async function run(kind: Kind, echo: string, rate: number): Promise<{ usPerDatagram: number; answered: number; sent: number }> {
  const port = await freePort();
  const server = await startServer(kind, echo, port);
  // Warm-up (JIT, socket buffers), then the measured run.
  execFileSync(echo, ['pace', String(port), String(rate), '1', String(size)]);
  const t0 = cpuTicks(server.pid);
  const out = execFileSync(echo, ['pace', String(port), String(rate), String(sec), String(size)]).toString();
  const ticks = cpuTicks(server.pid) - t0;
  server.kill('SIGKILL');
  const m = /sent (\d+) answered (\d+)/.exec(out);
  const sent = Number(m?.[1] ?? 0);
  const answered = Number(m?.[2] ?? 0);
  return { usPerDatagram: ((ticks / CLK_TCK) * 1e6) / Math.max(1, answered), answered, sent };
}

const echo = buildEcho();
console.log(
  `UDP floor: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; ${size}-byte datagrams echoed, ${sec} s per run, ${rounds} rounds alternating C, Node dgram and Node with the native path; load average ${loadavg()[0]!.toFixed(2)}`,
);
for (const rate of rates) {
  const figures: Record<Kind, number[]> = { c: [], node: [], native: [] };
  let lost = 0;
  for (let r = 0; r < rounds; r++) {
    for (const kind of KINDS) {
      const f = await run(kind, echo, rate);
      figures[kind].push(f.usPerDatagram);
      lost += f.sent - f.answered;
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const c = med(figures.c);
  const n = med(figures.node);
  const v = med(figures.native);
  const runs = (k: Kind) => figures[k].map((x) => x.toFixed(1)).join(', ');
  console.log(
    `  ${String(rate).padStart(6)} datagrams/s: server CPU per datagram in+out: C ${c.toFixed(1)} µs [${runs('c')}], Node dgram ${n.toFixed(1)} µs [${runs('node')}], ` +
      `Node native path ${v.toFixed(1)} µs [${runs('native')}]; dgram/C ${(n / c).toFixed(2)}, native/C ${(v / c).toFixed(2)}${lost ? `; ${lost} unanswered` : ''}`,
  );
}
