/**
 * Media takeover with real VRRP (issue 11's keepalived figure), shared by
 * `keepalived-vrrp.test.ts` and `bench/media-takeover-keepalived.bench.ts`: two `tandem media`
 * nodes in network namespaces (src/lab/netns) with `--takeover keepalived` and one `--vip`, a
 * keepalived each (`tandem cluster keepalived-config`'s text: VRRPv3, unicast, /health
 * track_script, nopreempt), Redis and the phones on the host. N calls are set up over ng through
 * the VIP and carry G.711-sized RTP both ways; then the holder's host is switched off (its link
 * goes down and every process in its namespace, media node and keepalived, is SIGKILLed at once)
 * and VRRP moves the VIP. Measured per call: the worst gap of its two directions.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { keepalivedConfig } from '../../../src/cluster/keepalived-config.js';
import { notifyCommand, readVrrpEvents, startKeepalived } from '../../../src/lab/netns/keepalived.js';
import { addressHolderOf, createNetwork, spawnInNamespace, teardownNetwork, type NetnsState } from '../../../src/lab/netns/netns.js';
import { NgClient } from '../../../src/ng/ng-client.js';
import { freePort, respCommand } from '../state/redis-harness.js';
import { audioSdp, randomRtpRange, sdpMedia, sleep } from './media-harness.js';
import { RtpCalls, quantile } from './rtp-calls.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const execFileAsync = promisify(execFile);
const TOKEN = 'keepalived-vrrp-token-0123456789';

/** Root, `ip netns` and keepalived present. */
export const canRunKeepalivedScenario = (): boolean =>
  process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0 && spawnSync('keepalived', ['--version']).status === 0 && spawnSync('curl', ['--version']).status === 0;

export interface KeepalivedScenarioOptions {
  calls: number;
  /** VRRP advert interval, ms. @default 20 */
  advertMs?: number;
  /** RTP packet interval per stream, ms. @default 20 */
  packetMs?: number;
  /** Third octet of 198.19.X.0/24. @default pid-derived */
  subnet?: number;
  /**
   * `host`: the holder's host is switched off (link down, every process in its namespace
   * SIGKILLed). `process`: only its `tandem media` is SIGKILLed; keepalived lives on and gives the
   * VIP up when its track_script (/health every 1 s, 2 failures) fails. @default 'host'
   */
  fault?: 'host' | 'process';
  /** How long RTP runs after the fault before the figures are taken, ms. @default 1500 */
  afterMs?: number;
  log?: (line: string) => void;
}

export interface KeepalivedScenarioResult {
  calls: number;
  /** Calls whose ng offer+answer succeeded (all, or the run throws). */
  established: number;
  /** Per call: the worse of its two directions' longest gap around the fault, ms. */
  worstGapMs: number[];
  /** Calls with a direction that received nothing for 3 packet intervals (at least 300 ms), or under half its packets since its longest gap. */
  callsWithoutMedia: number;
  /** Sequence numbers never received, all streams. */
  packetsLost: number;
  /** Fault -> the new master's notify (VRRP MASTER), ms. */
  vipMoveMs: number | undefined;
  /** Fault -> first packet through the new holder, per stream: p50 and max, ms. */
  firstPacketMs: { p50: number; max: number };
  /** The new holder's `lastTakeover` (calls claimed after the address arrived). */
  takeover: Record<string, unknown> | undefined;
  /** The new holder answers ng for a taken-over call (`query`). */
  queryOk: boolean;
  setUpMs: number;
  /**
   * Longest delay of this process's event loop (the phones send from it) from the fault to the
   * end, ms: a gap about this long may be the phones' stall, not the relay's.
   */
  phonesStallMs: number;
}

