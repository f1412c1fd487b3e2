/**
 * Plot 2: histogram of each call's worst RTP gap (the longest silence a listener heard), with the
 * p50, p99 and max marked. Linear bins on round widths; a log axis (10 bins per decade) when the
 * gaps span more than 20x (max / median), as a failover run does: 20 ms packets and 3 s holes.
 */
import { finite, maxOf, minOf, percentile } from '../figures.js';
import { formatNumber } from '../format.js';
import type { ExperimentData } from '../types.js';
import { AXIS_COLOUR, GRID_COLOUR, PALETTE, document, el, legend, line, linearScale, niceStep, niceTicks, noData, text, textWidth, xAxis, yAxis, type Canvas, type Rect } from '../svg.js';

export interface Bins {
  /** Left edge of the first bin. */
  start: number;
  width: number;
  counts: number[];
}

/** Equal-width bins on round numbers from 0 (or the minimum, if negative) to the maximum, about `target` of them. */
export function binValues(values: readonly number[], target = 30): Bins {
  if (values.length === 0) return { start: 0, width: 1, counts: [] };
  const min = Math.min(0, minOf(values));
  const max = maxOf(values);
  const width = niceStep((max - min) / target || 1);
  const start = Math.floor(min / width) * width;
  const n = Math.max(1, Math.floor((max - start) / width) + 1);
  const counts = new Array<number>(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor((v - start) / width))]++;
  return { start, width, counts };
}

/** Bins of equal width on a log scale, `perDecade` of them per power of ten, over [lo, max] (lo >= `floorMs`). */
export function logBinValues(values: readonly number[], perDecade = 10, floorMs = 1): { edges: number[]; counts: number[] } {
  if (values.length === 0) return { edges: [floorMs, floorMs * 10], counts: [0] };
  // The axis runs between 1-2-5 values, so both ends carry a tick label.
  const lo = round125(Math.max(floorMs, minOf(values)), 'down');
  const hi = round125(Math.max(lo * 1.0001, maxOf(values)), 'up');
  const k0 = Math.floor(Math.log10(lo) * perDecade + 1e-9);
  const k1 = Math.max(k0 + 1, Math.ceil(Math.log10(hi) * perDecade - 1e-9));
  const edges: number[] = [];
  for (let k = k0; k <= k1; k++) edges.push(10 ** (k / perDecade));
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (const v of values) {
    const k = Math.floor(Math.log10(Math.max(v, edges[0])) * perDecade + 1e-9) - k0;
    counts[Math.min(counts.length - 1, Math.max(0, k))]++;
  }
  return { edges, counts };
}

/** The nearest 1, 2 or 5 times a power of ten below (or above) `v` > 0. */
export function round125(v: number, dir: 'down' | 'up'): number {
  const p = 10 ** Math.floor(Math.log10(v));
  const steps = [1, 2, 5, 10];
  const m = v / p;
  const pick = dir === 'down' ? [...steps].reverse().find((x) => x <= m * (1 + 1e-9)) : steps.find((x) => x >= m * (1 - 1e-9));
  return Number(((pick ?? 1) * p).toPrecision(6));
}

/** 1-2-5 ticks from `lo` to `hi` (both > 0) for a log axis. */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * 10 ** p).toPrecision(6));
      if (v >= lo * 0.99 && v <= hi * 1.01) out.push(v);
    }
  }
  return out;
}

/** A log x axis is used when the gaps span more than this factor (max / median). */
export const LOG_SCALE_SPAN = 20;

const BAR_COLOUR = PALETTE[0];
const MARK_COLOURS = { p50: PALETTE[2], p99: PALETTE[1], max: '#D62728' };

