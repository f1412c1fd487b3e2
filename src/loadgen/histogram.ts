/**
 * Mergeable latency histogram with logarithmic buckets (about 2% relative error), so workers'
 * figures can be summed bucket by bucket and percentiles taken from the merged counts instead
 * of averaging per-worker percentiles.
 *
 * Values are milliseconds; bucket i holds values in (B^(i-1), B^i] microseconds, B = 1.02.
 */
const BASE = 1.02;
const LOG_BASE = Math.log(BASE);
/** Covers 1 us .. ~ 2.7 h. */
const BUCKETS = 1200;

export interface HistogramSnapshot {
  counts: number[];
  count: number;
  maxMs: number;
  sumMs: number;
}

export class LatencyHistogram {
  #counts = new Uint32Array(BUCKETS);
  #count = 0;
  #max = 0;
  #sum = 0;

  record(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) return;
    const us = ms * 1000;
    let i = us <= 1 ? 0 : Math.ceil(Math.log(us) / LOG_BASE);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.#counts[i]!++;
    this.#count++;
    this.#sum += ms;
    if (ms > this.#max) this.#max = ms;
  }

  get count(): number {
    return this.#count;
  }

  get maxMs(): number {
    return this.#max;
  }

  /** Value at quantile q (0..1): the upper bound of the bucket holding it, capped at the max seen. */
  percentile(q: number): number {
    return percentileOf(this.snapshot(), q);
  }

  snapshot(): HistogramSnapshot {
    // sparse-ish: only trailing zeros trimmed, keeps postMessage payloads small
    let last = BUCKETS - 1;
    while (last >= 0 && this.#counts[last] === 0) last--;
    return { counts: Array.from(this.#counts.subarray(0, last + 1)), count: this.#count, maxMs: this.#max, sumMs: this.#sum };
  }

  merge(s: HistogramSnapshot): void {
    for (let i = 0; i < s.counts.length && i < BUCKETS; i++) this.#counts[i]! += s.counts[i]!;
    this.#count += s.count;
    this.#sum += s.sumMs;
    if (s.maxMs > this.#max) this.#max = s.maxMs;
  }
}

export function emptyHistogram(): HistogramSnapshot {
  return { counts: [], count: 0, maxMs: 0, sumMs: 0 };
}

export function mergeHistograms(a: HistogramSnapshot, b: HistogramSnapshot): HistogramSnapshot {
  const n = Math.max(a.counts.length, b.counts.length);
  const counts = new Array<number>(n);
  for (let i = 0; i < n; i++) counts[i] = (a.counts[i] ?? 0) + (b.counts[i] ?? 0);
  return { counts, count: a.count + b.count, maxMs: Math.max(a.maxMs, b.maxMs), sumMs: a.sumMs + b.sumMs };
}

export function percentileOf(s: HistogramSnapshot, q: number): number {
  if (s.count === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * s.count));
  let seen = 0;
  for (let i = 0; i < s.counts.length; i++) {
    seen += s.counts[i]!;
    if (seen >= rank) {
      const upperMs = i === 0 ? 0.001 : Math.pow(BASE, i) / 1000;
      return Math.min(upperMs, s.maxMs);
    }
  }
  return s.maxMs;
}
