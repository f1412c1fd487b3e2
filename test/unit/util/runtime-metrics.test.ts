import { afterAll, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../../src/util/metrics.js';
import { startRuntimeMetrics } from '../../../src/util/runtime-metrics.js';

/** Value of one sample line of the Prometheus text, e.g. `name{kind="minor"}`. */
function sample(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ')) return Number(line.slice(name.length + 1));
  }
  return undefined;
}

describe('runtime metrics', () => {
  const stop = startRuntimeMetrics();
  afterAll(() => stop());

  it('is started once per process', () => {
    expect(startRuntimeMetrics()).toBe(stop);
  });

  it('an idle loop is not late: the 10 ms sampling interval is not reported as delay', async () => {
    await metricsRegistry.metrics(); // reset
    await new Promise((r) => setTimeout(r, 300));
    const text = await metricsRegistry.metrics();
    expect(sample(text, 'tandem_event_loop_delay_seconds{quantile="0.5"}')).toBeLessThan(0.008);
  });

  it('exports the event-loop delay: a blocked loop shows in the max since the previous scrape, then it is reset', async () => {
    await metricsRegistry.metrics(); // reset
    await new Promise((r) => setTimeout(r, 30));
    const until = Date.now() + 80;
    while (Date.now() < until) {
      /* block the event loop */
    }
    await new Promise((r) => setTimeout(r, 30));
    const text = await metricsRegistry.metrics();
    expect(sample(text, 'tandem_event_loop_delay_seconds{quantile="1"}')).toBeGreaterThanOrEqual(0.05);
    const again = await metricsRegistry.metrics();
    expect(sample(again, 'tandem_event_loop_delay_seconds{quantile="1"}')).toBeLessThan(0.05);
  });

  it('counts garbage-collection pauses by kind and exports the heap', async () => {
    let keep: unknown[] = [];
    for (let i = 0; i < 200_000; i++) {
      keep.push({ i, s: `x${i}` });
      if (keep.length > 1000) keep = [];
    }
    // GC entries are delivered asynchronously.
    await new Promise((r) => setTimeout(r, 50));
    const text = await metricsRegistry.metrics();
    expect(sample(text, 'tandem_gc_pause_seconds_count{kind="minor"}')).toBeGreaterThan(0);
    expect(sample(text, 'tandem_gc_pause_max_seconds{kind="minor"}')).toBeGreaterThan(0);
    expect(sample(text, 'tandem_heap_bytes{space="used"}')).toBeGreaterThan(1e6);
  });
});
