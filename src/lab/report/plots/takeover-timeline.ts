/**
 * Plot 3: takeover timeline. One swimlane per node; in it a bar for each VIP or lease while the
 * node holds it (one colour per resource), grey where the node was down, faults as red lines.
 * A lease still held by a dead node shows as a bar over grey: the time the survivor waits.
 */
import { maxOf, minOf } from '../figures.js';
import type { ExperimentData, LabEvent } from '../types.js';
import { AXIS_COLOUR, GRID_COLOUR, PALETTE, document, el, legend, line, linearScale, niceTicks, noData, text, textWidth, xAxis, type Canvas, type Rect } from '../svg.js';
import { formatDuration, formatNumber } from '../format.js';
import { faultMarkers, verticalMarkers } from './markers.js';

/** A stretch of time (seconds since start) during which `node` held `resource`. */
export interface Holding {
  resource: string;
  node: string;
  fromSec: number;
  toSec: number;
  /** How the holding began: the event's detail, if any. */
  detail?: string;
}

export interface DownStretch {
  node: string;
  fromSec: number;
  toSec: number;
}

const RESOURCE_KINDS = new Set(['vip-move', 'lease']);

function resourceOf(e: LabEvent): string {
  if (typeof e.resource === 'string' && e.resource) return e.resource;
  return `${e.kind === 'lease' ? 'lease' : 'VIP'}${e.detail ? ` ${e.detail}` : ''}`;
}

/** A stretch during which nobody held `resource`, after `node` gave it up. */
export interface Vacancy {
  resource: string;
  /** The node that gave it up (the row it is drawn in). */
  node: string;
  fromSec: number;
  toSec: number;
}

function byResource(events: readonly LabEvent[]): Map<string, LabEvent[]> {
  const out = new Map<string, LabEvent[]>();
  for (const e of events) {
    if (!RESOURCE_KINDS.has(e.kind) || !Number.isFinite(e.atMs)) continue;
    const r = resourceOf(e);
    let list = out.get(r);
    if (!list) out.set(r, (list = []));
    list.push(e);
  }
  for (const list of out.values()) list.sort((a, b) => a.atMs - b.atMs);
  return out;
}

/**
 * Who held each resource when, from the `vip-move`/`lease` events: a new holder ends the previous
 * one; `held: false` ends the node's own holding (and starts a vacancy until the next holder);
 * open holdings and vacancies run to `endSec`.
 */
export function holdingsAndVacancies(events: readonly LabEvent[], startMs: number, endSec: number): { holdings: Holding[]; vacancies: Vacancy[] } {
  const holdings: Holding[] = [];
  const vacancies: Vacancy[] = [];
  for (const [resource, list] of byResource(events)) {
    let cur: Holding | undefined;
    let vacant: Vacancy | undefined;
    for (const e of list) {
      const t = (e.atMs - startMs) / 1000;
      const node = typeof e.node === 'string' ? e.node : '';
      if (e.held === false) {
        if (cur && cur.node === node) {
          cur.toSec = t;
          holdings.push(cur);
          cur = undefined;
          vacant = { resource, node, fromSec: t, toSec: endSec };
        }
        continue;
      }
      if (cur && cur.node === node) continue;
      if (cur) {
        cur.toSec = t;
        holdings.push(cur);
      }
      if (vacant) {
        vacant.toSec = t;
        vacancies.push(vacant);
        vacant = undefined;
      }
      cur = { resource, node, fromSec: t, toSec: endSec, ...(e.detail ? { detail: e.detail } : {}) };
    }
    if (cur) holdings.push(cur);
    if (vacant) vacancies.push(vacant);
  }
  return { holdings: holdings.filter((h) => h.node !== ''), vacancies: vacancies.filter((v) => v.node !== '') };
}

export function holdingsOf(events: readonly LabEvent[], startMs: number, endSec: number): Holding[] {
  return holdingsAndVacancies(events, startMs, endSec).holdings;
}

