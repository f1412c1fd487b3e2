/**
 * `--takeover keepalived` for media, in network namespaces (root only; skipped otherwise): two
 * `tandem media` nodes in their own namespaces (ip_nonlocal_bind=1), joined by a bridge to the
 * root namespace, where the phones, the ng client and Redis live. Both bind the VIP's ng socket;
 * the standby binds every mirrored call's ports ahead of time. The holder's node is SIGKILLed and
 * the address moved as keepalived would after its VRRP timeout (deleted there, added on the
 * standby, the phones' ARP entry replaced as a gratuitous ARP does): the worst gap of any stream
 * counts from the move, the VRRP detection time (72 ms median with 20 ms adverts on this class
 * of machine, ../../../../shared/HA-NOTES.md) is not part of it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { freePort, respCommand, waitFor } from '../state/redis-harness.js';
import { randomRtpRange, sleep } from '../media/media-harness.js';
import { setUpCall, type ClusterStatus } from '../media/media-cluster-harness.js';
import { RtpCalls, quantile } from '../media/rtp-calls.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const CALLS = 50;
const id = `${process.pid % 10000}`;
const net = 100 + (process.pid % 100); // 198.18.<net>.0/24: the benchmarking range, never a real network
const HOST = `198.18.${net}.1`;
const VIP = `198.18.${net}.100`;
const NS = { br: `tkbr${id}`, n1: `tkn1${id}`, n2: `tkn2${id}` };
const ROOT_IF = `tkr${id}`;
const TOKEN = 'keepalived-test-token';

const canRun = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0;

function sh(...args: string[]): void {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}

function macOf(ns: string, dev: string): string {
  const r = spawnSync('ip', ['-n', ns, '-o', 'link', 'show', dev], { encoding: 'utf8' });
  return /link\/ether ([0-9a-f:]+)/.exec(r.stdout)?.[1] ?? '';
}

function setUpNetwork(): void {
  sh('ip', 'netns', 'add', NS.br);
  sh('ip', '-n', NS.br, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  sh('ip', '-n', NS.br, 'link', 'set', 'br0', 'up');
  sh('ip', 'link', 'add', ROOT_IF, 'type', 'veth', 'peer', 'name', 'eth-root', 'netns', NS.br);
  sh('ip', 'addr', 'add', `${HOST}/24`, 'dev', ROOT_IF);
  sh('ip', 'link', 'set', ROOT_IF, 'up');
  sh('ip', '-n', NS.br, 'link', 'set', 'eth-root', 'master', 'br0', 'up');
  for (const [n, ns] of [[11, NS.n1], [12, NS.n2]] as const) {
    sh('ip', 'netns', 'add', ns);
    sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    sh('ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1');
    sh('ip', '-n', NS.br, 'link', 'add', `eth-${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    sh('ip', '-n', NS.br, 'link', 'set', `eth-${n}`, 'master', 'br0', 'up');
    sh('ip', '-n', ns, 'addr', 'add', `198.18.${net}.${n}/24`, 'dev', 'eth0');
    sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
  }
  sh('ip', '-n', NS.n1, 'addr', 'add', `${VIP}/24`, 'dev', 'eth0');
}

function tearDownNetwork(): void {
  for (const ns of [NS.n1, NS.n2, NS.br]) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const p of pids) spawnSync('kill', ['-9', p]);
    spawnSync('ip', ['netns', 'del', ns]);
  }
  spawnSync('ip', ['link', 'del', ROOT_IF]);
}

interface NsNode {
  proc: ChildProcess;
  admin: string;
  stderr: () => string;
}

/** `tandem media` inside a namespace; its admin API on the node's own address. */
async function startNode(ns: string, name: string, own: string, ngPort: number, redisUrl: string, range: string): Promise<NsNode> {
  const args = ['netns', 'exec', ns, process.execPath, join(ROOT, 'bin/tandem.mjs'), 'media', '--node-id', name, '--vip', VIP, '--takeover', 'keepalived',
    '--redis', redisUrl, '--ng', `${VIP}:${ngPort}`, '--ng-allow', '198.18.0.0/15', '--rtp-ports', range, '--workers', '1', '--admin', `${own}:0`, '--timeout', '2'];
  const proc = spawn('ip', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: 'warn', TANDEM_ADMIN_TOKEN: TOKEN } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-50_000)));
  let out = '';
  const ready = await new Promise<Record<string, unknown>>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`node ${name} did not start: ${err}`)), 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) {
        clearTimeout(t);
        res(JSON.parse(line) as Record<string, unknown>);
      }
    });
    proc.once('exit', (code) => rej(new Error(`node ${name} exited ${code}: ${err}`)));
  });
  return { proc, admin: `http://${own}:${ready['adminPort'] as number}`, stderr: () => err };
}

