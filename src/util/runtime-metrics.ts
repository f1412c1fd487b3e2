/**
 * Process runtime metrics: event-loop delay, garbage-collection pauses and the V8 heap, in the
 * shared registry (admin serves them on /metrics). One set per process; `startRuntimeMetrics`
 * may be called by every role that runs in it, the first call starts them.
 *
 * - `tandem_event_loop_delay_seconds{quantile}`: how late the event loop ran timers, sampled
 *   every 10 ms by `perf_hooks.monitorEventLoopDelay`, p50 / p99 / max since the previous scrape
 *   (the histogram is reset at each scrape, so a stall shows once, in the scrape after it).
 * - `tandem_gc_pause_seconds{kind}`: every V8 collection (`PerformanceObserver` entry type `gc`),
 *   kind `minor` (scavenge), `major` (mark-compact), `incremental` (marking steps), `weakcb`.
 * - `tandem_gc_pause_max_seconds{kind}`: the longest pause of each kind since the previous scrape.
 * - `tandem_heap_bytes{space}`: `used` and `total` of the V8 heap, `external` (Buffers).
 */
import { constants, monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { gauge, histogram } from './metrics.js';

const KIND_NAMES: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

let started: { stop: () => void } | undefined;

const LOOP_RESOLUTION_MS = 10;

/** Starts the runtime metrics of this process (idempotent). Returns a stop function. */
export function startRuntimeMetrics(): () => void {
  if (started) return started.stop;
  const loop: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  // The histogram records the whole interval between its timer's runs (an idle loop shows 10 ms),
  // so the sampling interval is taken off: what is exported is how late the loop ran.
  const late = (ns: number): number => Math.max(0, ns - LOOP_RESOLUTION_MS * 1e6) / 1e9;
  gauge('tandem_event_loop_delay_seconds', 'How late the event loop ran, since the previous scrape (perf_hooks monitorEventLoopDelay sampled every 10 ms, the interval taken off)', ['quantile'], function collect() {
    // The histogram is in ns; an empty one reports NaN percentiles and a huge min.
    const n = loop.count;
    this.set({ quantile: '0.5' }, n ? late(loop.percentile(50)) : 0);
    this.set({ quantile: '0.99' }, n ? late(loop.percentile(99)) : 0);
    this.set({ quantile: '1' }, n ? late(loop.max) : 0);
    loop.reset();
  });
  const pauses = histogram('tandem_gc_pause_seconds', 'V8 garbage-collection pauses, by kind', ['kind'], [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);
  const maxByKind = new Map<string, number>();
  gauge('tandem_gc_pause_max_seconds', 'Longest V8 garbage-collection pause since the previous scrape, by kind', ['kind'], function collect() {
    for (const kind of Object.values(KIND_NAMES)) this.set({ kind }, maxByKind.get(kind) ?? 0);
    maxByKind.clear();
  });
  const byKind = new Map(Object.values(KIND_NAMES).map((k) => [k, pauses.labels({ kind: k })]));
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = KIND_NAMES[((e as { detail?: { kind?: number } }).detail)?.kind ?? -1] ?? 'other';
      const sec = e.duration / 1000;
      (byKind.get(kind) ?? pauses.labels({ kind })).observe(sec);
      if (sec > (maxByKind.get(kind) ?? 0)) maxByKind.set(kind, sec);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  gauge('tandem_heap_bytes', 'V8 heap: used and total (allocated) bytes, and external memory (Buffers)', ['space'], function collect() {
    const h = getHeapStatistics();
    this.set({ space: 'used' }, h.used_heap_size);
    this.set({ space: 'total' }, h.total_heap_size);
    this.set({ space: 'external' }, h.external_memory);
  });
  const stop = (): void => {
    loop.disable();
    observer.disconnect();
    started = undefined;
  };
  started = { stop };
  return stop;
}
