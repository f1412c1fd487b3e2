/**
 * Writes an experiment's report into `DIR/reports/<experiment>-<time>/`: report.md, report.json,
 * and three plots as PNG (and SVG). A plot that fails to render is noted in the report instead of
 * failing the whole report: the run's figures matter more than its pictures.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { computeFigures } from './figures.js';
import { reportMarkdown, type PlotRef, type ReportEnvironment } from './markdown.js';
import { callsPlotSvg } from './plots/calls-plot.js';
import { gapHistogramSvg } from './plots/gap-histogram.js';
import { takeoverTimelineSvg, takeoverWindowOf } from './plots/takeover-timeline.js';
import { PUBLISHED_MTBF_HOURS } from './published.js';
import { renderPng } from './render-png.js';
import type { Canvas } from './svg.js';
import type { ExperimentData, ReportOptions, WrittenReport } from './types.js';

export const REPORT_SCHEMA = 'tandem-lab-report/1';

/** `half-dead-20261203-104512`: the experiment name made safe for a path, and the UTC time. */
export function reportDirName(experiment: string, at: Date): string {
  const safe = String(experiment).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'experiment';
  const t = Number.isFinite(at.getTime()) ? at : new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${safe}-${t.getUTCFullYear()}${p(t.getUTCMonth() + 1)}${p(t.getUTCDate())}-${p(t.getUTCHours())}${p(t.getUTCMinutes())}${p(t.getUTCSeconds())}`;
}

export function reportEnvironment(): ReportEnvironment {
  const c = cpus();
  return {
    host: hostname(),
    cpus: c.length ? `${c.length} x ${c[0].model.trim()}` : 'unknown CPU',
    memoryGb: totalmem() / 2 ** 30,
    kernel: `${process.platform} ${release()}`,
    node: process.version,
  };
}

/** Makes `DIR/reports/NAME-TIME`, adding `-2`, `-3`... when a run in the same second has it. */
async function makeReportDir(baseDir: string, name: string): Promise<string> {
  const reports = join(baseDir, 'reports');
  await mkdir(reports, { recursive: true });
  for (let i = 1; i < 1000; i++) {
    const dir = join(reports, i === 1 ? name : `${name}-${i}`);
    try {
      await mkdir(dir);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error(`too many reports named ${name} in ${reports}`);
}

interface PlotSpec {
  name: string;
  caption: string;
  /** Returns the SVG, or null when the plot does not apply to this run. */
  svg: (data: ExperimentData, canvas: Canvas) => string | null;
}

const PLOTS: PlotSpec[] = [
  { name: 'calls', caption: 'Active calls and new calls/s over time; red dashed lines: faults; green dotted: VIP or lease moves', svg: callsPlotSvg },
  { name: 'media-gap', caption: 'Histogram of each call\'s worst RTP gap (ms), with p50, p99 and max', svg: gapHistogramSvg },
  { name: 'takeover', caption: 'Takeover timeline: who held each VIP and lease, nodes down in grey, faults in red', svg: (d, c) => takeoverTimelineSvg(d, c) },
  {
    name: 'takeover-zoom',
    caption: 'The same, close-up on the faults: each new holder labelled with the time since the fault',
    svg: (d, c) => {
      const window = takeoverWindowOf(d);
      return window ? takeoverTimelineSvg(d, c, { window }) : null;
    },
  },
];

/**
 * Writes the report of one experiment run under `baseDir/reports/` and returns its directory, the
 * files written (report.md first) and the computed figures.
 */
export async function writeExperimentReport(baseDir: string, data: ExperimentData, options: ReportOptions = {}): Promise<WrittenReport> {
  const mtbfHours = options.mtbfHours ?? PUBLISHED_MTBF_HOURS;
  const canvas: Canvas = { width: options.plotWidthPx ?? 1200, height: options.plotHeightPx ?? 560 };
  const computed = computeFigures(data, mtbfHours);
  const dir = await makeReportDir(baseDir, reportDirName(String(data.experiment), options.nameTime ?? new Date(data.startedAtMs)));
  const files: string[] = [];
  const plots: PlotRef[] = [];
  const plotErrors: string[] = [];

  for (const p of PLOTS) {
    let svg: string | null;
    try {
      svg = p.svg(data, canvas);
    } catch (err) {
      plotErrors.push(`plot ${p.name} not drawn: ${(err as Error).message}`);
      continue;
    }
    if (svg === null) continue;
    const svgFile = join(dir, `${p.name}.svg`);
    await writeFile(svgFile, svg);
    files.push(svgFile);
    if (options.svgOnly) {
      plots.push({ file: `${p.name}.svg`, caption: p.caption });
      continue;
    }
    try {
      const png = renderPng(svg);
      const pngFile = join(dir, `${p.name}.png`);
      await writeFile(pngFile, png);
      files.push(pngFile);
      plots.push({ file: `${p.name}.png`, caption: p.caption });
    } catch (err) {
      plotErrors.push(`plot ${p.name} not rendered to PNG (SVG kept): ${(err as Error).message}`);
      plots.push({ file: `${p.name}.svg`, caption: p.caption });
    }
  }

  const env = reportEnvironment();
  const withNotes: ExperimentData = plotErrors.length ? { ...data, notes: [...(Array.isArray(data.notes) ? data.notes : []), ...plotErrors] } : data;
  const md = reportMarkdown(withNotes, computed, env, plots);
  const mdFile = join(dir, 'report.md');
  const jsonFile = join(dir, 'report.json');
  await writeFile(mdFile, md);
  const json = { schema: REPORT_SCHEMA, writtenAt: new Date().toISOString(), mtbfHours, environment: env, data: withNotes, computed, plots: plots.map((p) => p.file) };
  // Infinity (nines of a perfect run) is not JSON: written as null.
  const text = JSON.stringify(json, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
  // Arrays of plain numbers (per-call gaps, takeovers) on one line each: a long run has a million.
  // A pretty-printed array starts with "[" and a newline, which no JSON string can hold.
  await writeFile(jsonFile, `${text.replace(/\[\n[\d\s.,eE+-]*\]/g, (m) => m.replace(/\s+/g, ''))}\n`);
  return { dir, files: [mdFile, jsonFile, ...files], computed };
}

/**
 * The experiment data in a report.json this module wrote (under `data`), or in a file holding the
 * bare `ExperimentData`; for writing a report again (after a change to the plots, or with another
 * MTBF). Throws with the file name when it holds neither.
 */
export async function readExperimentData(jsonFile: string): Promise<ExperimentData> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(jsonFile, 'utf8'));
  } catch (err) {
    throw new Error(`${jsonFile}: not JSON (${(err as Error).message})`);
  }
  const obj = parsed as { schema?: unknown; data?: unknown };
  const data = (obj && typeof obj === 'object' && obj.schema === REPORT_SCHEMA ? obj.data : parsed) as Partial<ExperimentData> | null;
  if (!data || typeof data !== 'object' || typeof data.experiment !== 'string' || !Number.isFinite(data.startedAtMs) || !Number.isFinite(data.endedAtMs)) {
    throw new Error(`${jsonFile}: no experiment data (needs experiment, startedAtMs, endedAtMs)`);
  }
  return data as ExperimentData;
}
