/**
 * End-to-end load generator benchmark: `tandem load` UAC (worker threads) against its own UAS on
 * loopback. Prints
 *   1. the highest call rate sustained with no failures (rate stepped up, short calls, no RTP);
 *   2. the most concurrent G.711 calls with RTP both ways (UAS echoes) at < 0.1% loss and no
 *      sender lateness (concurrency stepped up).
 * Bounded to about two minutes. Figures depend on the machine and on whatever else runs on it.
 *
 *   node --import tsx bench/loadgen.bench.ts [--quick] [--rtp-only]
 */
import { cpus } from 'node:os';
import { runLoad } from '../src/loadgen/run-load.js';
import { startUas } from '../src/loadgen/uas.js';

const quick = process.argv.includes('--quick');
const rtpOnly = process.argv.includes('--rtp-only');
const budgetMs = quick ? 40_000 : 120_000;
const started = Date.now();
const left = (): number => budgetMs - (Date.now() - started);

console.log(`loadgen bench: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version} (cores shared with other work: figures are noisy)`);

async function rateStep(rate: number, seconds: number, workers: number): Promise<{ ok: boolean; achieved: number; line: string }> {
  const uas = await startUas({ listen: { address: '127.0.0.1', port: 0 } });
  const calls = Math.round(rate * seconds);
  let genSec = 0;
  let t0 = -1;
  let g0 = 0;
  const r = await runLoad({
    scenario: 'call',
    target: uas.address,
    transport: 'udp',
    localAddress: '127.0.0.1',
    rate,
    calls,
    durationMs: 0,
    timeoutMs: 8000,
    stopAfterMs: seconds * 1000 + 8000,
    workers,
    progress: 'none',
    reportMs: 100,
    onProgress: (p) => {
      if (p.generated > 0 && t0 < 0) {
        t0 = p.elapsedSec;
        g0 = p.generated;
      }
      if (p.generated >= calls && genSec === 0) genSec = p.elapsedSec;
    },
  });
  await uas.close();
  const f = r.figures;
  // calls/s over the generation window only (the run also waits for the last calls to end)
  if (genSec === 0) genSec = f.elapsedSec;
  const achieved = genSec > t0 && t0 >= 0 ? (calls - g0) / (genSec - t0) : f.generated / f.elapsedSec;
  const ok = f.failed === 0 && f.successful === calls && achieved >= rate * 0.9;
  const line =
    `  rate ${String(rate).padStart(5)}/s (achieved ${achieved.toFixed(0)}): ${f.successful}/${calls} ok, ${f.failed} failed, ${f.retransmissions} retrans, ` +
    `setup p50 ${f.setupP50Ms.toFixed(2)} p99 ${f.setupP99Ms.toFixed(1)} max ${f.setupMaxMs.toFixed(0)} ms, ${f.elapsedSec.toFixed(1)} s` +
    (Object.keys(r.failures).length ? ` ${JSON.stringify(r.failures)}` : '');
  return { ok, achieved, line };
}

