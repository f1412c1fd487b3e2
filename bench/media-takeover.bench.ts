/**
 * Media takeover benchmark (published experiment B on one machine).
 *
 * For each N (calls): two `tandem media` nodes share a VIP through a Redis lease; N G.711 calls
 * are set up on the VIP over ng and carry RTP both ways (one packet per stream every `interval`
 * ms; 20 ms up to 200 calls, longer above so one load process can keep up: the gap resolution is
 * that interval); the holder is SIGKILLed. Printed: per-call worst gap (p50 / p99 / max over
 * calls, the worse of its two directions), when each stream's first packet after the SIGKILL came,
 * calls that lost media (no packet in the last 300 ms), packets lost (sequence numbers never
 * received), lease move and bind time (takeover), and how many calls the standby had bound ahead
 * (their ports shared with the holder's: media resumes as soon as the kernel has closed the dead
 * holder's sockets, before the lease moves).
 *
 * Cost of replication, same run: ng offer+answer round trip (p50 / p99) and the relay's CPU while
 * forwarding the same calls, on a cluster node (sessions written to Redis, counters every 2 s)
 * and on a plain `tandem media` without Redis.
 *
 *   node --import tsx bench/media-takeover.bench.ts [--calls 100,1000] [--lease-ttl 600] [--quick]
 */
import { cpus } from 'node:os';
import { NgClient } from '../src/ng/ng-client.js';
import { audioSdp, randomRtpRange, sdpMedia, sleep, spawnMediaNode, type SpawnedMediaNode } from '../test/integration/media/media-harness.js';
import { RtpCalls, quantile } from '../test/integration/media/rtp-calls.js';
import { CLK_TCK, cpuTicks } from './lib/proc.js';
import { SingleRedis, freePort, respCommand } from '../test/integration/state/redis-harness.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const callCounts = argv.includes('--calls') ? argv[argv.indexOf('--calls') + 1]!.split(',').map(Number) : quick ? [100] : [100, 1000];
const VIP = '127.0.0.30';
const LEASE_TTL_MS = argv.includes('--lease-ttl') ? Number(argv[argv.indexOf('--lease-ttl') + 1]) : 600;
const LEASE_POLL_MS = 25;

console.log(`media takeover bench: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version} (2 nodes, Redis and the RTP load share the cores); lease ttl ${LEASE_TTL_MS} ms, poll ${LEASE_POLL_MS} ms`);

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 10): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function clusterView(n: SpawnedMediaNode): Promise<{ vips: Array<{ held: boolean; own: number; foreign: number; lastTakeover?: Record<string, number> }> } | undefined> {
  const r = await fetch(`http://127.0.0.1:${n.adminPort}/media/cluster`, { signal: AbortSignal.timeout(2000) });
  return (await r.json()) as { vips: Array<{ held: boolean; own: number; foreign: number; lastTakeover?: Record<string, number> }> };
}

const f1 = (x: number): string => x.toFixed(1);

/** Sets up `n` calls on `host:port`; returns the offer+answer round trips, ms. */
async function setUp(ng: NgClient, rtp: RtpCalls, n: number, prefix: string): Promise<number[]> {
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = await rtp.add();
    const callId = `${prefix}-${i}`;
    const t0 = performance.now();
    const o = await ng.offer({ callId, fromTag: `a${i}`, sdp: audioSdp(c.aPort), flags: ['trust-address'] });
    const a = await ng.answer({ callId, fromTag: `a${i}`, toTag: `b${i}`, sdp: audioSdp(c.bPort), flags: ['trust-address'] });
    rtts.push(performance.now() - t0);
    if (!o.ok || !a.ok) throw new Error(`call ${i} set-up failed: ${!o.ok ? o.reason : !a.ok ? a.reason : ''}`);
    rtp.connect(i, sdpMedia(a.value.sdp).port, sdpMedia(o.value.sdp).port);
  }
  return rtts;
}

/** CPU of `pid` over `ms`, in % of one core. */
async function cpuOver(pid: number | undefined, ms: number): Promise<number> {
  const t0 = cpuTicks(pid);
  await sleep(ms);
  return ((cpuTicks(pid) - t0) / CLK_TCK / (ms / 1000)) * 100;
}

