/**
 * `tandem lab run NAME`: load through the lab's VIPs, a fault at a chosen moment, figures from
 * the phones (the load generator), the topology (who holds which VIP, lease or Redis primary,
 * polled every 50 ms) and the parts' own accounting; a report beside the published figures.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { runLoad, type LoadResult } from '../../loadgen/run-load.js';
import type { LoadFigures } from '../../loadgen/report.js';
import type { HistogramSnapshot } from '../../loadgen/histogram.js';
import {
  LAB_DOMAIN,
  LAB_MASTER_NAME,
  LAB_SENTINEL_PORT,
  LAB_SIP_PORT,
  LAB_USERS,
  PBX_PREFIX,
  PHONE_USER,
  RING_DELAY_MS,
  RINGER_USER,
  userName,
  userPassword,
} from '../lab-plan.js';
import { isAlive } from '../part-process.js';
import { labKillMany, readTopology, vipHolders, type KillHow, type LabTopology } from '../lab.js';
import type { LabNetwork } from '../lab-network.js';
import { sentinelPrimary } from '../resp.js';
import { readVrrpEvents } from '../netns/keepalived.js';
import type { ExperimentData, LabCheck, LabEvent, LabSample } from '../report/types.js';

export const EXPERIMENTS = ['sig-fail', 'media-fail', 'half-dead', 'redis-fail', 'pbx-fail', 'stress', 'ringing-fail'] as const;
export type ExperimentName = (typeof EXPERIMENTS)[number];

export interface RunExperimentOptions {
  dir: string;
  name: ExperimentName;
  /** Calls established before the fault. */
  calls?: number;
  rate?: number;
  durationSec?: number;
  say?: (line: string) => void;
  network?: LabNetwork;
  /** Writes the report (default: ../report); returns its directory. */
  writeReport?: (dir: string, data: ExperimentData) => Promise<{ dir: string }>;
}

export interface ExperimentOutcome {
  result: ExperimentData;
  reportDir: string;
  summary: string;
  passed: boolean;
}

const DESCRIPTIONS: Record<ExperimentName, string> = {
  'sig-fail': 'Experiment A: calls with RTP established through the signalling VIP; its holder is SIGKILLed; every BYE must complete through the survivor and new calls keep connecting.',
  'media-fail': 'Experiment B: calls with RTP through both media VIPs; the media node carrying half of them is SIGKILLed; per-call worst RTP gap and loss.',
  'half-dead': 'The headline: the signalling VIP holder, media node 1 and the Redis primary killed together under load (50 % of the components).',
  'redis-fail': 'Sentinel failover under load: the Redis primary is SIGKILLed while calls are set up and torn down.',
  'pbx-fail': 'Second design: calls to the PBX pair through the dispatcher; PBX 1 is SIGKILLed; calls sent to it fail over to PBX 2 after fr_timer (4 s) and probing takes it out.',
  stress: 'Second design, tests 1 and 2: 300 calls/s with up to 2,000 concurrent 6 s calls to the PBX pair, then 1,000 REGISTER/s over 10,000 users, on the cluster.',
  'ringing-fail': 'Calls ringing (180, not answered) when the signalling VIP holder is SIGKILLed; they must be answered, acknowledged and ended through the survivor.',
};

interface Fault {
  /** After this many ms from the start of the load. */
  atMs: number;
  targets: Array<{ part: string | (() => Promise<string>); how: KillHow }>;
}

interface LoadPlan {
  service: string;
  rate: number;
  calls: number;
  durationMs: number;
  rtp: boolean;
  limit?: number;
  faults: Fault[];
}

function histogramValues(h: HistogramSnapshot): number[] {
  const out: number[] = [];
  for (let i = 0; i < h.counts.length; i++) {
    const n = h.counts[i]!;
    if (!n) continue;
    const upper = i === 0 ? 0.001 : Math.min(Math.pow(1.02, i) / 1000, h.maxMs);
    for (let k = 0; k < n; k++) out.push(Math.round(upper * 10) / 10);
  }
  return out;
}

