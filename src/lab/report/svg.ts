/**
 * Small SVG building blocks for the report's plots: escaping, elements, linear scales, "nice"
 * ticks, axes and legends. Plots are plain SVG strings (rendered to PNG by render-png.ts), so
 * every helper is a pure function and tested on its output.
 */

export const FONT_FAMILY = 'DejaVu Sans';
/** What the SVG asks for: DejaVu Sans, else whatever sans-serif the viewer or renderer has. */
export const FONT_STACK = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

/** Colours that stay distinct for the common kinds of colour blindness (Okabe-Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'] as const;
export const FAULT_COLOUR = '#D62728';
export const GRID_COLOUR = '#E3E3E3';
export const AXIS_COLOUR = '#333333';

/** XML-escapes text and attribute values. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

type AttrValue = string | number | undefined | null | false;

/** `<tag a="1">children</tag>`; attributes that are undefined/null/false are left out. */
export function el(tag: string, attrs: Record<string, AttrValue>, children?: string | string[]): string {
  let a = '';
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    a += ` ${k}="${esc(typeof v === 'number' ? round2(v) : v)}"`;
  }
  const body = Array.isArray(children) ? children.join('') : children;
  return body === undefined ? `<${tag}${a}/>` : `<${tag}${a}>${body}</${tag}>`;
}

export function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Maps [d0, d1] onto [r0, r1]; a zero-width domain maps to the middle of the range. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (v: number) => r0 + (v - d0) * k;
}

/** 1, 2 or 5 times a power of ten, close to `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

export interface Ticks {
  min: number;
  max: number;
  step: number;
  values: number[];
}

/**
 * Ticks on round numbers covering [min, max] with about `count` intervals; the domain is widened
 * to the outer ticks. An empty or degenerate domain still gives two ticks.
 */
export function niceTicks(min: number, max: number, count = 6): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    min = 0;
    max = 1;
  }
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= min === 0 ? 0 : pad;
    max += pad;
  }
  const step = niceStep((max - min) / Math.max(1, count));
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const values: number[] = [];
  for (let v = lo, i = 0; v <= hi + step * 1e-9 && i < 1000; v = lo + ++i * step) values.push(Number(v.toPrecision(12)));
  return { min: lo, max: hi, step, values };
}

/** Tick label: as few decimals as the step needs, thousands separated. */
export function tickLabel(v: number, step: number): string {
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Approximate rendered width of `text` in DejaVu Sans at `sizePx` (mean advance about 0.6 em). */
export function textWidth(text: string, sizePx: number): number {
  let w = 0;
  for (const ch of text) w += /[iIl.,:;'|! ]/.test(ch) ? 0.32 : /[mwMW@%]/.test(ch) ? 0.9 : /[A-Z0-9]/.test(ch) ? 0.68 : 0.58;
  return w * sizePx;
}

export interface TextOptions {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  colour?: string;
  weight?: 'normal' | 'bold';
  rotate?: number;
  baseline?: 'auto' | 'middle' | 'hanging';
}

export function text(x: number, y: number, s: string, o: TextOptions = {}): string {
  return el(
    'text',
    {
      x,
      y,
      'font-family': FONT_STACK,
      'font-size': o.size ?? 13,
      'text-anchor': o.anchor ?? 'start',
      'dominant-baseline': o.baseline && o.baseline !== 'auto' ? (o.baseline === 'hanging' ? 'hanging' : 'central') : undefined,
      fill: o.colour ?? AXIS_COLOUR,
      'font-weight': o.weight === 'bold' ? 'bold' : undefined,
      transform: o.rotate ? `rotate(${o.rotate} ${round2(x)} ${round2(y)})` : undefined,
    },
    esc(s),
  );
}

export function line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1, dash?: string): string {
  return el('line', { x1, y1, x2, y2, stroke, 'stroke-width': width, 'stroke-dasharray': dash });
}

/**
 * Thins a line of many points to at most four per pixel column (first, lowest, highest, last), so
 * an hour of 250 ms samples draws the same shape from a few thousand points.
 */
export function decimate(points: ReadonlyArray<readonly [number, number]>): Array<readonly [number, number]> {
  const out: Array<readonly [number, number]> = [];
  let col = NaN;
  let group: Array<readonly [number, number]> = [];
  const flush = () => {
    if (group.length <= 4) {
      out.push(...group);
    } else {
      let lo = group[0];
      let hi = group[0];
      for (const p of group) {
        if (p[1] < lo[1]) lo = p;
        if (p[1] > hi[1]) hi = p;
      }
      const mid = lo[0] <= hi[0] ? [lo, hi] : [hi, lo];
      out.push(group[0], ...mid, group[group.length - 1]);
    }
    group = [];
  };
  for (const p of points) {
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) {
      flush();
      out.push(p);
      col = NaN;
      continue;
    }
    const c = Math.round(p[0]);
    if (c !== col) {
      flush();
      col = c;
    }
    group.push(p);
  }
  flush();
  return out;
}

/** A polyline through the points; non-finite points break the line. */
export function polyline(points: ReadonlyArray<readonly [number, number]>, stroke: string, width = 2, dash?: string): string {
  const runs: string[] = [];
  let cur: string[] = [];
  for (const [x, y] of points) {
    if (Number.isFinite(x) && Number.isFinite(y)) cur.push(`${round2(x)},${round2(y)}`);
    else if (cur.length) {
      runs.push(cur.join(' '));
      cur = [];
    }
  }
  if (cur.length) runs.push(cur.join(' '));
  return runs
    .map((pts) => el('polyline', { points: pts, fill: 'none', stroke, 'stroke-width': width, 'stroke-linejoin': 'round', 'stroke-dasharray': dash }))
    .join('');
}

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Canvas {
  width: number;
  height: number;
}

