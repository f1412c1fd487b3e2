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

export function counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
  return once(name, () => new Counter({ name, help, labelNames, registers: [metricsRegistry] }));
}

export function gauge(
  name: string,
  help: string,
  labelNames: string[] = [],
  collect?: (this: Gauge<string>) => void | Promise<void>,
): Gauge<string> {
  return once(name, () => new Gauge({ name, help, labelNames, registers: [metricsRegistry], ...(collect ? { collect } : {}) }));
}

export function histogram(name: string, help: string, labelNames: string[] = [], buckets?: number[]): Histogram<string> {
  return once(name, () => new Histogram({ name, help, labelNames, registers: [metricsRegistry], ...(buckets ? { buckets } : {}) }));
}