export function gapHistogramSvg(data: ExperimentData, canvas: Canvas): string {
  const plot: Rect = { x: 90, y: 78, w: canvas.width - 90 - 40, h: canvas.height - 78 - 70 };
  const values = finite(data.media?.perCallWorstGapMs).filter((v) => v >= 0);
  const title = `${data.experiment}: worst RTP gap per call`;
  if (values.length === 0) return document(canvas, title, [noData(plot, 'no per-call media gaps recorded')]);

  const sorted = [...values].sort((a, b) => a - b);
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  const max = sorted[sorted.length - 1];
  const log = max / Math.max(p50, 1) >= LOG_SCALE_SPAN;

  // Bars as [from, to, count] in ms, and the x scale.
  let bars: Array<[number, number, number]>;
  let sx: (v: number) => number;
  let xAxisSvg: string;
  let binNote: string;
  if (log) {
    const b = logBinValues(sorted, 10);
    bars = b.counts.map((c, i) => [b.edges[i], b.edges[i + 1], c]);
    const lo = b.edges[0];
    const hi = b.edges[b.edges.length - 1];
    const l = linearScale(Math.log10(lo), Math.log10(hi), plot.x, plot.x + plot.w);
    sx = (v: number) => l(Math.log10(Math.max(v, lo)));
    const ticks = logTicks(lo, hi);
    const out: string[] = [];
    for (const v of ticks) {
      const x = sx(v);
      out.push(line(x, plot.y, x, plot.y + plot.h, GRID_COLOUR));
      out.push(line(x, plot.y + plot.h, x, plot.y + plot.h + 5, AXIS_COLOUR));
      out.push(text(x, plot.y + plot.h + 20, formatNumber(v, 3), { anchor: 'middle', size: 12 }));
    }
    out.push(line(plot.x, plot.y + plot.h, plot.x + plot.w, plot.y + plot.h, AXIS_COLOUR, 1.2));
    binNote = 'log scale, 10 bins per decade';
    out.push(text(plot.x + plot.w / 2, plot.y + plot.h + 42, `worst gap between two RTP packets of a call (ms, ${binNote})`, { anchor: 'middle', size: 13 }));
    xAxisSvg = out.join('');
  } else {
    const b = binValues(sorted, 30);
    bars = b.counts.map((c, i) => [b.start + i * b.width, b.start + (i + 1) * b.width, c]);
    const xt = niceTicks(b.start, b.start + b.width * b.counts.length, 10);
    sx = linearScale(xt.min, xt.max, plot.x, plot.x + plot.w);
    binNote = `bins of ${formatNumber(b.width, 3)} ms`;
    xAxisSvg = xAxis(plot, { ticks: xt, label: `worst gap between two RTP packets of a call (ms), ${binNote}` });
  }
  const yt = niceTicks(0, Math.max(1, maxOf(bars.map((b) => b[2]))), 6);
  const sy = linearScale(yt.min, yt.max, plot.y + plot.h, plot.y);

  const body: string[] = [xAxisSvg, yAxis(plot, { ticks: yt, label: 'calls' })];
  const labelCounts = bars.length <= 60;
  for (const [from, to, c] of bars) {
    if (c === 0) continue;
    const x0 = sx(from);
    const x1 = sx(to);
    // A bin with any call stays visible (at least 2 px) however tall the others are.
    const y = Math.min(sy(c), plot.y + plot.h - 2);
    body.push(el('rect', { x: x0 + 0.5, y, width: Math.max(1, x1 - x0 - 1), height: plot.y + plot.h - y, fill: BAR_COLOUR, 'fill-opacity': 0.85 }));
    if (labelCounts && textWidth(String(c), 11) < (x1 - x0) * 1.6) body.push(text((x0 + x1) / 2, y - 4, formatNumber(c), { size: 11, anchor: 'middle' }));
  }

  const marks: Array<{ name: keyof typeof MARK_COLOURS; v: number }> = [
    { name: 'p50', v: p50 },
    { name: 'p99', v: p99 },
    { name: 'max', v: max },
  ];
  for (const m of marks) {
    const x = sx(m.v);
    body.push(line(x, plot.y, x, plot.y + plot.h, MARK_COLOURS[m.name], 2, m.name === 'max' ? '7 4' : '4 3'));
  }
  const items = [
    { label: `calls (${formatNumber(values.length)})`, colour: BAR_COLOUR, shape: 'box' as const },
    ...marks.map((m) => ({ label: `${m.name} ${formatNumber(m.v, 1)} ms`, colour: MARK_COLOURS[m.name], shape: 'dash' as const })),
  ];
  body.push(legend(items, plot.x, 54).svg);
  return document(canvas, title, body);
}
