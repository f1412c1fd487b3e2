/**
 * Synthetic data of a `half-dead` run (signalling node 1, media node 1 and the Redis primary
 * SIGKILLed together under load), deterministic (seeded), for the report tests and the sample
 * report in docs/lab-report-sample/. The numbers are made up to look like a run; they are not
 * measurements.
 */
import type { ExperimentData, LabEvent, LabSample } from '../../../src/lab/report/types.js';

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SAMPLE_START_MS = Date.UTC(2026, 11, 3, 10, 0, 0);

export function halfDeadSample(): ExperimentData {
  const rand = rng(12);
  const start = SAMPLE_START_MS;
  const durationSec = 60;
  const rate = 30;
  const holdSec = 20;
  const faultSec = 25;
  const refusalSec = 0.9;
  const s = (sec: number) => start + Math.round(sec * 1000);

  // Calls: one every 1/rate s, refused during the refusal window after the fault.
  interface Call { startSec: number; endSec: number; refused: boolean }
  const calls: Call[] = [];
  for (let t = 0; t < durationSec - holdSec - 1; t += 1 / rate) {
    const refused = t >= faultSec && t < faultSec + refusalSec;
    calls.push({ startSec: t, endSec: t + holdSec + rand() * 2, refused });
  }
  const samples: LabSample[] = [];
  for (let t = 0; t <= durationSec; t += 0.25) {
    const started = calls.filter((c) => c.startSec <= t);
    const active = started.filter((c) => !c.refused && c.endSec > t).length;
    const lastSec = calls.filter((c) => c.startSec > t - 1 && c.startSec <= t && !c.refused).length;
    const failed = started.filter((c) => c.refused).length;
    samples.push({ atMs: s(t), activeCalls: active, callsPerSec: t < 1 ? lastSec / Math.max(t, 0.25) : lastSec, failedSoFar: failed, establishedSoFar: started.length - failed });
  }
  // Worst gap per call: 20 ms packets with jitter; calls up across the fault on media1 heard the media takeover.
  const established = calls.filter((c) => !c.refused);
  const gaps = established.map((c) => {
    const acrossFault = c.startSec < faultSec && c.endSec > faultSec;
    return acrossFault ? 290 + rand() * 60 : 20 + rand() * rand() * 30;
  });
  const loss = established.map((_c, i) => (gaps[i] > 200 ? (gaps[i] / 20 / (20 * 50)) * 100 : rand() * 0.05));

  const events: LabEvent[] = [
    { atMs: s(0), kind: 'vip-move', node: 'sig1', resource: 'sig VIP 198.18.0.10', detail: 'MASTER' },
    { atMs: s(0), kind: 'lease', node: 'sig1', resource: 'sig lease' },
    { atMs: s(0), kind: 'vip-move', node: 'media1', resource: 'media VIP 198.18.0.20', detail: 'MASTER' },
    { atMs: s(0), kind: 'lease', node: 'media1', resource: 'media lease' },
    { atMs: s(0), kind: 'lease', node: 'redis1', resource: 'Redis primary' },
    { atMs: s(faultSec), kind: 'fault', node: 'sig1', detail: 'SIGKILL' },
    { atMs: s(faultSec), kind: 'fault', node: 'media1', detail: 'SIGKILL' },
    { atMs: s(faultSec), kind: 'fault', node: 'redis1', detail: 'SIGKILL' },
    { atMs: s(faultSec + 0.01), kind: 'node-down', node: 'sig1' },
    { atMs: s(faultSec + 0.01), kind: 'node-down', node: 'media1' },
    { atMs: s(faultSec + 0.01), kind: 'node-down', node: 'redis1' },
    { atMs: s(faultSec + 0.31), kind: 'lease', node: 'media2', resource: 'media lease' },
    { atMs: s(faultSec + 0.33), kind: 'vip-move', node: 'media2', resource: 'media VIP 198.18.0.20', detail: 'MASTER' },
    { atMs: s(faultSec + 0.8), kind: 'lease', node: 'sig2', resource: 'sig lease' },
    { atMs: s(faultSec + 0.85), kind: 'vip-move', node: 'sig2', resource: 'sig VIP 198.18.0.10', detail: 'MASTER' },
    { atMs: s(faultSec + 5.2), kind: 'lease', node: 'redis2', resource: 'Redis primary', detail: '+switch-master' },
    { atMs: s(45), kind: 'node-up', node: 'sig1', detail: 'revived' },
    { atMs: s(45.4), kind: 'note', node: '', detail: 'sig1 back as BACKUP (nopreempt)' },
  ];
  const droppedNone = 0;
  return {
    experiment: 'half-dead',
    description: 'Signalling node 1, media node 1 and the Redis primary SIGKILLed together under load (50 % of the components).',
    parameters: { calls: established.length, rate, duration: `${durationSec}s`, hold: `${holdSec}s`, how: 'sigkill' },
    startedAtMs: start,
    endedAtMs: s(durationSec),
    topology: {
      mode: 'netns',
      parts: [
        { name: 'sig1', role: 'signalling', address: '198.18.0.11', vips: ['198.18.0.10'], namespace: 'tl-sig1', pid: 4101 },
        { name: 'sig2', role: 'signalling', address: '198.18.0.12', vips: ['198.18.0.10'], namespace: 'tl-sig2', pid: 4102 },
        { name: 'media1', role: 'media', address: '198.18.0.21', vips: ['198.18.0.20'], namespace: 'tl-media1', pid: 4103 },
        { name: 'media2', role: 'media', address: '198.18.0.22', vips: ['198.18.0.20'], namespace: 'tl-media2', pid: 4104 },
        { name: 'redis1', role: 'redis', address: '198.18.0.31', namespace: 'tl-redis1', pid: 4105 },
        { name: 'redis2', role: 'redis', address: '198.18.0.32', namespace: 'tl-redis2', pid: 4106 },
      ],
      settings: { 'advert interval': '20 ms', 'lease TTL': '300 ms', takeover: 'keepalived' },
    },
    toolVersions: { tandem: '0.1.0', keepalived: 'v2.2.7', 'redis-server': '7.0.15' },
    samples,
    events,
    media: { perCallWorstGapMs: gaps, perCallLossPct: loss, packetsExpected: established.length * holdSec * 50, packetsLost: Math.round(established.length * 0.4) },
    figures: {
      callsAttempted: calls.length,
      callsEstablished: established.length,
      callsDropped: droppedNone,
      callsFailedNew: calls.length - established.length,
      failuresByReason: { 'status 503': calls.length - established.length - 3, timeout: 3 },
      takeoverMs: [850, 330],
      takeoverOf: ['sig VIP', 'media VIP'],
      refusalWindowMs: refusalSec * 1000,
      byeAttempted: established.filter((c) => c.startSec < faultSec).length,
      byeCompleted: established.filter((c) => c.startSec < faultSec).length,
    },
    checks: [
      { name: '0 established calls dropped', ok: true },
      { name: 'new calls refused no longer than the takeover', ok: false, detail: 'refused 900 ms, takeover 850 ms' },
    ],
    notes: ['Synthetic data for the report sample: not a measurement.'],
  };
}
