import { describe, expect, it } from 'vitest';
import { availabilityOf, computeFigures, percentile, percentiles, verdictOf } from '../../../src/lab/report/figures.js';
import { formatAvailability, formatDuration, formatValue, mdCell } from '../../../src/lab/report/format.js';
import { binValues, logBinValues, logTicks, round125 } from '../../../src/lab/report/plots/gap-histogram.js';
import { faultMarkers } from '../../../src/lab/report/plots/markers.js';
import { downStretchesOf, holdingsAndVacancies, holdingsOf, takeoverWindowOf } from '../../../src/lab/report/plots/takeover-timeline.js';
import { PUBLISHED_FIGURES, publishedFor } from '../../../src/lab/report/published.js';
import { decimate, el, esc, legend, linearScale, niceStep, niceTicks, polyline, tickLabel } from '../../../src/lab/report/svg.js';
import { reportDirName } from '../../../src/lab/report/write-report.js';
import type { LabEvent } from '../../../src/lab/report/types.js';

describe('availability', () => {
  it('matches the paper: MTBF 336 h, MTTR 1 s -> 99.9999 %, MTTR 3600 s -> 99.7 %', () => {
    const ha = availabilityOf(1209600, 1);
    expect(ha.availability).toBeCloseTo(1209600 / 1209601, 15);
    expect(formatAvailability(ha.availability)).toBe('99.9999173 %');
    expect(ha.nines).toBeCloseTo(6.0826, 3);
    expect(ha.downtimePerYearSec).toBeCloseTo((365.25 * 86400) / 1209601, 9);
    expect(formatDuration(ha.downtimePerYearSec * 1000)).toBe('26.09 s');
    const trad = availabilityOf(1209600, 3600);
    expect(formatAvailability(trad.availability)).toBe('99.703 %');
  });

  it('never prints a not-quite-perfect availability as 100 %', () => {
    expect(formatAvailability(1 - 1e-13)).not.toBe('100 %');
    expect(formatAvailability(1)).toBe('100 %');
    expect(availabilityOf(1209600, 0).nines).toBe(Infinity);
  });
});

describe('figures', () => {
  it('nearest-rank percentiles', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 0.5)).toBe(50);
    expect(percentile(v, 0.99)).toBe(99);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentiles([])).toBeNull();
    expect(percentiles([3, 1, 2])).toMatchObject({ count: 3, p50: 2, max: 3, mean: 2 });
  });

  it('verdicts follow the direction that is good for the figure', () => {
    expect(verdictOf(800, 1000, 'lower')).toBe('better');
    expect(verdictOf(1200, 1000, 'lower')).toBe('worse');
    expect(verdictOf(0, 0, 'lower')).toBe('same');
    expect(verdictOf(300, 284.75, 'higher')).toBe('better');
    expect(verdictOf(null, 1, 'higher')).toBe('not measured');
  });

  it('MTTR is the worst takeover; the refusal window stands in when no takeover was measured', () => {
    const base = { experiment: 'sig-fail', startedAtMs: 0, endedAtMs: 10_000 };
    expect(computeFigures({ ...base, figures: { takeoverMs: [200, 900] } }).availability?.mttrSec).toBe(0.9);
    const r = computeFigures({ ...base, figures: { refusalWindowMs: 1500 } }).availability;
    expect(r?.mttrSec).toBe(1.5);
    expect(r?.mttrSource).toMatch(/refusal/);
    expect(computeFigures(base).availability).toBeNull();
  });

  it('stress: call rate from the count and duration, failures and REGISTER rate in percent', () => {
    const c = computeFigures({
      experiment: 'stress',
      startedAtMs: 0,
      endedAtMs: 100_000,
      figures: { callsAttempted: 30_000, callsFailedNew: 3, callsDropped: 0, registers: { attempted: 100_000, succeeded: 99_999, failed: 1 } },
    });
    expect(c.callsPerSecAvg).toBe(300);
    expect(c.callFailurePct).toBeCloseTo(0.01, 10);
    expect(c.registerPerSecAvg).toBe(1000);
    expect(c.registerFailurePct).toBeCloseTo(0.001, 10);
    const rate = c.comparisons.find((x) => x.id === 'mg-stress-rate');
    expect(rate).toMatchObject({ measured: 300, published: 284.75, verdict: 'better' });
  });
});

describe('published figures', () => {
  it('every experiment of issue 12 has lines, each with a source naming the paper and where', () => {
    for (const e of ['sig-fail', 'media-fail', 'half-dead', 'redis-fail', 'pbx-fail', 'stress', 'ringing-fail']) expect(publishedFor(e).length, e).toBeGreaterThan(0);
    for (const p of PUBLISHED_FIGURES) expect(p.source).toMatch(/(Pryimak & Kravchuk 2025|Martin et al\. 2018), (§|Table|abstract)/);
    const pbx = publishedFor('pbx-fail').map((p) => p.value);
    expect(pbx).toEqual([4174, 63049]);
  });
});

