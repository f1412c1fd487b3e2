/**
 * Plot 1: active calls (left axis) and calls/s (right axis) over the run, failed calls so far
 * (left axis, dashed), faults as labelled red lines and VIP/lease moves as thin green ones.
 */
import { finite, maxOf, minOf } from '../figures.js';
import { formatDuration } from '../format.js';
import type { ExperimentData } from '../types.js';
import {
  PALETTE,
  decimate,
  document,
  el,
  legend,
  line,
  linearScale,
  niceTicks,
  noData,
  polyline,
  xAxis,
  yAxis,
  type Canvas,
  type Rect,
} from '../svg.js';
import { faultMarkers, verticalMarkers } from './markers.js';

export const ACTIVE_COLOUR = PALETTE[0];
export const RATE_COLOUR = PALETTE[1];
export const FAILED_COLOUR = '#444444';
export const MOVE_COLOUR = PALETTE[2];
const REFUSAL_COLOUR = '#D62728';

export function callsPlotSvg(data: ExperimentData, canvas: Canvas): string {
  const plot: Rect = { x: 90, y: 78, w: canvas.width - 90 - 90, h: canvas.height - 78 - 70 };
  const title = `${data.experiment}: active calls and call rate over time`;
  const start = data.startedAtMs;
  const samples = (Array.isArray(data.samples) ? data.samples : [])
    .filter((s) => s && Number.isFinite(s.atMs))
    .map((s) => ({ t: (s.atMs - start) / 1000, active: s.activeCalls, rate: s.callsPerSec, failed: s.failedSoFar }))
    .sort((a, b) => a.t - b.t);
  if (samples.length === 0) return document(canvas, title, [noData(plot, 'no samples recorded')]);

  const events = Array.isArray(data.events) ? data.events.filter((e) => e && Number.isFinite(e.atMs)) : [];
  const durationSec = Math.max((data.endedAtMs - start) / 1000, samples[samples.length - 1].t, 0);
  const xt = niceTicks(Math.min(0, samples[0].t), durationSec > 0 ? durationSec : 1, 10);
  const left = finite([...samples.map((s) => s.active), ...samples.map((s) => s.failed)]);
  const yl = niceTicks(0, Math.max(1, maxOf(left)), 6);
  const yr = niceTicks(0, Math.max(1, maxOf(finite(samples.map((s) => s.rate)))), 6);
  const sx = linearScale(xt.min, xt.max, plot.x, plot.x + plot.w);
  const syl = linearScale(yl.min, yl.max, plot.y + plot.h, plot.y);
  const syr = linearScale(yr.min, yr.max, plot.y + plot.h, plot.y);

  const body: string[] = [];
  body.push(xAxis(plot, { ticks: xt, label: 'time since start (s)' }));
  body.push(yAxis(plot, { ticks: yl, label: 'calls', colour: ACTIVE_COLOUR }, 'left'));
  body.push(yAxis(plot, { ticks: yr, label: 'calls/s', colour: RATE_COLOUR }, 'right'));

  // The new-call refusal window, drawn from the first fault (the lab measures its length only).
  const faults = events.filter((e) => e.kind === 'fault');
  const refusalMs = data.figures?.refusalWindowMs;
  const firstFaultMs = faults.length ? minOf(faults.map((e) => e.atMs)) : NaN;
  const showRefusal = typeof refusalMs === 'number' && Number.isFinite(refusalMs) && refusalMs > 0 && Number.isFinite(firstFaultMs);
  if (showRefusal) {
    const x0 = Math.max(plot.x, sx((firstFaultMs - start) / 1000));
    const x1 = Math.min(plot.x + plot.w, sx((firstFaultMs + refusalMs - start) / 1000));
    if (x1 > x0) body.push(el('rect', { x: x0, y: plot.y, width: Math.max(1, x1 - x0), height: plot.h, fill: REFUSAL_COLOUR, 'fill-opacity': 0.13 }));
  }
  const moves = events.filter((e) => e.kind === 'vip-move' || e.kind === 'lease');
  // Holders read at the start are not moves: only lines inside the plot are drawn (and listed).
  let movesDrawn = 0;
  for (const e of moves) {
    const x = sx((e.atMs - start) / 1000);
    if (x > plot.x + 1 && x <= plot.x + plot.w) {
      body.push(line(x, plot.y, x, plot.y + plot.h, MOVE_COLOUR, 1.2, '2 3'));
      movesDrawn++;
    }
  }
  const hasFailed = samples.some((s) => Number.isFinite(s.failed) && s.failed > 0);
  body.push(polyline(decimate(samples.map((s) => [sx(s.t), syr(s.rate)] as const)), RATE_COLOUR, 1.8));
  if (hasFailed) body.push(polyline(decimate(samples.map((s) => [sx(s.t), syl(s.failed)] as const)), FAILED_COLOUR, 2, '7 4'));
  body.push(polyline(decimate(samples.map((s) => [sx(s.t), syl(s.active)] as const)), ACTIVE_COLOUR, 2.5));

  body.push(verticalMarkers(plot, faultMarkers(faults, (atMs) => sx((atMs - start) / 1000))));

  const items = [
    { label: 'active calls', colour: ACTIVE_COLOUR },
    { label: 'new calls/s (right axis)', colour: RATE_COLOUR },
    ...(hasFailed ? [{ label: 'failed calls so far', colour: FAILED_COLOUR, shape: 'dash' as const }] : []),
    ...(faults.length ? [{ label: 'fault', colour: '#D62728', shape: 'dash' as const }] : []),
    ...(movesDrawn ? [{ label: 'VIP / lease move', colour: MOVE_COLOUR, shape: 'dash' as const }] : []),
    ...(showRefusal ? [{ label: `new-call refusal window ${formatDuration(refusalMs)} (from the fault)`, colour: '#F4CCCC', shape: 'box' as const }] : []),
  ];
  body.push(legend(items, plot.x, 54, plot.w + 60).svg);
  return document(canvas, title, body);
}