async function runOne(n: number): Promise<void> {
  const intervalMs = n <= 200 ? 20 : Math.ceil(n / 10);
  const redis = await SingleRedis.start();
  const ngPort = await freePort();
  const range = randomRtpRange(n * 4 + 200);
  const nodes: SpawnedMediaNode[] = [];
  const rtp = new RtpCalls(VIP);
  const plainRtp = new RtpCalls('127.0.0.1');
  const spawnNode = async (name: string): Promise<SpawnedMediaNode> => {
    const node = await spawnMediaNode([
      '--node-id', name, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url, '--ng', `${VIP}:${ngPort}`, '--interface', VIP,
      '--rtp-ports', range, '--workers', '1', '--lease-ttl', String(LEASE_TTL_MS), '--lease-poll', String(LEASE_POLL_MS), '--admin', '127.0.0.1:0',
    ]);
    nodes.push(node);
    return node;
  };
  const ng = new NgClient({ host: VIP, port: ngPort, timeoutMs: 5000, retransmitIntervalMs: 500 });
  try {
    const m1 = await spawnNode('media1');
    await until('media1 to hold the VIP', async () => ((await respCommand(redis.port, ['GET', `tandem:tandem:lease:media-${VIP}`])) ? true : undefined), 5000);
    const m2 = await spawnNode('media2');
    const rttCluster = await setUp(ng, rtp, n, 'bench');
    rtp.start(intervalMs);
    await until('RTP on every stream', async () => (rtp.all().every((s) => s.received > 2) ? true : undefined), 20_000, 50);
    await until('the standby to mirror every call', async () => ((await clusterView(m2))?.vips[0]?.foreign === n ? true : undefined), 20_000, 50);
    const cpuCluster = await cpuOver(m1.proc.pid, 3000);

    rtp.openWindow();
    const killedAt = Date.now();
    m1.proc.kill('SIGKILL');
    const movedMs = await until('the lease to move', async () => ((await respCommand(redis.port, ['GET', `tandem:tandem:lease:media-${VIP}`]))?.toString().startsWith('media2|') ? Date.now() - killedAt : undefined), 10_000, 5);
    const view = await until('media2 to serve every call', async () => {
      const v = await clusterView(m2);
      return v?.vips[0]?.held && v.vips[0].own === n ? v : undefined;
    }, 20_000, 20);
    await sleep(Math.max(1500, intervalMs * 15));
    const now = Date.now();
    const perCall = rtp.streams.map(([ab, ba]) => Math.max(ab.maxGapMs, ba.maxGapMs));
    // For the streams whose longest gap spans the SIGKILL: its end, from the kill, is when forwarding
    // resumed (up to one packet interval late, as the phone sends only then; the earliest stream tells best).
    const spanning = rtp.all().filter((st) => st.maxGapAtMs <= killedAt && st.maxGapAtMs + st.maxGapMs >= killedAt);
    const resumed = spanning.map((st) => st.maxGapAtMs + st.maxGapMs - killedAt);
    const lostMedia = rtp.streams.filter(([ab, ba]) => now - ab.lastArrivalMs > Math.max(300, intervalMs * 3) || now - ba.lastArrivalMs > Math.max(300, intervalMs * 3)).length;
    const lost = rtp.all().reduce((x, s) => x + s.seqLost, 0);
    const t = view.vips[0]!.lastTakeover ?? {};
    rtp.stop();

    // The same calls on a plain media node (no Redis), for the cost of replication.
    const plainNg = await freePort();
    const plain = await spawnMediaNode(['--ng', `127.0.0.1:${plainNg}`, '--interface', '127.0.0.1', '--rtp-ports', randomRtpRange(n * 4 + 200), '--workers', '1']);
    nodes.push(plain);
    const ngPlain = new NgClient({ host: '127.0.0.1', port: plainNg, timeoutMs: 5000, retransmitIntervalMs: 500 });
    const rttPlain = await setUp(ngPlain, plainRtp, n, 'plain');
    plainRtp.start(intervalMs);
    await until('RTP on every plain stream', async () => (plainRtp.all().every((s) => s.received > 2) ? true : undefined), 20_000, 50);
    const cpuPlain = await cpuOver(plain.proc.pid, 3000);
    plainRtp.stop();
    ngPlain.close();

    console.log(`\nN = ${n} calls (${2 * n} RTP streams, one packet per stream every ${intervalMs} ms)`);
    console.log(`  takeover: lease moved ${movedMs} ms after SIGKILL; calls bound in ${t['tookMs']} ms (ng ${t['ngMs']} ms, catch-up ${t['replayMs']} ms, adopt ${t['adoptMs']} ms); adopted ${t['adopted']} (bound ahead on the standby ${t['prebound'] ?? 0}), failed ${t['failed']}`);
    console.log(`  per-call worst gap: p50 ${quantile(perCall, 0.5)} ms  p99 ${quantile(perCall, 0.99)} ms  max ${Math.max(...perCall)} ms (goal: < lease TTL + 100 = ${LEASE_TTL_MS + 100} ms)`);
    if (resumed.length) console.log(`  first packet after SIGKILL (${resumed.length} streams whose longest gap spans it): min ${Math.min(...resumed)} ms  p50 ${quantile(resumed, 0.5)} ms  max ${Math.max(...resumed)} ms`);
    console.log(`  calls that lost media: ${lostMedia} / ${n}; packets lost: ${lost} of ${rtp.sent} sent`);
    console.log(`  ng offer+answer round trip: with Redis p50 ${f1(quantile(rttCluster, 0.5))} ms p99 ${f1(quantile(rttCluster, 0.99))} ms; without p50 ${f1(quantile(rttPlain, 0.5))} ms p99 ${f1(quantile(rttPlain, 0.99))} ms`);
    console.log(`  relay CPU while forwarding: with Redis replication ${f1(cpuCluster)} %, without ${f1(cpuPlain)} % (of one core)`);
  } finally {
    rtp.close();
    plainRtp.close();
    ng.close();
    for (const node of nodes) await node.stop();
    await redis.stop();
  }
}

for (const n of callCounts) await runOne(n);
process.exit(0);
