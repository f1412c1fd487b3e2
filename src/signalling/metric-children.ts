import type { counter } from '../util/metrics.js';

type CounterMetric = ReturnType<typeof counter>;
type CounterChild = ReturnType<CounterMetric['labels']>;

/** One label value of a counter: increments are plain additions, handed to the counter when it is read. */
export class BatchedChild {
  #pending = 0;
  readonly #child: CounterChild;
  constructor(child: CounterChild) {
    this.#child = child;
  }
  inc(n = 1): void {
    this.#pending += n;
  }
  /** Adds the pending increments to the counter. */
  flush(): void {
    if (this.#pending === 0) return;
    const n = this.#pending;
    this.#pending = 0;
    this.#child.inc(n);
  }
}

/**
 * Children of a one-label counter for hot paths, bound on first use. `counter.inc({ label })`
 * (and even a prom-client child's `inc()`) hashes and validates the labels on every call; here an
 * increment is one addition, and the counts reach the counter in its collect hook, which runs
 * before every read (`/metrics`, `registry.metrics()`, `counter.get()`), so reads stay exact.
 * Only for bounded label values.
 */
export function childrenOf(c: CounterMetric): (value: string) => BatchedChild {
  const bound = new Map<string, BatchedChild>();
  const metric = c as unknown as { collect?: (this: unknown) => unknown };
  const previous = metric.collect;
  metric.collect = function (this: unknown) {
    for (const child of bound.values()) child.flush();
    return previous?.call(this);
  };
  return (value) => {
    let child = bound.get(value);
    if (!child) {
      child = new BatchedChild(c.labels(value));
      bound.set(value, child);
    }
    return child;
  };
}
