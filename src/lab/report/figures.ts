/**
 * Figures computed from an experiment's data: calls kept, media gap percentiles, takeover,
 * availability, and the comparison with the published numbers. Pure functions; input that is
 * missing or not a finite number gives `null` ("not measured"), never a made-up 0.
 */
import { PUBLISHED_MTBF_HOURS, publishedFor } from './published.js';
import type { Availability, Comparison, ComputedFigures, ExperimentData, Percentiles, Verdict } from './types.js';

const SEC_PER_YEAR = 365.25 * 24 * 3600;

export function finite(values: readonly unknown[] | undefined): number[] {
  if (!Array.isArray(values)) return [];
  return values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
}

/** Largest of the values (-Infinity for none); no argument spreading, so any length works. */
export function maxOf(values: readonly number[]): number {
  let m = -Infinity;
  for (const v of values) if (v > m) m = v;
  return m;
}

export function minOf(values: readonly number[]): number {
  let m = Infinity;
  for (const v of values) if (v < m) m = v;
  return m;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Nearest-rank percentile (the value below which `q` of the sorted values lie), q in 0..1. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function percentiles(values: readonly unknown[] | undefined): Percentiles | null {
  const v = finite(values).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return {
    count: v.length,
    p50: percentile(v, 0.5),
    p99: percentile(v, 0.99),
    max: v[v.length - 1],
    mean: v.reduce((s, x) => s + x, 0) / v.length,
  };
}

/**
 * A = MTBF / (MTBF + MTTR) (Pryimak & Kravchuk 2025, §4), with the number of nines and the
 * expected downtime per year (one failure every MTBF, each costing MTTR).
 */
export function availabilityOf(mtbfSec: number, mttrSec: number, mttrSource = ''): Availability {
  // Unavailability computed directly: 1 - A would lose digits to cancellation.
  const u = mttrSec / (mtbfSec + mttrSec);
  return {
    mtbfSec,
    mttrSec,
    mttrSource,
    availability: mtbfSec / (mtbfSec + mttrSec),
    nines: u <= 0 ? Infinity : -Math.log10(u),
    downtimePerYearSec: u * SEC_PER_YEAR,
  };
}

export function verdictOf(measured: number | null, published: number, better: 'lower' | 'higher'): Verdict {
  if (measured === null) return 'not measured';
  // Compare at the precision the figures are printed with, so 0 vs 0 or 100 % vs 100 % is "same".
  const eps = Math.max(Math.abs(published), Math.abs(measured)) * 1e-9;
  if (Math.abs(measured - published) <= eps) return 'same';
  const lower = measured < published;
  return lower === (better === 'lower') ? 'better' : 'worse';
}

const mean = (v: number[]): number | null => (v.length ? v.reduce((s, x) => s + x, 0) / v.length : null);
const pct = (part: number | null, whole: number | null): number | null =>
  part !== null && whole !== null && whole > 0 ? (100 * part) / whole : null;

export function computeFigures(data: ExperimentData, mtbfHours = PUBLISHED_MTBF_HOURS): ComputedFigures {
  const f = data.figures ?? {};
  const durationSec = Math.max(0, (num(data.endedAtMs) ?? 0) - (num(data.startedAtMs) ?? 0)) / 1000;
  const samples = Array.isArray(data.samples) ? data.samples : [];
  const active = finite(samples.map((s) => s?.activeCalls));

  const callsAttempted = num(f.callsAttempted);
  const callsEstablished = num(f.callsEstablished);
  const callsDropped = num(f.callsDropped);
  const callsFailedNew = num(f.callsFailedNew);
  const takeoverMs = finite(f.takeoverMs);
  const takeoverMeanMs = mean(takeoverMs);
  const refusalWindowMs = num(f.refusalWindowMs);

  let callsPerSecAvg = num(f.callsPerSecAvg);
  if (callsPerSecAvg === null && callsAttempted !== null && durationSec > 0) callsPerSecAvg = callsAttempted / durationSec;

  const reg = f.registers;
  let registerPerSecAvg = num(reg?.perSecAvg);
  if (registerPerSecAvg === null && reg && num(reg.attempted) !== null && durationSec > 0) registerPerSecAvg = reg.attempted / durationSec;

  // MTTR: the worst takeover of the run (the faults of one run are one failure, and the service is
  // whole again only once the last part has taken over); when none was measured, the time new
  // calls were refused.
  let availability: Availability | null = null;
  const mtbfSec = mtbfHours * 3600;
  if (takeoverMs.length) {
    availability = availabilityOf(mtbfSec, maxOf(takeoverMs) / 1000, takeoverMs.length === 1 ? 'the measured takeover' : `the worst of ${takeoverMs.length} takeovers measured in the run`);
  } else if (refusalWindowMs !== null) {
    availability = availabilityOf(mtbfSec, refusalWindowMs / 1000, 'the new-call refusal window (no takeover was measured)');
  }

  const media = data.media;
  const lossTotal = pct(num(media?.packetsLost), num(media?.packetsExpected));

  const computed: ComputedFigures = {
    durationSec,
    callsAttempted,
    callsEstablished,
    callsKept: callsEstablished !== null && callsDropped !== null ? callsEstablished - callsDropped : null,
    callsDropped,
    callsDroppedPct: pct(callsDropped, callsEstablished),
    callsFailedNew,
    callFailurePct: pct(callsFailedNew !== null || callsDropped !== null ? (callsFailedNew ?? 0) + (callsDropped ?? 0) : null, callsAttempted),
    callsPerSecAvg,
    activeCallsAvg: mean(active),
    activeCallsMax: active.length ? maxOf(active) : null,
    byeCompletedPct: pct(num(f.byeCompleted), num(f.byeAttempted)),
    takeoverMs,
    takeoverMeanMs,
    takeoverMaxMs: takeoverMs.length ? maxOf(takeoverMs) : null,
    refusalWindowMs,
    pbxFailoverMs: num(f.pbxFailoverMs),
    pbxFailoverAfterTryingMs: num(f.pbxFailoverAfterTryingMs),
    mediaGapMs: percentiles(finite(media?.perCallWorstGapMs).filter((v) => v >= 0)),
    mediaLossPct: percentiles(finite(media?.perCallLossPct).filter((v) => v >= 0)),
    mediaLossTotalPct: lossTotal,
    registerPerSecAvg,
    registerFailurePct: reg ? pct(num(reg.failed), num(reg.attempted)) : null,
    availability,
    availabilityPct: availability ? availability.availability * 100 : null,
    comparisons: [],
  };
  computed.comparisons = publishedFor(data.experiment).map((p): Comparison => {
    const measured = computed[p.metric];
    return {
      id: p.id,
      label: p.label,
      unit: p.unit,
      measured,
      published: p.value,
      better: p.better,
      verdict: verdictOf(measured, p.value, p.better),
      source: p.source,
      ...(p.note ? { note: p.note } : {}),
    };
  });
  return computed;
}
