import { describe, expect, it } from 'vitest';
import { counter, metricsRegistry } from '../../../src/util/metrics.js';
import { childrenOf } from '../../../src/signalling/metric-children.js';

describe('batched counter children', () => {
  it('every increment is visible on each read (/metrics text and get())', async () => {
    const c = counter('tandem_test_batched_children_total', 'test counter', ['kind']);
    const by = childrenOf(c);
    by('a').inc();
    by('a').inc();
    by('b').inc(3);
    expect(await metricsRegistry.metrics()).toContain('tandem_test_batched_children_total{kind="a"} 2');
    by('a').inc();
    const values = (await c.get()).values;
    expect(values.find((v) => v.labels['kind'] === 'a')?.value).toBe(3);
    expect(values.find((v) => v.labels['kind'] === 'b')?.value).toBe(3);
  });
});