describe('format', () => {
  it('durations in human units', () => {
    expect(formatDuration(330)).toBe('330 ms');
    expect(formatDuration(4174)).toBe('4.17 s');
    expect(formatDuration(63049)).toBe('63.05 s');
    expect(formatDuration(200_000)).toBe('3 min 20 s');
    expect(formatDuration(180_000)).toBe('3 min');
    expect(formatDuration(3_600_000)).toBe('1 h');
    expect(formatDuration(1.5)).toBe('1.5 ms');
  });

  it('values with units; missing ones say so', () => {
    expect(formatValue(null, 'ms')).toBe('not measured');
    expect(formatValue(284.75, 'calls/s')).toBe('284.75 calls/s');
    expect(formatValue((16 / 1025107) * 100, '%')).toBe('0.00156 %');
    expect(mdCell('a|b\nc')).toBe('a\\|b c');
  });
});

describe('svg helpers', () => {
  it('escapes text and attributes', () => {
    expect(esc(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
    expect(el('rect', { x: 1.234, y: undefined, fill: 'a"b' })).toBe('<rect x="1.23" fill="a&quot;b"/>');
    expect(el('g', {}, ['<a/>', '<b/>'])).toBe('<g><a/><b/></g>');
  });

  it('nice steps and ticks on round numbers', () => {
    expect(niceStep(0.7)).toBe(1);
    expect(niceStep(1.3)).toBe(2);
    expect(niceStep(3)).toBe(5);
    expect(niceStep(7)).toBe(10);
    expect(niceStep(230)).toBe(500);
    const t = niceTicks(0, 63, 6);
    expect(t.values).toEqual([0, 20, 40, 60, 80]);
    expect(niceTicks(0.2, 0.9, 7).values).toEqual([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    expect(niceTicks(5, 5).values.length).toBeGreaterThanOrEqual(2);
    expect(niceTicks(NaN, Infinity).values).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(tickLabel(1500, 500)).toBe('1,500');
    expect(tickLabel(0.25, 0.05)).toBe('0.25');
  });

  it('scales and polylines (a NaN point breaks the line)', () => {
    const s = linearScale(0, 10, 100, 200);
    expect(s(5)).toBe(150);
    expect(linearScale(3, 3, 0, 10)(3)).toBe(5);
    const p = polyline([[0, 0], [1, 1], [NaN, 2], [3, 3], [4, 4]], '#000');
    expect(p.match(/<polyline/g)?.length).toBe(2);
  });

  it('legend wraps onto a second row when narrow', () => {
    const items = Array.from({ length: 6 }, (_, i) => ({ label: `resource number ${i}`, colour: '#000' }));
    expect(legend(items, 0, 0).extraHeight).toBe(0);
    expect(legend(items, 0, 0, 400).extraHeight).toBeGreaterThan(0);
  });
});

describe('histogram bins', () => {
  it('round bin widths from 0 to the maximum, every value counted once', () => {
    const v = [20, 21, 22, 40, 330, 345];
    const b = binValues(v, 30);
    expect(b.width).toBe(20);
    expect(b.start).toBe(0);
    expect(b.counts.reduce((s, c) => s + c, 0)).toBe(v.length);
    expect(b.counts[1]).toBe(3);
    expect(binValues([20, 20, 20]).counts.reduce((s, c) => s + c, 0)).toBe(3);
    expect(binValues([0]).counts).toEqual([1]);
  });
});

describe('log-scale histogram (gaps spanning 20 ms to seconds)', () => {
  it('1-2-5 rounding', () => {
    expect(round125(25.1, 'down')).toBe(20);
    expect(round125(3079, 'up')).toBe(5000);
    expect(round125(20, 'down')).toBe(20);
    expect(round125(20, 'up')).toBe(20);
    expect(round125(0.7, 'up')).toBe(1);
  });

  it('10 bins per decade between 1-2-5 ends, every value counted once', () => {
    const v = [21, 30, 36, 44, 3079];
    const b = logBinValues(v, 10);
    expect(b.edges[0]).toBeCloseTo(19.95, 2);
    expect(b.edges[b.edges.length - 1]).toBeGreaterThanOrEqual(5000);
    expect(b.counts.reduce((s, c) => s + c, 0)).toBe(v.length);
    for (const x of v) {
      const i = b.edges.findIndex((e, k) => x >= e && x < b.edges[k + 1]);
      expect(b.counts[i], String(x)).toBeGreaterThan(0);
    }
    expect(logTicks(20, 5000)).toEqual([20, 50, 100, 200, 500, 1000, 2000, 5000]);
  });
});

describe('takeover timeline', () => {
  const ev = (atMs: number, kind: LabEvent['kind'], node: string, extra: Partial<LabEvent> = {}): LabEvent => ({ atMs, kind, node, ...extra });

  it('a new holder ends the previous one; a release ends only the holder own holding', () => {
    const events = [
      ev(0, 'vip-move', 'sig1', { resource: 'VIP' }),
      ev(5000, 'vip-move', 'sig2', { resource: 'VIP' }),
      ev(6000, 'vip-move', 'sig1', { resource: 'VIP', held: false }), // stale release: ignored
      ev(8000, 'vip-move', 'sig2', { resource: 'VIP', held: false }),
      ev(0, 'lease', 'media1', { resource: 'lease' }),
    ];
    const h = holdingsOf(events, 0, 10);
    expect(h).toEqual([
      { resource: 'VIP', node: 'sig1', fromSec: 0, toSec: 5 },
      { resource: 'VIP', node: 'sig2', fromSec: 5, toSec: 8 },
      { resource: 'lease', node: 'media1', fromSec: 0, toSec: 10 },
    ]);
  });

  it('a release starts a vacancy that the next holder ends', () => {
    const { vacancies } = holdingsAndVacancies(
      [ev(0, 'lease', 'sig1', { resource: 'VIP' }), ev(2500, 'lease', 'sig1', { resource: 'VIP', held: false }), ev(4900, 'lease', 'sig2', { resource: 'VIP' })],
      0,
      10,
    );
    expect(vacancies).toEqual([{ resource: 'VIP', node: 'sig1', fromSec: 2.5, toSec: 4.9 }]);
  });

  it('a fault starts a down stretch for a node the data gives no node-down for', () => {
    const d = downStretchesOf([ev(2000, 'fault', 'media1', { detail: 'SIGKILL' }), ev(2000, 'fault', 'sig1'), ev(2100, 'node-down', 'sig1'), ev(7000, 'node-up', 'media1')], 0, 10);
    expect(d).toEqual([
      { node: 'media1', fromSec: 2, toSec: 7 },
      { node: 'sig1', fromSec: 2.1, toSec: 10 },
    ]);
  });

  it('down stretches run from node-down to node-up or the end', () => {
    const d = downStretchesOf([ev(1000, 'node-down', 'a'), ev(3000, 'node-up', 'a'), ev(4000, 'node-down', 'b')], 0, 10);
    expect(d).toEqual([
      { node: 'a', fromSec: 1, toSec: 3 },
      { node: 'b', fromSec: 4, toSec: 10 },
    ]);
  });

  it('close-up window around the faults, none without a fault or when it covers most of the run', () => {
    const events = [ev(25_000, 'fault', 'sig1'), ev(25_850, 'vip-move', 'sig2', { resource: 'VIP' })];
    expect(takeoverWindowOf({ experiment: 'x', startedAtMs: 0, endedAtMs: 60_000, events })).toEqual({ fromSec: 24, toSec: 27 });
    expect(takeoverWindowOf({ experiment: 'x', startedAtMs: 0, endedAtMs: 60_000, events: events.slice(1) })).toBeNull();
    expect(takeoverWindowOf({ experiment: 'x', startedAtMs: 0, endedAtMs: 5_000, events })).toBeNull();
  });

  it('faults at the same instant share one label', () => {
    const m = faultMarkers([ev(1000, 'fault', 'sig1', { detail: 'SIGKILL' }), ev(1010, 'fault', 'media1', { detail: 'SIGKILL' }), ev(9000, 'fault', 'pbx1', { detail: 'link-down' })], (t) => t);
    expect(m).toEqual([
      { x: 1000, label: 'SIGKILL sig1, media1' },
      { x: 9000, label: 'link-down pbx1' },
    ]);
  });
});

describe('report directory name', () => {
  it('experiment and UTC time, safe for a path', () => {
    const at = new Date(Date.UTC(2026, 11, 3, 9, 5, 7));
    expect(reportDirName('half-dead', at)).toBe('half-dead-20261203-090507');
    expect(reportDirName('../../x y', at)).toBe('x-y-20261203-090507');
    expect(reportDirName('', at)).toBe('experiment-20261203-090507');
  });
});

describe('decimate', () => {
  it('keeps at most first, lowest, highest and last point per pixel column, and the line breaks', () => {
    const pts = Array.from({ length: 1000 }, (_, i) => [i / 100, Math.sin(i)] as const);
    const d = decimate(pts);
    expect(d.length).toBeLessThanOrEqual(11 * 4);
    const ys = pts.map((p) => p[1]);
    expect(Math.max(...d.map((p) => p[1]))).toBe(Math.max(...ys));
    expect(Math.min(...d.map((p) => p[1]))).toBe(Math.min(...ys));
    expect(d[0]).toEqual(pts[0]);
    expect(d[d.length - 1]).toEqual(pts[pts.length - 1]);
    expect(decimate([[0, 1], [NaN, 2], [1, 3]]).length).toBe(3);
  });
});
