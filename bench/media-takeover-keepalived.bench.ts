/**
 * Media takeover moved by keepalived (issue 11's figure for `--takeover keepalived`): two
 * `tandem media` nodes in network namespaces, keepalived (VRRPv3, unicast, the generated config)
 * moving one VIP, N G.711 calls through it both ways; the holder's host is switched off (link
 * down + SIGKILL of the media node and its keepalived). Printed per trial and over all trials:
 * VIP move (fault -> the new master's notify), first packet through the new holder, per-call
 * worst gap (p50 / p99 / max), calls that lost media, packets lost. Root only.
 * The scenario is test/integration/media/keepalived-scenario.ts (the test asserts on it).
 *
 *   flock /tmp/tandem-cpu.lock node --import tsx bench/media-takeover-keepalived.bench.ts [--calls 100] [--trials 5] [--advert 20] [--quick]
 *
 * Above 200 calls the phones send every N/10 ms (one process cannot keep 2,000 streams at 20 ms),
 * so gaps are that coarse.
 */
import { cpus, loadavg } from 'node:os';
import { canRunKeepalivedScenario, runKeepalivedScenario, type KeepalivedScenarioResult } from '../test/integration/media/keepalived-scenario.js';
import { quantile } from '../test/integration/media/rtp-calls.js';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: string): string => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : dflt);
const quick = argv.includes('--quick');
const callCounts = arg('--calls', quick ? '50' : '100').split(',').map(Number);
const trials = Number(arg('--trials', quick ? '1' : '5'));
const adverts = arg('--advert', '20').split(',').map(Number);

if (!canRunKeepalivedScenario()) {
  console.log('media-takeover-keepalived bench: needs root, ip netns, keepalived and curl; skipped');
  process.exit(0);
}
console.log(`media takeover (keepalived) bench: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} (2 media nodes, Redis and the RTP phones share the cores)`);

const triple = (xs: number[]): string => (xs.length ? `${Math.min(...xs)} / ${quantile(xs, 0.5)} / ${Math.max(...xs)}` : '-');

for (const advertMs of adverts) {
  for (const calls of callCounts) {
    const packetMs = calls <= 200 ? 20 : Math.ceil(calls / 10);
    const runs: KeepalivedScenarioResult[] = [];
    for (let t = 0; t < trials; t++) {
      const r = await runKeepalivedScenario({ calls, advertMs, packetMs, subnet: 200 + t, log: (l) => console.log(`  trial ${t + 1}: ${l}`) });
      runs.push(r);
    }
    const gaps = runs.flatMap((r) => r.worstGapMs);
    console.log(
      `N=${calls} adverts ${advertMs} ms, RTP every ${packetMs} ms, ${trials} trial(s): VIP move min/median/max ${triple(runs.flatMap((r) => (r.vipMoveMs === undefined ? [] : [r.vipMoveMs])))} ms; ` +
        `first packet after the fault (max per trial) ${triple(runs.map((r) => r.firstPacketMs.max))} ms; per-call worst gap over all trials p50 ${quantile(gaps, 0.5)} / p99 ${quantile(gaps, 0.99)} / max ${Math.max(...gaps)} ms (goal <= 100 ms); ` +
        `calls without media ${runs.reduce((n, r) => n + r.callsWithoutMedia, 0)}; packets lost ${runs.reduce((n, r) => n + r.packetsLost, 0)}; phones' event loop max delay per trial ${runs.map((r) => r.phonesStallMs).join(', ')} ms`,
    );
  }
}