interface NodeProc {
  name: string;
  proc: ChildProcess;
  admin: string;
  err: () => string;
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve(probe()).catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function clusterStatus(n: NodeProc): Promise<{ vips: Array<{ held: boolean; own: number; prebound?: number; lastTakeover?: Record<string, unknown> }> } | undefined> {
  const r = await fetch(`${n.admin}/media/cluster`, { signal: AbortSignal.timeout(2000), headers: { authorization: `Bearer ${TOKEN}` } });
  return r.ok ? ((await r.json()) as { vips: Array<{ held: boolean; own: number; prebound?: number; lastTakeover?: Record<string, unknown> }> }) : undefined;
}

/** Runs the scenario; everything it made (namespaces, processes, Redis, files) is removed before it returns. */
export async function runKeepalivedScenario(o: KeepalivedScenarioOptions): Promise<KeepalivedScenarioResult> {
  const log = o.log ?? (() => undefined);
  const advertMs = o.advertMs ?? 20;
  const packetMs = o.packetMs ?? 20;
  const net = `198.19.${o.subnet ?? 1 + (process.pid % 250)}`;
  const HOST = `${net}.1`;
  const VIP = `${net}.100`;
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ka-media-'));
  const procs: ChildProcess[] = [];
  let redis: ChildProcess | undefined;
  let rtp: RtpCalls | undefined;
  let ng: NgClient | undefined;
  try {
    const t0 = performance.now();
    const state: NetnsState = createNetwork(dir, { hostAddress: HOST, nodes: [{ name: 'm1', address: `${net}.11` }, { name: 'm2', address: `${net}.12` }] });
    const redisPort = await freePort();
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
    await until('redis', async () => (await respCommand(redisPort, ['PING'], 300).catch(() => undefined)) === 'PONG' || undefined, 10_000);
    const ngPort = await freePort();
    const range = randomRtpRange(o.calls * 4 + 100);
    const adminPort = 8080;

    const startNode = async (name: 'm1' | 'm2'): Promise<NodeProc> => {
      const own = state.nodes[name]!.address;
      const args = [join(ROOT, 'bin/tandem.mjs'), 'media', '--node-id', name, '--vip', VIP, '--takeover', 'keepalived', '--redis', `redis://${HOST}:${redisPort}`,
        '--ng', `${VIP}:${ngPort}`, '--ng-allow', '198.18.0.0/15', '--rtp-ports', range, '--workers', '1', '--admin', `${own}:${adminPort}`, '--timeout', '30'];
      const proc = spawnInNamespace(dir, name, process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: 'warn', TANDEM_ADMIN_TOKEN: TOKEN } });
      procs.push(proc);
      let err = '';
      proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
      let out = '';
      await new Promise<void>((res, rej) => {
        const t = setTimeout(() => rej(new Error(`${name} did not start: ${err}`)), 30_000);
        proc.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('"event":"ready"')) {
            clearTimeout(t);
            res();
          }
        });
        proc.once('exit', (code) => rej(new Error(`${name} exited ${code}: ${err}`)));
      });
      return { name, proc, admin: `http://${own}:${adminPort}`, err: () => err };
    };
    const startVrrp = (name: 'm1' | 'm2', priority: number): void => {
      const other = name === 'm1' ? 'm2' : 'm1';
      const text = keepalivedConfig({
        nodeId: name, role: 'media', vips: [VIP], dev: 'eth0', sourceAddress: state.nodes[name]!.address, peers: [state.nodes[other]!.address],
        priority, advertIntervalMs: advertMs, healthUrl: `http://${state.nodes[name]!.address}:${adminPort}/health`, notify: notifyCommand(dir, name),
      });
      const ka = startKeepalived(dir, name, text);
      procs.push(ka);
      kaLog[name] = '';
      for (const st of [ka.stdout!, ka.stderr!]) st.on('data', (d: Buffer) => (kaLog[name] = (kaLog[name] + d.toString()).slice(-20_000)));
    };

    const kaLog: Record<string, string> = {};
    const m1 = await startNode('m1');
    startVrrp('m1', 250);
    await until('m1 to hold the VIP', async () => (addressHolderOf(dir, VIP) === 'm1' && (await clusterStatus(m1))?.vips[0]?.held) || undefined, 15_000);
    const m2 = await startNode('m2');
    startVrrp('m2', 240);
    const setUpMs = performance.now() - t0;
    log(`network, Redis, 2 media nodes and keepalived up in ${setUpMs.toFixed(0)} ms`);

    rtp = new RtpCalls(VIP, HOST);
    ng = new NgClient({ host: VIP, port: ngPort, localAddress: HOST, timeoutMs: 3000, retransmitIntervalMs: 250 });
    for (let i = 0; i < o.calls; i++) {
      const c = await rtp.add();
      const callId = `vrrp-${i}`;
      const off = await ng.offer({ callId, fromTag: `a-${i}`, sdp: audioSdp(c.aPort, HOST), flags: ['trust-address'] });
      if (!off.ok) throw new Error(`offer ${i}: ${off.reason}`);
      const ans = await ng.answer({ callId, fromTag: `a-${i}`, toTag: `b-${i}`, sdp: audioSdp(c.bPort, HOST), flags: ['trust-address'] });
      if (!ans.ok) throw new Error(`answer ${i}: ${ans.reason}`);
      rtp.connect(i, sdpMedia(ans.value.sdp).port, sdpMedia(off.value.sdp).port);
    }
    rtp.start(packetMs);
    await until('RTP both ways on every call', () => rtp!.all().every((s) => s.received > 5) || undefined, 15_000);
    await until('m2 to bind every call in advance', async () => (await clusterStatus(m2))?.vips[0]?.prebound === o.calls || undefined, 15_000);
    // keepalived on m2 has seen m1's adverts for a while (a stable backup).
    await until('m2 in BACKUP', () => readVrrpEvents(dir).some((e) => e.node === 'm2' && e.state === 'BACKUP') || undefined, 10_000);
    await sleep(500);

    // The holder's host is switched off: its link goes down and every process in it dies at once
    // (or, fault 'process', only the media node dies). Nothing below blocks this process's event
    // loop (the phones send from it): no spawnSync.
    rtp.openWindow();
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const faultAt = Date.now();
    if ((o.fault ?? 'host') === 'host') {
      await execFileAsync('ip', ['-n', state.bridgeNamespace, 'link', 'set', state.nodes['m1']!.bridgePort, 'down']);
      const pids = (await execFileAsync('ip', ['netns', 'pids', state.nodes['m1']!.namespace])).stdout.split('\n').filter(Boolean).map(Number);
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    } else {
      m1.proc.kill('SIGKILL');
    }
    await until('m2 to serve the calls', async () => {
      const v = (await clusterStatus(m2))?.vips[0];
      return (v?.held && v.own === o.calls) || undefined;
    }, 15_000);
    await sleep(o.afterMs ?? 1500);
    loopDelay.disable();
    const now = Date.now();
    const streams = rtp.all();
    const worstGapMs: number[] = [];
    for (let i = 0; i < streams.length; i += 2) worstGapMs.push(Math.max(streams[i]!.maxGapMs, streams[i + 1]!.maxGapMs));
    // Lost its media: nothing for 3 packet intervals (at least 300 ms), or since its longest gap
    // ended under half the packets it should have had.
    const bad = (s: (typeof streams)[number]): boolean =>
      now - s.lastArrivalMs > Math.max(300, 3 * packetMs) || s.receivedInWindow < (now - (s.maxGapAtMs + s.maxGapMs)) / packetMs / 2;
    let callsWithoutMedia = 0;
    for (let i = 0; i < streams.length; i += 2) if (bad(streams[i]!) || bad(streams[i + 1]!)) callsWithoutMedia++;
    const master = readVrrpEvents(dir).find((e) => e.node === 'm2' && e.state === 'MASTER' && e.tMs >= faultAt);
    const firstAfter = streams.map((s) => s.maxGapAtMs + s.maxGapMs - faultAt);
    // Where each stream's longest gap began, relative to the fault (a later stall shows here).
    const gapStart = streams.map((s) => s.maxGapAtMs - faultAt);
    if (master && master.tMs - faultAt > 150 && (o.fault ?? 'host') === 'host') log(`slow VRRP move: m2's keepalived said:\n${kaLog['m2']!.split('\n').slice(-15).join('\n')}`);
    const q = await ng.query({ callId: 'vrrp-0' });
    const result: KeepalivedScenarioResult = {
      calls: o.calls,
      established: o.calls,
      worstGapMs,
      callsWithoutMedia,
      packetsLost: streams.reduce((n, s) => n + s.seqLost, 0),
      vipMoveMs: master ? master.tMs - faultAt : undefined,
      firstPacketMs: { p50: quantile(firstAfter, 0.5), max: Math.max(...firstAfter) },
      takeover: (await clusterStatus(m2))?.vips[0]?.lastTakeover,
      queryOk: q.ok,
      setUpMs,
      // (the histogram's max is the longest interval between its 5 ms samples: the interval is taken off)
      phonesStallMs: Math.max(0, Math.round(loopDelay.max / 1e6) - 5),
    };
    log(
      `${o.calls} calls, fault ${o.fault ?? 'host'}, adverts ${advertMs} ms, RTP every ${packetMs} ms: VIP moved (m2 MASTER) ${result.vipMoveMs ?? '?'} ms after the fault; ` +
        `first packet through m2 p50 ${result.firstPacketMs.p50} / max ${result.firstPacketMs.max} ms; per-call worst gap p50 ${quantile(worstGapMs, 0.5)} / p99 ${quantile(worstGapMs, 0.99)} / max ${Math.max(...worstGapMs)} ms; ` +
        `longest gaps began ${Math.min(...gapStart)}..${Math.max(...gapStart)} ms from the fault; calls without media ${callsWithoutMedia}; packets lost ${result.packetsLost}; phones' event loop max delay ${result.phonesStallMs} ms; takeover ${JSON.stringify(result.takeover)}`,
    );
    return result;
  } finally {
    rtp?.close();
    ng?.close();
    for (const p of procs) p.kill('SIGKILL');
    redis?.kill('SIGKILL');
    teardownNetwork(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}