async function concurrencyStep(limit: number, workers: number): Promise<{ ok: boolean; strict: boolean; line: string }> {
  const uas = await startUas({ listen: { address: '127.0.0.1', port: 0 }, rtp: 'echo', rtpWorkers: uasRtpWorkers });
  const rate = 500;
  const holdMs = Math.ceil((limit / rate) * 1000) + (quick ? 3000 : 5000);
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  // CPU over the steady part (every call up, before the first hangs up)
  let steady: { cpu: NodeJS.CpuUsage; at: number } | undefined;
  let steadyCores = 0;
  const r = await runLoad({
    scenario: 'call',
    target: uas.address,
    transport: 'udp',
    localAddress: '127.0.0.1',
    rate,
    calls: limit,
    limit,
    durationMs: holdMs,
    timeoutMs: 10_000,
    stopAfterMs: holdMs + limit / rate * 1000 + 15_000,
    rtp: true,
    workers,
    progress: 'none',
    reportMs: 500,
    onProgress: (p) => {
      const full = p.generated >= limit && p.active >= limit * 0.98;
      if (full && !steady) steady = { cpu: process.cpuUsage(), at: Date.now() };
      else if (steady && full && Date.now() - steady.at > 1500) {
        const d = process.cpuUsage(steady.cpu);
        steadyCores = (d.user + d.system) / 1000 / (Date.now() - steady.at);
      }
    },
  });
  await uas.close();
  const u = uas.snapshot();
  const cpu = process.cpuUsage(cpu0);
  // every thread of this process (UAC workers, UAS SIP and RTP workers) over the step
  const coresUsed = (cpu.user + cpu.system) / 1000 / Math.max(1, Date.now() - t0);
  const f = r.figures;
  const lateShare = f.rtpSent > 0 ? f.rtpSendLate / (f.rtpSent + f.rtpSendLate) : 0;
  const uasLoss = u.rtp.packetsExpected > 0 ? u.rtp.packetsLost / u.rtp.packetsExpected : 0;
  // receiver-side loss (RFC 3550) at both ends; `strict` also counts packets a sender had to
  // skip because its thread fell > 100 ms behind (starved of CPU) as lost
  const recvLoss = (f.rtpLost + u.rtp.packetsLost) / Math.max(1, f.rtpReceived + f.rtpLost + u.rtp.packetsExpected);
  const lossShare = (f.rtpLost + u.rtp.packetsLost + f.rtpSendLate) / Math.max(1, f.rtpSent + u.rtp.packetsExpected + f.rtpSendLate);
  const ok = f.failed === 0 && f.successful === limit && recvLoss < 0.001;
  const strict = ok && lossShare < 0.001;
  const line =
    `  ${String(limit).padStart(5)} calls: ${f.successful} ok, ${f.failed} failed; RTP sent ${f.rtpSent} recv ${f.rtpReceived} ` +
    `(UAS recv ${u.rtp.packetsReceived}, echoed ${u.rtp.packetsSent}) ` +
    `loss ${f.rtpLossPct.toFixed(3)}% (UAS side ${(uasLoss * 100).toFixed(3)}%), skipped late ${(lateShare * 100).toFixed(3)}% => ${(lossShare * 100).toFixed(3)}%, ` +
    `jitter p99 ${f.rtpJitterP99Ms.toFixed(1)} ms, worst gap ${f.rtpWorstGapMs.toFixed(0)} ms, CPU ${coresUsed.toFixed(2)} cores (steady ${steadyCores.toFixed(2)})` +
    (Object.keys(r.failures).length ? ` ${JSON.stringify(r.failures)}` : '');
  return { ok, strict, line };
}

const workers = Number(process.env.LOADGEN_BENCH_WORKERS) || Math.max(1, cpus().length);
const uasRtpWorkers = process.env.LOADGEN_BENCH_UAS_RTP_WORKERS !== undefined ? Number(process.env.LOADGEN_BENCH_UAS_RTP_WORKERS) : workers;

console.log(`\n1. call rate (INVITE-100-180-200-ACK-BYE-200, no hold, no RTP), UAC ${workers} workers, UAS 1 thread`);
let bestRate = 0;
const rates = quick ? [200, 500, 1000] : [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000];
for (const rate of rtpOnly ? [] : rates) {
  if (left() < 80_000 && !quick) break;
  let s = await rateStep(rate, 3, workers);
  console.log(s.line);
  if (!s.ok && left() > 85_000) {
    // shared machine: one retry before calling a step failed
    s = await rateStep(rate, 3, workers);
    console.log(`${s.line} (retry)`);
  }
  if (!s.ok) break;
  bestRate = rate;
}
console.log(`  => highest rate sustained with no failures: ${bestRate} calls/s`);

console.log(`\n2. concurrent calls with G.711 RTP both ways (UAS echoes), UAC ${workers} workers, UAS SIP 1 thread + RTP ${uasRtpWorkers} workers`);
let bestConc = 0;
let bestStrict = 0;
const levels = quick ? [250, 500] : [500, 1000, 1500, 2000, 2500, 3000];
for (const limit of levels) {
  const needMs = (limit / 500) * 2000 + 8000;
  if (left() < needMs) {
    console.log(`  (time budget reached before ${limit})`);
    break;
  }
  const s = await concurrencyStep(limit, workers);
  console.log(s.line);
  if (!s.ok) break;
  bestConc = limit;
  if (s.strict) bestStrict = limit;
}
console.log(`  => most concurrent calls with RTP both ways at < 0.1% receiver loss: ${bestConc}`);
console.log(`  => highest level where also every sender kept time (skipped-late packets counted as lost): ${bestStrict}`);
console.log(`\nloadgen bench done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${bestRate} calls/s, ${bestConc} concurrent RTP calls (${bestStrict} strict)`);
process.exit(0);
