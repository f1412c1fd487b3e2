/**
 * Dispatcher stress and failover, after the published Kamailio + 2 x Asterisk experiments
 * (Table X test 1: 300 calls/s, limit 2,000 active calls, 6 s calls, 1 hour; Table VII:
 * failover 4.17 s with no answer, 63.04 s after a provisional), scaled to this machine:
 *
 *   A. two back-ends, RATE calls/s, LIMIT concurrent, HOLD_MS calls, DURATION_SEC
 *   B. the same, one back-end SIGKILLed halfway
 *   C. failover delay, no response at all (default fr_timer 4000 ms), SAMPLES calls
 *   D. failover delay, provisional but no final (default fr_inv_timer 60000 ms), one call
 *   E. failover delay when the PBX sent only 100 Trying (the proxy applies fr_timer then)
 *
 * Env: RATE (300), LIMIT (2000), HOLD_MS (6000), DURATION_SEC (60), SAMPLES (5), SKIP (e.g. "A,B").
 * Traffic source: the UDP test UAC of test/integration/dispatcher/helpers.ts (Timer A/E
 * retransmissions counted); back-ends: test/integration/dispatcher/fixtures/backend-uas.ts.
 */
import { cpus } from 'node:os';
import { dispatcherYaml, killAll, sleep, startBackend, startTandem, TestUac, type Backend, type CallResult, type Node } from '../test/integration/dispatcher/helpers.js';

const RATE = Number(process.env.RATE ?? 300);
const LIMIT = Number(process.env.LIMIT ?? 2000);
const HOLD_MS = Number(process.env.HOLD_MS ?? 6000);
const DURATION_SEC = Number(process.env.DURATION_SEC ?? 60);
const SAMPLES = Number(process.env.SAMPLES ?? 5);
const SKIP = new Set((process.env.SKIP ?? '').split(',').filter(Boolean));

process.env.TANDEM_LOG_LEVEL ??= 'warn';
process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});

interface StressResult {
  generated: number;
  ok: number;
  failed: number;
  byeFailed: number;
  retransmissions: number;
  uacInvite: number;
  uacBye: number;
  backendRetrans: number;
  backendResent: number;
  txEvents: string;
  avgRate: number;
  avgActive: number;
  peakActive: number;
  perBackend: Record<string, number>;
  statuses: Record<string, number>;
  healthChanges: string[];
  setupP50: number;
  setupP99: number;
}

async function txEvents(node: Node): Promise<string> {
  const text = String((await node.admin('/metrics')).json);
  const lines = text.split('\n').filter((l) => l.startsWith('tandem_sip_transaction_events_total'));
  return lines.map((l) => l.replace('tandem_sip_transaction_events_total', '')).join(' ') || 'none';
}

async function stress(killHalfway: boolean): Promise<StressResult> {
  const backends = await Promise.all(['pbx1', 'pbx2'].map((n) => startBackend(n)));
  const node = await startTandem(dispatcherYaml({ algorithm: 'round-robin', backends: backends.map((b) => ({ uri: b.uri })), intervalSec: 10, downAfter: 3, upAfter: 2, frTimerMs: 4000, frInvTimerMs: 60_000 }));
  const uac = new TestUac();
  await uac.open();
  const results: CallResult[] = [];
  const inFlight = new Set<Promise<void>>();
  let active = 0;
  let peak = 0;
  let activeSum = 0;
  let samples = 0;
  const start = performance.now();
  const end = start + DURATION_SEC * 1000;
  let generated = 0;
  let killed = false;
  const sampler = setInterval(() => {
    activeSum += active;
    samples++;
  }, 100);
  // Pace by schedule: call k is due at start + k / RATE s; skipped while at LIMIT (like SIPp -l).
  while (performance.now() < end) {
    const now = performance.now();
    if (killHalfway && !killed && now - start >= (DURATION_SEC * 1000) / 2) {
      backends[1]!.kill();
      killed = true;
      console.log(`  t=${((now - start) / 1000).toFixed(1)} s: SIGKILL pbx2`);
    }
    const due = Math.floor(((now - start) / 1000) * RATE);
    while (generated < due && active < LIMIT) {
      generated++;
      active++;
      peak = Math.max(peak, active);
      const p: Promise<void> = uac
        .call(node.sipPort, `sip:9${100000 + generated}@127.0.0.1`, HOLD_MS)
        .then((r) => {
          results.push(r);
        })
        .finally(() => {
          active--;
          inFlight.delete(p);
        });
      inFlight.add(p);
    }
    if (generated < due) generated = due; // at LIMIT: those calls are not placed (SIPp -l)
    await sleep(5);
  }
  const elapsed = (performance.now() - start) / 1000;
  await Promise.race([Promise.all(inFlight), sleep(HOLD_MS + 80_000)]);
  clearInterval(sampler);
  const perBackend: Record<string, number> = {};
  for (const r of results) if (r.status === 200) perBackend[r.backend ?? '?'] = (perBackend[r.backend ?? '?'] ?? 0) + 1;
  const out: StressResult = {
    generated: results.length,
    ok: results.filter((r) => r.status === 200 && r.byeOk).length,
    failed: results.filter((r) => r.status !== 200 || !r.byeOk).length,
    byeFailed: results.filter((r) => r.status === 200 && !r.byeOk).length,
    retransmissions: uac.retransmissions + backends.reduce((n, b) => n + b.retransReceived + b.finalsResent, 0),
    uacInvite: uac.inviteRetransmissions,
    uacBye: uac.byeRetransmissions,
    backendRetrans: backends.reduce((n, b) => n + b.retransReceived, 0),
    backendResent: backends.reduce((n, b) => n + b.finalsResent, 0),
    txEvents: await txEvents(node),
    avgRate: results.length / elapsed,
    avgActive: samples ? activeSum / samples : 0,
    peakActive: peak,
    perBackend,
    statuses: {},
    healthChanges: String((await node.admin('/metrics')).json)
      .split('\n')
      .filter((l) => l.startsWith('tandem_dispatcher_health_changes_total')),
    setupP50: pct(results.map((r) => r.setupMs), 0.5),
    setupP99: pct(results.map((r) => r.setupMs), 0.99),
  };
  for (const r of results) if (r.status !== 200) out.statuses[r.status] = (out.statuses[r.status] ?? 0) + 1;
  uac.close();
  await node.stop();
  backends.forEach((b) => b.kill());
  return out;
}

