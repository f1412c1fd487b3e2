import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The one registry every layer registers into; admin serves it on /metrics. */
export const metricsRegistry = new Registry();

const known = new Map<string, Counter<string> | Gauge<string> | Histogram<string>>();

function once<T extends Counter<string> | Gauge<string> | Histogram<string>>(name: string, make: () => T): T {
  const existing = known.get(name);
  if (existing) return existing as T;
  const created = make();
  known.set(name, created);
  return created;
}

/** `collect` runs before each read of the metric (e.g. to move values kept elsewhere into it). */
export function counter(name: string, help: string, labelNames: string[] = [], collect?: () => void): Counter<string> {
  return once(name, () => new Counter({ name, help, labelNames, registers: [metricsRegistry], ...(collect ? { collect } : {}) }));
}

export function gauge(
  name: string,
  help: string,
  labelNames: string[] = [],
  collect?: (this: Gauge<string>) => void | Promise<void>,
): Gauge<string> {
  return once(name, () => new Gauge({ name, help, labelNames, registers: [metricsRegistry], ...(collect ? { collect } : {}) }));
}

export function histogram(name: string, help: string, labelNames: string[] = [], buckets?: number[], collect?: () => void): Histogram<string> {
  return once(name, () => new Histogram({ name, help, labelNames, registers: [metricsRegistry], ...(buckets ? { buckets } : {}), ...(collect ? { collect } : {}) }));
}

/** Sum of a registered metric's series whose labels match (0 when it is not registered). */
export async function metricSum(name: string, labels: Record<string, string>): Promise<number> {
  const m = metricsRegistry.getSingleMetric(name);
  if (!m) return 0;
  let sum = 0;
  for (const x of (await m.get()).values) if (Object.entries(labels).every(([k, l]) => x.labels[k] === l)) sum += x.value;
  return sum;
}
