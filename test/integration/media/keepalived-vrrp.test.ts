/**
 * Media takeover with real VRRP in network namespaces (root, keepalived and curl only; skipped
 * otherwise): see keepalived-scenario.ts. Asserts that every call keeps its media through the
 * new holder and that it answers ng for them; the gap figures are printed, not asserted.
 */
import { describe, expect, it } from 'vitest';
import { quantile } from './rtp-calls.js';
import { canRunKeepalivedScenario, runKeepalivedScenario } from './keepalived-scenario.js';

const CALLS = 50;

describe.skipIf(!canRunKeepalivedScenario())('media takeover moved by keepalived (VRRPv3, 20 ms adverts)', () => {
  it(`${CALLS} calls keep their media when the holder's host is switched off`, async () => {
    const r = await runKeepalivedScenario({ calls: CALLS, advertMs: 20, log: (l) => console.log(`keepalived takeover: ${l}`) });
    expect(r.established).toBe(CALLS);
    expect(r.callsWithoutMedia).toBe(0);
    expect(r.worstGapMs).toHaveLength(CALLS);
    expect(r.worstGapMs.every((g) => g > 0)).toBe(true);
    expect(r.vipMoveMs).toBeDefined();
    expect(r.queryOk).toBe(true);
    expect(r.takeover?.['adopted']).toBe(CALLS);
    console.log(`keepalived takeover: worst gap p50 ${quantile(r.worstGapMs, 0.5)} / max ${Math.max(...r.worstGapMs)} ms`);
  }, 120_000);

  it('only the media process dies (host up): keepalived\'s health check gives the VIP away and the calls continue', async () => {
    const r = await runKeepalivedScenario({ calls: 10, fault: 'process', afterMs: 1000, log: (l) => console.log(`keepalived takeover (process): ${l}`) });
    expect(r.callsWithoutMedia).toBe(0);
    expect(r.vipMoveMs).toBeDefined();
    expect(r.takeover?.['adopted']).toBe(10);
  }, 120_000);
});
