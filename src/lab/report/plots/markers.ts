/** Vertical event markers shared by the time plots: faults as labelled red lines. */
import type { LabEvent } from '../types.js';
import { FAULT_COLOUR, el, line, text, textWidth, type Rect } from '../svg.js';

export interface Marker {
  x: number;
  label: string;
}

/**
 * One marker per instant: faults less than `withinMs` apart are merged into one label, with the
 * nodes listed once per kind of fault (`SIGKILL sig1, media1, redis1`).
 */
export function faultMarkers(events: readonly LabEvent[], toX: (atMs: number) => number, withinMs = 100): Marker[] {
  const faults = events.filter((e) => e.kind === 'fault' && Number.isFinite(e.atMs)).sort((a, b) => a.atMs - b.atMs);
  const groups: LabEvent[][] = [];
  for (const e of faults) {
    const g = groups[groups.length - 1];
    if (g && e.atMs - g[0].atMs <= withinMs) g.push(e);
    else groups.push([e]);
  }
  return groups.map((g) => {
    const byDetail = new Map<string, string[]>();
    for (const e of g) {
      const detail = typeof e.detail === 'string' && e.detail.trim() ? e.detail.trim() : 'fault';
      const nodes = byDetail.get(detail) ?? [];
      if (e.node && !nodes.includes(e.node)) nodes.push(e.node);
      byDetail.set(detail, nodes);
    }
    const label = [...byDetail].map(([d, nodes]) => (nodes.length && !nodes.some((n) => d.includes(n)) ? `${d} ${nodes.join(', ')}` : d)).join('; ');
    return { x: toX(g[0].atMs), label };
  });
}

/**
 * Red dashed vertical lines across `plot` with their labels in boxes along the top; labels that
 * would overlap go one row lower.
 */
export function verticalMarkers(plot: Rect, markers: Marker[], colour = FAULT_COLOUR): string {
  const out: string[] = [];
  const rowsEnd: number[] = [];
  const size = 12;
  for (const m of [...markers].sort((a, b) => a.x - b.x)) {
    if (!Number.isFinite(m.x) || m.x < plot.x - 0.5 || m.x > plot.x + plot.w + 0.5) continue;
    out.push(line(m.x, plot.y, m.x, plot.y + plot.h, colour, 2, '7 4'));
    const label = m.label.length > 60 ? `${m.label.slice(0, 59)}…` : m.label;
    const w = textWidth(label, size) + 10;
    // Right of the line when it fits, else left of it.
    const left = m.x + 4 + w <= plot.x + plot.w ? m.x + 4 : m.x - 4 - w;
    let row = rowsEnd.findIndex((end) => end < left);
    if (row < 0) row = rowsEnd.length;
    rowsEnd[row] = left + w;
    const y = plot.y + 6 + row * 20;
    out.push(el('rect', { x: left, y, width: w, height: 17, rx: 3, fill: '#FFFFFF', 'fill-opacity': 0.9, stroke: colour, 'stroke-width': 1 }));
    out.push(text(left + 5, y + 13, label, { size, colour }));
  }
  return out.join('');
}