/** The whole document: white background, title on top. */
export function document(c: Canvas, title: string, body: string[]): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${c.width}" height="${c.height}" viewBox="0 0 ${c.width} ${c.height}">` +
    el('rect', { x: 0, y: 0, width: c.width, height: c.height, fill: '#FFFFFF' }) +
    text(c.width / 2, 28, title, { size: 18, anchor: 'middle', weight: 'bold' }) +
    body.join('') +
    '</svg>'
  );
}

export interface AxisSpec {
  ticks: Ticks;
  label: string;
  /** Tick label formatter; default {@link tickLabel}. */
  format?: (v: number) => string;
  colour?: string;
}

/** Horizontal axis under `plot` with grid lines, tick labels and a centred label. */
export function xAxis(plot: Rect, axis: AxisSpec): string {
  const sx = linearScale(axis.ticks.min, axis.ticks.max, plot.x, plot.x + plot.w);
  const fmt = axis.format ?? ((v: number) => tickLabel(v, axis.ticks.step));
  const out: string[] = [];
  for (const v of axis.ticks.values) {
    const x = sx(v);
    out.push(line(x, plot.y, x, plot.y + plot.h, GRID_COLOUR));
    out.push(line(x, plot.y + plot.h, x, plot.y + plot.h + 5, AXIS_COLOUR));
    out.push(text(x, plot.y + plot.h + 20, fmt(v), { anchor: 'middle', size: 12 }));
  }
  out.push(line(plot.x, plot.y + plot.h, plot.x + plot.w, plot.y + plot.h, AXIS_COLOUR, 1.2));
  out.push(text(plot.x + plot.w / 2, plot.y + plot.h + 42, axis.label, { anchor: 'middle', size: 13 }));
  return out.join('');
}

/** Vertical axis on the left or right of `plot`; grid lines only for the left one. */
export function yAxis(plot: Rect, axis: AxisSpec, side: 'left' | 'right' = 'left'): string {
  const sy = linearScale(axis.ticks.min, axis.ticks.max, plot.y + plot.h, plot.y);
  const fmt = axis.format ?? ((v: number) => tickLabel(v, axis.ticks.step));
  const colour = axis.colour ?? AXIS_COLOUR;
  const x0 = side === 'left' ? plot.x : plot.x + plot.w;
  const dir = side === 'left' ? -1 : 1;
  const out: string[] = [];
  let widest = 0;
  for (const v of axis.ticks.values) {
    const y = sy(v);
    if (side === 'left') out.push(line(plot.x, y, plot.x + plot.w, y, GRID_COLOUR));
    out.push(line(x0, y, x0 + 5 * dir, y, colour));
    const label = fmt(v);
    widest = Math.max(widest, textWidth(label, 12));
    out.push(text(x0 + 8 * dir, y + 4, label, { anchor: side === 'left' ? 'end' : 'start', size: 12, colour }));
  }
  out.push(line(x0, plot.y, x0, plot.y + plot.h, colour, 1.2));
  const lx = x0 + dir * (widest + 22);
  out.push(text(lx, plot.y + plot.h / 2, axis.label, { anchor: 'middle', size: 13, colour, rotate: side === 'left' ? -90 : 90 }));
  return out.join('');
}

export interface LegendItem {
  label: string;
  colour: string;
  /** line (default), dashed line, or filled box. */
  shape?: 'line' | 'dash' | 'box';
}

/** Height of one legend row. */
export const LEGEND_ROW_PX = 20;

/**
 * A legend starting at (x, y), wrapping onto further rows before `maxWidth`; returns the SVG and
 * the size it took (height counts rows below the first).
 */
export function legend(items: LegendItem[], x: number, y: number, maxWidth = Infinity): { svg: string; width: number; extraHeight: number } {
  const out: string[] = [];
  let cx = x;
  let cy = y;
  let widest = 0;
  for (const it of items) {
    const itemW = (it.shape === 'box' ? 22 : 28) + textWidth(it.label, 12) + 22;
    if (cx > x && cx - x + itemW - 22 > maxWidth) {
      cx = x;
      cy += LEGEND_ROW_PX;
    }
    if (it.shape === 'box') out.push(el('rect', { x: cx, y: cy - 6, width: 16, height: 12, fill: it.colour, stroke: AXIS_COLOUR, 'stroke-width': 0.5 }));
    else out.push(line(cx, cy, cx + 22, cy, it.colour, it.shape === 'dash' ? 2 : 3, it.shape === 'dash' ? '6 4' : undefined));
    out.push(text(cx + (it.shape === 'box' ? 22 : 28), cy + 4, it.label, { size: 12 }));
    cx += itemW;
    widest = Math.max(widest, cx - x);
  }
  return { svg: out.join(''), width: widest, extraHeight: cy - y };
}

/** A centred "no data" message inside `plot`, so an empty plot says why it is empty. */
export function noData(plot: Rect, message: string): string {
  return (
    el('rect', { x: plot.x, y: plot.y, width: plot.w, height: plot.h, fill: '#FAFAFA', stroke: GRID_COLOUR }) +
    text(plot.x + plot.w / 2, plot.y + plot.h / 2, message, { anchor: 'middle', size: 16, colour: '#777777' })
  );
}