function toolVersion(cmd: string, args: string[]): string {
  try {
    // keepalived prints its version on stderr
    return execFileSync('sh', ['-c', `${cmd} ${args.join(' ')} 2>&1`], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return 'not found';
  }
}

/** Polls who holds the VIPs and the Redis primary, turning changes into timeline events. */
class HolderWatch {
  readonly events: LabEvent[] = [];
  #last = new Map<string, string | undefined>();
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(readonly topo: LabTopology, readonly network: LabNetwork | undefined) {}

  async poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const now = Date.now();
      const holders = await vipHolders(this.topo, this.network).catch(() => ({}) as Record<string, string | undefined>);
      const a = this.topo.addresses;
      const name = (vip: string): string => (vip === a.sigVip ? `sig-vip ${vip}` : `media-vip ${vip}`);
      for (const [vip, holder] of Object.entries(holders)) this.#note(name(vip), holder, now, this.topo.mode === 'netns' ? 'vip-move' : 'lease');
      const primary = await sentinelPrimary(a.sentinels.map((host) => ({ host, port: LAB_SENTINEL_PORT })), LAB_MASTER_NAME).catch(() => undefined);
      const part = primary ? this.topo.parts.find((p) => p.role === 'redis' && p.address === primary.host)?.name : undefined;
      if (part) this.#note('redis primary', part, now, 'lease');
    } finally {
      this.#busy = false;
    }
  }

  #note(resource: string, holder: string | undefined, atMs: number, kind: 'vip-move' | 'lease'): void {
    const before = this.#last.get(resource);
    if (this.#last.has(resource) && before === holder) return;
    this.#last.set(resource, holder);
    if (holder) this.events.push({ atMs, kind, node: holder, resource, held: true });
    else if (before) this.events.push({ atMs, kind, node: before, resource, held: false, detail: 'no holder seen' });
  }

  holderOf(resource: string): string | undefined {
    return this.#last.get(resource);
  }

  start(everyMs: number): void {
    this.#timer = setInterval(() => void this.poll(), everyMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** First time after `sinceMs` the resource moved to a holder other than `from`. */
  movedAt(resource: string, from: string, sinceMs: number): number | undefined {
    return this.events.find((e) => e.resource === resource && e.atMs >= sinceMs && e.held !== false && e.node !== from)?.atMs;
  }
}

function plans(name: ExperimentName, o: RunExperimentOptions, watch: HolderWatch): { load: LoadPlan; register?: { rate: number; seconds: number } } {
  const a = watch.topo.addresses;
  const sigHolder = async (): Promise<string> => watch.holderOf(`sig-vip ${a.sigVip}`) ?? 'sig1';
  // VRRP with nopreempt may leave both media VIPs on one node: kill whoever carries the first.
  const mediaHolder = async (): Promise<string> => watch.holderOf(`media-vip ${a.mediaVips[0]}`) ?? 'media1';
  const rate = o.rate ?? (name === 'stress' ? 300 : name === 'pbx-fail' ? 20 : 50);
  const n = o.calls ?? (name === 'stress' ? 2000 : 100);
  const holdMs = (o.durationSec ?? (name === 'stress' ? 6 : name === 'pbx-fail' ? 5 : 10)) * 1000;
  // The fault comes once the first N calls are set up; as many again are placed after it.
  const faultAt = Math.round((n / rate) * 1000) + 500;
  switch (name) {
    case 'sig-fail':
      return { load: { service: PHONE_USER, rate, calls: 2 * n, durationMs: holdMs, rtp: true, faults: [{ atMs: faultAt, targets: [{ part: sigHolder, how: 'sigkill' }] }] } };
    case 'media-fail':
      return { load: { service: PHONE_USER, rate, calls: 2 * n, durationMs: holdMs, rtp: true, faults: [{ atMs: faultAt, targets: [{ part: mediaHolder, how: 'sigkill' }] }] } };
    case 'half-dead':
      return {
        load: {
          service: PHONE_USER, rate, calls: 2 * n, durationMs: Math.max(holdMs, 12_000), rtp: true,
          faults: [{ atMs: faultAt, targets: [{ part: sigHolder, how: 'sigkill' }, { part: mediaHolder, how: 'sigkill' }, { part: async () => watch.holderOf('redis primary') ?? 'redis1', how: 'sigkill' }] }],
        },
      };
    case 'redis-fail':
      return {
        load: {
          service: PHONE_USER, rate, calls: 2 * n, durationMs: holdMs, rtp: false,
          faults: [{ atMs: faultAt, targets: [{ part: async () => watch.holderOf('redis primary') ?? 'redis1', how: 'sigkill' }] }],
        },
      };
    case 'pbx-fail':
      return { load: { service: `${PBX_PREFIX}000`, rate, calls: 2 * n, durationMs: holdMs, rtp: false, faults: [{ atMs: faultAt, targets: [{ part: 'pbx1', how: 'sigkill' }] }] } };
    case 'stress':
      return {
        load: { service: `${PBX_PREFIX}000`, rate, calls: n * 6, limit: 2000, durationMs: holdMs, rtp: false, faults: [] },
        register: { rate: o.rate ? o.rate * 3 : 1000, seconds: o.durationSec ?? 20 },
      };
    case 'ringing-fail':
      // Kill while every call of the batch is ringing: after the last INVITE, before the first answer.
      return {
        load: {
          service: RINGER_USER, rate, calls: n, durationMs: holdMs, rtp: true,
          faults: [{ atMs: Math.min(Math.round((n / rate) * 1000) + 300, RING_DELAY_MS - 200), targets: [{ part: sigHolder, how: 'sigkill' }] }],
        },
      };
  }
}

