/**
 * Plot 2: histogram of each call's worst RTP gap (the longest silence a listener heard), with the
 * p50, p99 and max marked.
 */
import { finite, maxOf, minOf, percentile } from '../figures.js';
import { formatNumber } from '../format.js';
import type { ExperimentData } from '../types.js';
import { PALETTE, document, el, legend, line, linearScale, niceStep, niceTicks, noData, text, textWidth, xAxis, yAxis, type Canvas, type Rect } from '../svg.js';

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
  const bins = binValues(sorted, 30);
  const binsEnd = bins.start + bins.width * bins.counts.length;
  const xt = niceTicks(bins.start, binsEnd, 10);
  const yt = niceTicks(0, Math.max(1, maxOf(bins.counts)), 6);
  const sx = linearScale(xt.min, xt.max, plot.x, plot.x + plot.w);
  const sy = linearScale(yt.min, yt.max, plot.y + plot.h, plot.y);

  const body: string[] = [];
  body.push(xAxis(plot, { ticks: xt, label: `worst gap between two RTP packets of a call (ms), bins of ${formatNumber(bins.width, 3)} ms` }));
  body.push(yAxis(plot, { ticks: yt, label: 'calls' }));
  const labelCounts = bins.counts.length <= 40;
  bins.counts.forEach((c, i) => {
    if (c === 0) return;
    const x0 = sx(bins.start + i * bins.width);
    const x1 = sx(bins.start + (i + 1) * bins.width);
    // A bin with any call stays visible (at least 2 px) however tall the others are.
    const y = Math.min(sy(c), plot.y + plot.h - 2);
    body.push(el('rect', { x: x0 + 0.5, y, width: Math.max(1, x1 - x0 - 1), height: plot.y + plot.h - y, fill: BAR_COLOUR, 'fill-opacity': 0.85 }));
    if (labelCounts && textWidth(String(c), 11) < (x1 - x0) * 1.6) body.push(text((x0 + x1) / 2, y - 4, formatNumber(c), { size: 11, anchor: 'middle' }));
  });

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