/**
 * Stretches during which a node was down: from `node-down` to the next `node-up` (or the end).
 * For a node the data gives no `node-down` for, a `fault` on it starts the stretch instead.
 */
export function downStretchesOf(events: readonly LabEvent[], startMs: number, endSec: number): DownStretch[] {
  const explicit = new Set(events.filter((e) => e.kind === 'node-down').map((e) => e.node));
  const open = new Map<string, number>();
  const out: DownStretch[] = [];
  for (const e of [...events].filter((x) => Number.isFinite(x.atMs)).sort((a, b) => a.atMs - b.atMs)) {
    const t = (e.atMs - startMs) / 1000;
    const goesDown = e.kind === 'node-down' || (e.kind === 'fault' && !explicit.has(e.node));
    if (goesDown && e.node && !open.has(e.node)) open.set(e.node, t);
    else if (e.kind === 'node-up' && open.has(e.node)) {
      out.push({ node: e.node, fromSec: open.get(e.node)!, toSec: t });
      open.delete(e.node);
    }
  }
  for (const [node, fromSec] of open) out.push({ node, fromSec, toSec: endSec });
  return out;
}

/** Lane order: signalling, media, Redis, then the rest, each in topology order. */
const ROLE_RANK: Record<string, number> = { signalling: 0, media: 1, redis: 2, sentinel: 3, pbx: 4, phone: 5 };

function validEvents(data: ExperimentData): LabEvent[] {
  return (Array.isArray(data.events) ? data.events : []).filter((e) => e && Number.isFinite(e.atMs) && typeof e.kind === 'string');
}

/** Time from the latest fault at or before `tSec` (within a minute), for the "+850 ms" labels. */
function sinceFault(faultSecs: number[], tSec: number): number | null {
  let best: number | null = null;
  for (const f of faultSecs) if (f <= tSec && tSec - f <= 60) best = f;
  return best === null ? null : tSec - best;
}

/**
 * The stretch around the faults worth a close-up: from 1 s before the first fault to 1 s after the
 * last VIP, lease or node change that followed a fault (within 60 s). Null when there is no fault,
 * or when that stretch is most of the run anyway.
 */
export function takeoverWindowOf(data: ExperimentData): { fromSec: number; toSec: number } | null {
  const start = data.startedAtMs;
  const events = validEvents(data);
  const faults = events.filter((e) => e.kind === 'fault').map((e) => (e.atMs - start) / 1000);
  if (faults.length === 0) return null;
  const first = minOf(faults);
  const last = maxOf(faults);
  const changes = events
    .filter((e) => e.kind === 'vip-move' || e.kind === 'lease' || e.kind === 'node-down')
    .map((e) => (e.atMs - start) / 1000)
    .filter((t) => t >= first && t <= last + 60);
  const fromSec = first - 1;
  const toSec = Math.max(last + 2, maxOf(changes) + 1);
  const runSec = (data.endedAtMs - start) / 1000;
  if (!(toSec - fromSec < runSec * 0.5)) return null;
  return { fromSec, toSec };
}

export interface TimelineOptions {
  /** Draw only this stretch (seconds since start): the close-up around the faults. */
  window?: { fromSec: number; toSec: number };
}