function callers(count: number): Array<{ user: string; password: string }> {
  return Array.from({ length: count }, (_, i) => ({ user: userName(i), password: userPassword(i) }));
}

/** Calls established before `faultAtMs` whose end was lost, from the accounting records. */
function cdrFigures(topo: LabTopology): { records: number; endReasons: Record<string, number> } {
  const endReasons: Record<string, number> = {};
  let records = 0;
  for (const p of topo.parts.filter((x) => x.role === 'signalling')) {
    const f = resolve(topo.dir, 'run', `${p.name}.cdr.jsonl`);
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as { endReason?: string };
        records++;
        endReasons[r.endReason ?? 'unknown'] = (endReasons[r.endReason ?? 'unknown'] ?? 0) + 1;
      } catch {
        /* a line cut by a kill */
      }
    }
  }
  return { records, endReasons };
}

export async function runExperiment(o: RunExperimentOptions): Promise<ExperimentOutcome> {
  const say = o.say ?? (() => undefined);
  const topo = readTopology(resolve(o.dir));
  if (!topo) throw new Error(`no lab in ${resolve(o.dir)}: \`tandem lab up --dir ${o.dir}\` first`);
  const watch = new HolderWatch(topo, o.network);
  await watch.poll();
  const dead = topo.parts.filter((p) => p.role !== 'keepalived' && !isAlive(p.pid));
  if (dead.length) throw new Error(`parts are down (${dead.map((p) => p.name).join(', ')}): \`tandem lab revive NAME\` or a fresh \`tandem lab up\``);
  const { load, register } = plans(o.name, o, watch);
  const a = topo.addresses;
  const startedAtMs = Date.now();
  const samples: LabSample[] = [];
  const faultEvents: LabEvent[] = [];
  const killed: Array<{ part: string; atMs: number; resource?: string }> = [];
  watch.start(50);
  say(`${o.name}: ${load.calls} calls at ${load.rate}/s to ${load.service}@${LAB_DOMAIN} via ${a.sigVip}, hold ${load.durationMs / 1000} s, RTP ${load.rtp ? 'on' : 'off'}`);

  const loadStart = Date.now();
  const faultTimers = load.faults.map((f) =>
    setTimeout(() => {
      void (async () => {
        const names = await Promise.all(f.targets.map(async (t) => (typeof t.part === 'string' ? t.part : t.part())));
        const atMs = Date.now();
        for (const [i, t] of f.targets.entries()) {
          const part = names[i]!;
          const resource = part.startsWith('sig') ? `sig-vip ${a.sigVip}` : part.startsWith('media') ? `media-vip ${a.mediaVips[0]}` : part.startsWith('redis') ? 'redis primary' : undefined;
          killed.push({ part, atMs, ...(resource ? { resource } : {}) });
          faultEvents.push({ atMs, kind: 'fault', node: part, detail: t.how.toUpperCase() });
        }
        await labKillMany(topo.dir, f.targets.map((t, i) => ({ name: names[i]!, how: t.how })), o.network);
        say(`  fault at +${((atMs - loadStart) / 1000).toFixed(1)} s: ${names.map((n, i) => `${n} ${f.targets[i]!.how}`).join(', ')}`);
      })().catch((err: unknown) => say(`  fault failed: ${(err as Error).message}`));
    }, f.atMs),
  );

  const onProgress = (f: LoadFigures): void => {
    samples.push({ atMs: Date.now(), activeCalls: f.active, callsPerSec: f.callsPerSec, failedSoFar: f.failed, establishedSoFar: f.successful + f.active });
    if (samples.length % 4 === 0) say(`  +${f.elapsedSec.toFixed(0)} s  active ${f.active}  ok ${f.successful}  failed ${f.failed}  retrans ${f.retransmissions}${load.rtp ? `  worst gap ${f.rtpWorstGapMs.toFixed(0)} ms` : ''}`);
  };
  let calls: LoadResult;
  try {
    calls = await runLoad({
      scenario: 'call',
      target: { address: a.sigVip, port: LAB_SIP_PORT },
      transport: 'udp',
      localAddress: a.caller,
      service: load.service,
      domain: LAB_DOMAIN,
      rate: load.rate,
      calls: load.calls,
      durationMs: load.durationMs,
      ...(load.limit ? { limit: load.limit } : {}),
      rtp: load.rtp,
      users: callers(Math.min(LAB_USERS, 1000)),
      workers: 1,
      progress: 'none',
      reportMs: 250,
      onProgress,
    });
  } finally {
    for (const t of faultTimers) clearTimeout(t);
  }

  let registers: LoadResult | undefined;
  if (register) {
    say(`  REGISTER: ${register.rate}/s over ${LAB_USERS} users for ${register.seconds} s`);
    registers = await runLoad({
      scenario: 'register',
      target: { address: a.sigVip, port: LAB_SIP_PORT },
      transport: 'udp',
      localAddress: a.caller,
      domain: LAB_DOMAIN,
      rate: register.rate,
      calls: register.rate * register.seconds,
      users: callers(LAB_USERS),
      expiresSec: 3600,
      workers: 1,
      progress: 'none',
      reportMs: 1000,
    });
  }
  await watch.poll();
  watch.stop();
  const endedAtMs = Date.now();

  // Figures.
  const f = calls.figures;
  const failures = calls.failures;
  const dropped = Object.entries(failures).filter(([r]) => r.startsWith('BYE')).reduce((s, [, n]) => s + n, 0);
  const failedNew = f.failed - dropped;
  // In namespaces, keepalived's own notify times (the instant a node became MASTER) are exact;
  // the 50 ms poll of who holds an address is the fallback (and the only source for leases).
  const vrrp = topo.mode === 'netns' ? readVrrpEvents(topo.dir).filter((e) => e.tMs >= startedAtMs && e.tMs <= Date.now()) : [];
  const resourceOf = (instance: string): string => {
    const m = /^tandem_(signalling|media)_(.+)$/.exec(instance);
    return m ? `${m[1] === 'signalling' ? 'sig' : 'media'}-vip ${m[2]!.replaceAll('_', '.')}` : instance;
  };
  const vrrpEvents: LabEvent[] = vrrp.map((e) => ({ atMs: e.tMs, kind: 'vip-move', node: e.node, resource: resourceOf(e.instance), held: e.state === 'MASTER', detail: `keepalived ${e.state} (notify)` }));
  const takeoverMs: number[] = [];
  for (const k of killed) {
    if (!k.resource) continue;
    const vip = k.resource.split(' ')[1];
    const master = vip ? vrrp.find((e) => e.state === 'MASTER' && e.node !== k.part && e.tMs >= k.atMs && e.instance.endsWith(vip.replaceAll('.', '_'))) : undefined;
    const moved = master?.tMs ?? watch.movedAt(k.resource, k.part, k.atMs);
    if (moved !== undefined) takeoverMs.push(moved - k.atMs);
  }
  const gaps = load.rtp ? histogramValues(calls.snapshot.rtp.gaps) : [];
  // A stream that never came back would show a gap of the rest of the call: half the hold time.
  const lostMediaMs = load.durationMs / 2;
  const lostMedia = gaps.filter((g) => g > lostMediaMs).length;
  const checks: LabCheck[] = [];
  if (o.name !== 'stress' && o.name !== 'pbx-fail') checks.push({ name: '0 established calls dropped', ok: dropped === 0, detail: `${dropped} dropped` });
  if (o.name === 'pbx-fail') {
    // Calls the dead PBX held die with it (the PBX holds the call, in the published design too);
    // what the proxy owes is that no new call is lost.
    checks.push({ name: 'every new call connected (failover to the other PBX)', ok: failedNew === 0, detail: `${failedNew} new calls failed; ${dropped} calls held by the killed PBX ended with it` });
  } else {
    checks.push({ name: 'every call completed', ok: f.failed === 0, detail: `${f.successful} of ${f.generated} completed; failures ${JSON.stringify(failures)}` });
  }
  if (load.rtp) checks.push({ name: `no call lost its media (every stream resumed: no gap over ${lostMediaMs / 1000} s)`, ok: lostMedia === 0, detail: `worst gap ${f.rtpWorstGapMs.toFixed(0)} ms` });
  if (killed.some((k) => k.resource)) checks.push({ name: 'every killed holder was replaced', ok: takeoverMs.length === killed.filter((k) => k.resource).length, detail: `takeovers ${takeoverMs.join(', ')} ms` });
  if (registers) checks.push({ name: 'every REGISTER succeeded', ok: registers.figures.failed === 0, detail: `${registers.figures.successful} ok, ${registers.figures.failed} failed` });
  const cdr = cdrFigures(topo);
  // New calls delayed by the fault: the slowest setup is the refusal window as a caller saw it.
  const refusalWindowMs = load.faults.length ? Math.round(f.setupMaxMs) : undefined;

  const data: ExperimentData = {
    experiment: o.name,
    description: DESCRIPTIONS[o.name],
    parameters: { calls: load.calls, rate: load.rate, holdSec: load.durationMs / 1000, rtp: load.rtp, service: load.service, ...(load.limit ? { limit: load.limit } : {}) },
    startedAtMs,
    endedAtMs,
    topology: {
      mode: topo.mode,
      parts: topo.parts.map((p) => ({ name: p.name, role: p.role, address: p.address, vips: p.vips, ...(p.namespace ? { namespace: p.namespace } : {}), ...(p.pid ? { pid: p.pid } : {}), ...(p.adminUrl ? { adminUrl: p.adminUrl } : {}) })),
      settings: { takeover: topo.mode === 'netns' ? 'keepalived (VRRPv3)' : 'Redis lease (TTL 600 ms, poll 100 ms)', sentinelDownAfterMs: 1000 },
    },
    toolVersions: {
      tandem: '0.1.0',
      node: process.version,
      'redis-server': toolVersion('redis-server', ['--version']),
      ...(topo.mode === 'netns' ? { keepalived: toolVersion('keepalived', ['--version']) } : {}),
      kernel: toolVersion('uname', ['-r']),
    },
    samples,
    events: [...watch.events, ...vrrpEvents, ...faultEvents].sort((x, y) => x.atMs - y.atMs),
    ...(load.rtp ? { media: { perCallWorstGapMs: gaps, packetsExpected: f.rtpReceived + f.rtpLost, packetsLost: f.rtpLost } } : {}),
    figures: {
      callsAttempted: f.generated,
      callsEstablished: f.successful + dropped,
      callsDropped: dropped,
      callsFailedNew: failedNew,
      failuresByReason: failures,
      takeoverMs,
      ...(refusalWindowMs !== undefined ? { refusalWindowMs } : {}),
      byeAttempted: f.successful + dropped,
      byeCompleted: f.successful,
      ...(o.name === 'pbx-fail' ? { pbxFailoverMs: Math.round(f.setupMaxMs) } : {}),
      callsPerSecAvg: f.callsPerSec,
      retransmissions: f.retransmissions,
      ...(registers
        ? { registers: { attempted: registers.figures.generated, succeeded: registers.figures.successful, failed: registers.figures.failed, users: LAB_USERS, perSecAvg: registers.figures.callsPerSec, retransmissions: registers.figures.retransmissions } }
        : {}),
    },
    checks,
    notes: [
      `Accounting: ${cdr.records} call records written by the signalling nodes (end reasons ${JSON.stringify(cdr.endReasons)}).`,
      `Call setup p50 ${f.setupP50Ms} ms, p99 ${f.setupP99Ms} ms, max ${f.setupMaxMs} ms; SIP response p99 ${f.responseP99Ms} ms.`,
      ...(registers ? [`REGISTER response p50 ${registers.figures.responseP50Ms} ms, p99 ${registers.figures.responseP99Ms} ms.`] : []),
    ],
  };
  const writeReport = o.writeReport ?? (await import('../report/index.js')).writeExperimentReport;
  const written = await writeReport(resolve(topo.dir), data);
  const passed = checks.every((c) => c.ok);
  const summary = [
    `${o.name}: ${passed ? 'PASSED' : 'FAILED'}`,
    ...checks.map((c) => `  [${c.ok ? 'ok' : 'FAIL'}] ${c.name}: ${c.detail ?? ''}`),
    `  calls ${f.generated} placed, ${f.successful} completed, ${dropped} dropped, ${failedNew} new calls failed; takeover ${takeoverMs.length ? takeoverMs.join(', ') + ' ms' : '-'}; slowest setup ${f.setupMaxMs.toFixed(0)} ms${load.rtp ? `; RTP gap p50 ${f.rtpGapP50Ms.toFixed(0)} / p99 ${f.rtpGapP99Ms.toFixed(0)} / max ${f.rtpWorstGapMs.toFixed(0)} ms` : ''}`,
  ].join('\n');
  return { result: data, reportDir: written.dir, summary, passed };
}