function printStress(name: string, r: StressResult): void {
  console.log(`${name}: generated ${r.generated} calls, avg ${r.avgRate.toFixed(1)} calls/s, avg active ${r.avgActive.toFixed(0)}, peak active ${r.peakActive}`);
  console.log(`  successful ${r.ok}, failed ${r.failed} (call setup failed ${r.failed - r.byeFailed}; answered but BYE unanswered ${r.byeFailed})`);
  console.log(
    `  retransmissions ${r.retransmissions}: UAC INVITE ${r.uacInvite} + UAC BYE ${r.uacBye} + received again by PBXs ${r.backendRetrans} + PBX finals re-sent ${r.backendResent}; proxy transaction events: ${r.txEvents}`,
  );
  console.log(`  answered per back-end: ${JSON.stringify(r.perBackend)}; failed INVITE statuses: ${JSON.stringify(r.statuses)}; setup p50 ${r.setupP50.toFixed(0)} ms, p99 ${r.setupP99.toFixed(0)} ms`);
  for (const l of r.healthChanges) console.log(`  ${l.replace('tandem_dispatcher_health_changes_total', 'health change')}`);
}

/** Situation 1 / 2: the first destination never answers / rings forever; time until the caller gets 200 from the second. */
async function failoverDelay(mode: 'silent' | 'ring-forever' | 'trying-only', samples: number): Promise<number[]> {
  const dead: Backend = await startBackend('dead', { mode });
  const good = await startBackend('good');
  const node = await startTandem(dispatcherYaml({ algorithm: 'priority', backends: [{ uri: dead.uri, priority: 1 }, { uri: good.uri, priority: 2 }], intervalSec: 3600, downAfter: 100, frTimerMs: 4000, frInvTimerMs: 60_000 }));
  const uac = new TestUac();
  await uac.open();
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    // put the silent one back in service so each sample pays the timeout
    await node.admin(`/dispatcher/sets/pbx/destinations/${encodeURIComponent(dead.uri)}/up`, { method: 'POST' });
    const r = await uac.call(node.sipPort, `sip:9${200 + i}@127.0.0.1`, 0);
    if (r.status === 200 && r.backend === 'good') out.push(r.setupMs / 1000);
    else console.log(`  sample ${i}: status ${r.status} from ${r.backend ?? '?'}`);
  }
  uac.close();
  await node.stop();
  dead.kill();
  good.kill();
  return out;
}

function pct(xs: number[], q: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

const stats = (xs: number[]) => (xs.length ? `avg ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3)} s, min ${Math.min(...xs).toFixed(3)} s, max ${Math.max(...xs).toFixed(3)} s (n=${xs.length})` : 'no samples');

console.log(`dispatcher failover bench: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'} (shared with other work: figures are noisy), node ${process.version}`);
console.log(`stress parameters: ${RATE} calls/s, limit ${LIMIT}, ${HOLD_MS / 1000} s calls, ${DURATION_SEC} s (published: 300 calls/s, 2000, 6 s, 1 hour)`);
try {
  if (!SKIP.has('A')) printStress('A. two back-ends', await stress(false));
  if (!SKIP.has('B')) printStress('B. one back-end killed halfway', await stress(true));
  if (!SKIP.has('C')) console.log(`C. failover, no response (fr_timer 4000 ms): ${stats(await failoverDelay('silent', SAMPLES))}   published 4.17 s`);
  if (!SKIP.has('D')) console.log(`D. failover, provisional (180) but no final (fr_inv_timer 60000 ms): ${stats(await failoverDelay('ring-forever', 1))}   published 63.04 s`);
  if (!SKIP.has('E')) console.log(`E. failover, only 100 Trying then nothing (the paper's literal Situation 2): ${stats(await failoverDelay('trying-only', 1))}`);
} finally {
  killAll();
}
