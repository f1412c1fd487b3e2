import { describe, expect, it } from 'vitest';
import { warmUpNgPath } from '../../../src/media/sessions/warm-up.js';
import { metricsRegistry } from '../../../src/util/metrics.js';

async function metricTotal(name: string): Promise<number> {
  const m = metricsRegistry.getSingleMetric(name);
  if (!m) return 0;
  return (await m.get()).values.reduce((n, v) => n + v.value, 0);
}

describe('start-up warm-up of the ng path', () => {
  it('takes every synthetic call through offer, answer and delete (IPv4 and IPv6 relays)', async () => {
    expect((await warmUpNgPath({ calls: 40, advertisedAddress: '127.0.0.1', sparePairs: 4 })).calls).toBe(40);
    expect((await warmUpNgPath({ calls: 10, advertisedAddress: '::1', sparePairs: 0 })).calls).toBe(10);
  });

  it('leaves the session metrics as they were before any traffic', async () => {
    await warmUpNgPath({ calls: 25, advertisedAddress: '127.0.0.1', sparePairs: 2 });
    expect(await metricTotal('tandem_media_sessions_created_total')).toBe(0);
    expect(await metricTotal('tandem_media_sessions_ended_total')).toBe(0);
    expect(await metricTotal('tandem_media_sessions')).toBe(0);
  });
});