async function status(n: NsNode): Promise<(ClusterStatus & { vips: Array<{ prebound?: number }> }) | undefined> {
  try {
    return (await (await fetch(`${n.admin}/media/cluster`, { signal: AbortSignal.timeout(2000), headers: { authorization: `Bearer ${TOKEN}` } })).json()) as ClusterStatus & { vips: Array<{ prebound?: number }> };
  } catch {
    return undefined;
  }
}

let redisProc: ChildProcess | undefined;
let redisDir = '';
let redisPort = 0;
const nodes: NsNode[] = [];

describe.skipIf(!canRun)('media cluster, keepalived mode, in network namespaces', () => {
  beforeAll(async () => {
    tearDownNetwork();
    setUpNetwork();
    redisPort = await freePort();
    redisDir = mkdtempSync(join(tmpdir(), 'tandem-redis-ka-'));
    redisProc = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', HOST, '--dir', redisDir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
    await waitFor('redis', async () => (await respCommand(redisPort, ['PING'], 300).catch(() => undefined)) === 'PONG' || undefined, 10_000);
  }, 30_000);

  afterAll(async () => {
    for (const n of nodes) n.proc.kill('SIGKILL');
    redisProc?.kill('SIGKILL');
    tearDownNetwork();
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  });

  it(`${CALLS} calls: the standby binds them in advance and forwards from the first packet after the address moves`, async () => {
    const ngPort = await freePort();
    const range = randomRtpRange(CALLS * 4 + 100);
    const redisUrl = `redis://${HOST}:${redisPort}`;
    const n1 = await startNode(NS.n1, 'k1', `198.18.${net}.11`, ngPort, redisUrl, range);
    nodes.push(n1);
    await waitFor('k1 to serve the VIP', async () => (await status(n1))?.vips[0]?.held || undefined, 5000);
    const n2 = await startNode(NS.n2, 'k2', `198.18.${net}.12`, ngPort, redisUrl, range);
    nodes.push(n2);
    const rtp = new RtpCalls(VIP, HOST);
    const ng = new NgClient({ host: VIP, port: ngPort, localAddress: HOST, timeoutMs: 3000, retransmitIntervalMs: 250 });
    try {
      for (let i = 0; i < CALLS; i++) await setUpCall(ng, rtp, i, `ka-${i}`);
      rtp.start(20);
      await waitFor('RTP both ways on every call', async () => rtp.all().every((s) => s.received > 5) || undefined, 10_000);
      await waitFor('k2 to bind every call in advance', async () => (await status(n2))?.vips[0]?.prebound === CALLS || undefined, 10_000);
      // Calls bound in advance see no media on the standby: its no-media timeout (2 s here) must not end them.
      await sleep(2600);
      expect((await status(n2))?.vips[0]?.prebound).toBe(CALLS);

      // The holder dies; keepalived on the other node takes the address (and sends a gratuitous ARP).
      rtp.openWindow();
      n1.proc.kill('SIGKILL');
      sh('ip', '-n', NS.n1, 'addr', 'del', `${VIP}/24`, 'dev', 'eth0');
      await sleep(50);
      const movedAt = Date.now();
      sh('ip', '-n', NS.n2, 'addr', 'add', `${VIP}/24`, 'dev', 'eth0');
      sh('ip', 'neigh', 'replace', VIP, 'lladdr', macOf(NS.n2, 'eth0'), 'dev', ROOT_IF, 'nud', 'reachable');
      await waitFor('k2 to serve the calls', async () => {
        const v = (await status(n2))?.vips[0];
        return (v?.held && v.own === CALLS) || undefined;
      }, 5000);
      await sleep(1000);
      const streams = rtp.all();
      // Each stream's gap after the move: from the move to its first packet after it.
      const firstAfter = streams.map((s) => s.maxGapAtMs + s.maxGapMs - movedAt);
      const gaps = streams.map((s) => s.maxGapMs);
      console.log(`keepalived takeover: first packet after the address move p50 ${quantile(firstAfter, 0.5)} / max ${Math.max(...firstAfter)} ms; per-stream worst gap (incl. the 50 ms the address was nowhere) p50 ${quantile(gaps, 0.5)} / max ${Math.max(...gaps)} ms; ${JSON.stringify((await status(n2))?.vips[0]?.lastTakeover)}`);
      expect(streams.every((s) => Date.now() - s.lastArrivalMs < 200 && s.receivedInWindow > 20)).toBe(true);
      // Measured 18-79 ms on a loaded 2-core box (packets every 20 ms); asserted with room for that load.
      expect(Math.max(...firstAfter)).toBeLessThanOrEqual(200);
      const q = await ng.query({ callId: 'ka-7' });
      expect(q.ok).toBe(true);
    } finally {
      rtp.close();
      ng.close();
    }
  }, 90_000);
});