export function takeoverTimelineSvg(data: ExperimentData, canvas: Canvas, options: TimelineOptions = {}): string {
  const start = data.startedAtMs;
  const events = validEvents(data);
  const endSec = Math.max(0, (data.endedAtMs - start) / 1000);
  const { holdings, vacancies } = holdingsAndVacancies(events, start, endSec);
  const downs = downStretchesOf(events, start, endSec);
  const win = options.window;
  let title = `${data.experiment}: takeover timeline (who holds each VIP and lease)`;
  const faultSecs = events.filter((e) => e.kind === 'fault').map((e) => (e.atMs - start) / 1000).sort((a, b) => a - b);

  // Lanes: topology order first, then nodes in the order they appear in the events.
  const seen = new Set<string>([...holdings.map((h) => h.node), ...downs.map((d) => d.node), ...events.filter((e) => e.kind === 'fault').map((e) => e.node)]);
  seen.delete('');
  const parts = Array.isArray(data.topology?.parts) ? data.topology.parts : [];
  const rank = (role: string) => ROLE_RANK[role] ?? 9;
  const order = parts
    .map((p, i) => ({ name: p.name, key: rank(p.role) * 1000 + i }))
    .sort((a, b) => a.key - b.key)
    .map((p) => p.name)
    .filter((n) => seen.has(n));
  for (const e of events) if (seen.has(e.node) && !order.includes(e.node)) order.push(e.node);
  const laneLabelW = Math.min(180, Math.max(70, maxOf(order.map((n) => textWidth(n, 13))) + 20));
  const plotX = laneLabelW + 20;
  const plotW = canvas.width - plotX - 40;
  if (order.length === 0) return document(canvas, title, [noData({ x: plotX, y: 78, w: plotW, h: canvas.height - 148 }, 'no VIP, lease or node events recorded')]);

  const resources = [...new Set(holdings.map((h) => h.resource))];
  const colourOf = new Map(resources.map((r, i) => [r, PALETTE[i % PALETTE.length]]));
  const faults = events.filter((e) => e.kind === 'fault');
  const items = [
    ...resources.map((r) => ({ label: r, colour: colourOf.get(r)!, shape: 'box' as const })),
    ...(vacancies.length ? [{ label: 'no holder', colour: '#FFFFFF', shape: 'box' as const }] : []),
    ...(downs.length ? [{ label: 'node down', colour: '#BDBDBD', shape: 'box' as const }] : []),
    ...(faults.length ? [{ label: 'fault', colour: '#D62728', shape: 'dash' as const }] : []),
  ];
  const leg = legend(items, plotX, 54, plotW);
  const plot: Rect = { x: plotX, y: 78 + leg.extraHeight, w: plotW, h: canvas.height - 78 - leg.extraHeight - 70 };
  const times = [0, endSec, ...holdings.map((h) => h.fromSec), ...events.map((e) => (e.atMs - start) / 1000)];
  // Holders read just before the start (the lab's first poll) do not stretch the axis below 0.
  const firstSec = minOf(times) > -1 ? 0 : Math.max(minOf(times), -5);
  const xt = win ? niceTicks(win.fromSec, win.toSec, 10) : niceTicks(firstSec, Math.max(endSec, 0.001), 10);
  if (win) title = `${data.experiment}: takeover close-up, ${formatNumber(xt.min, 3)} s to ${formatNumber(xt.max, 3)} s after start`;
  const sx = linearScale(xt.min, xt.max, plot.x, plot.x + plot.w);
  const clampX = (t: number) => Math.min(plot.x + plot.w, Math.max(plot.x, sx(t)));
  // A strip on top for the fault labels, so they do not cover the first lane's bars.
  const labelStrip = faults.length ? 26 : 0;
  const lanesY = plot.y + labelStrip;
  const laneH = (plot.h - labelStrip) / order.length;

  const body: string[] = [];
  body.push(xAxis(plot, { ticks: xt, label: 'time since start (s)' }));
  order.forEach((node, i) => {
    const y0 = lanesY + i * laneH;
    if (i % 2 === 1) body.push(el('rect', { x: plot.x, y: y0, width: plot.w, height: laneH, fill: '#F6F8FA' }));
    body.push(line(plot.x, y0 + laneH, plot.x + plot.w, y0 + laneH, GRID_COLOUR));
    body.push(text(plot.x - 10, y0 + laneH / 2 + 5, node, { anchor: 'end', size: 13, weight: 'bold' }));
  });
  // Down stretches behind the bars.
  for (const d of downs) {
    const i = order.indexOf(d.node);
    if (i < 0) continue;
    const x0 = clampX(d.fromSec);
    const x1 = clampX(d.toSec);
    body.push(el('rect', { x: x0, y: lanesY + i * laneH + 2, width: Math.max(1, x1 - x0), height: laneH - 4, fill: '#BDBDBD', 'fill-opacity': 0.55 }));
    if (x1 - x0 > 50) body.push(text(x1 - 6, lanesY + (i + 1) * laneH - 8, 'down', { anchor: 'end', size: 11, colour: '#555555' }));
  }
  // Each node's lane is split in rows, one per resource it ever held.
  for (const [i, node] of order.entries()) {
    const mine = [...new Set(holdings.filter((h) => h.node === node).map((h) => h.resource))];
    for (const v of vacancies) if (v.node === node && !mine.includes(v.resource)) mine.push(v.resource);
    const rowH = Math.min(26, (laneH - 8) / Math.max(1, mine.length));
    const top = lanesY + i * laneH + (laneH - rowH * mine.length) / 2;
    for (const h of holdings.filter((x) => x.node === node)) {
      const r = mine.indexOf(h.resource);
      if (h.toSec < xt.min || h.fromSec > xt.max) continue;
      const x0 = clampX(h.fromSec);
      const x1 = clampX(h.toSec);
      const y = top + r * rowH + 2;
      const colour = colourOf.get(h.resource) ?? AXIS_COLOUR;
      body.push(el('rect', { x: x0, y, width: Math.max(2, x1 - x0), height: rowH - 4, rx: 2, fill: colour, 'fill-opacity': 0.8 }));
      if (h.fromSec >= xt.min) body.push(el('circle', { cx: x0, cy: y + (rowH - 4) / 2, r: 3.5, fill: '#FFFFFF', stroke: colour, 'stroke-width': 2 }));
      const after = sinceFault(faultSecs, h.fromSec);
      let label = after === null ? h.resource : `${h.resource}: ${formatDuration(after * 1000)} after the fault`;
      if (textWidth(label, 11) + 12 >= x1 - x0 && after !== null) label = `+${formatDuration(after * 1000)}`;
      if (rowH >= 14 && textWidth(label, 11) + 12 < x1 - x0) body.push(text(x0 + 8, y + (rowH - 4) / 2 + 4, label, { size: 11, colour: '#FFFFFF' }));
    }
    // Vacancies: the node gave the resource up and nobody held it yet (an outline, dashed).
    for (const v of vacancies.filter((x) => x.node === node)) {
      if (v.toSec < xt.min || v.fromSec > xt.max) continue;
      const r = mine.indexOf(v.resource);
      const x0 = clampX(v.fromSec);
      const x1 = clampX(v.toSec);
      const y = top + r * rowH + 2;
      const colour = colourOf.get(v.resource) ?? AXIS_COLOUR;
      body.push(el('rect', { x: x0, y, width: Math.max(2, x1 - x0), height: rowH - 4, fill: '#FFFFFF', 'fill-opacity': 0.7, stroke: colour, 'stroke-width': 1.5, 'stroke-dasharray': '5 3' }));
      const label = `no holder ${formatDuration((v.toSec - v.fromSec) * 1000)}`;
      if (rowH >= 14 && textWidth(label, 11) + 12 < x1 - x0) body.push(text(x0 + 8, y + (rowH - 4) / 2 + 4, label, { size: 11, colour: AXIS_COLOUR }));
    }
  }
  body.push(verticalMarkers(plot, faultMarkers(faults, (atMs) => sx((atMs - start) / 1000))));
  body.push(el('rect', { x: plot.x, y: plot.y, width: plot.w, height: plot.h, fill: 'none', stroke: AXIS_COLOUR, 'stroke-width': 1 }));
  body.push(leg.svg);
  return document(canvas, title, body);
}
