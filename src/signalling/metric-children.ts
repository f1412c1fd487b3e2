import type { counter } from '../util/metrics.js';

type CounterMetric = ReturnType<typeof counter>;
type CounterChild = ReturnType<CounterMetric['labels']>;

/**
 * Labelled children of a one-label counter, bound on first use: `counter.inc({ label })` hashes
 * the label object on every call, `child.inc()` does not. Only for bounded label values.
 */
export function childrenOf(c: CounterMetric): (value: string) => CounterChild {
  const bound = new Map<string, CounterChild>();
  return (value) => {
    let child = bound.get(value);
    if (!child) {
      child = c.labels(value);
      bound.set(value, child);
    }
    return child;
  };
}
