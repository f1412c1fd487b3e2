import { appendFileSync, writeFileSync } from 'node:fs';
import { percentileOf } from './histogram.js';
import type { LoadSnapshot } from './stats.js';

/** Flat figures of one moment of a run: what the progress line, stats file and summary print. */
export interface LoadFigures {
  elapsedSec: number;
  /** Calls started per second over the last period (or over the run, for the final figures). */
  callsPerSec: number;
  targetRate: number;
  generated: number;
  successful: number;
  failed: number;
  active: number;
  retransmissions: number;
  responseP50Ms: number;
  responseP90Ms: number;
  responseP99Ms: number;
  responseMaxMs: number;
  setupP50Ms: number;
  setupP90Ms: number;
  setupP99Ms: number;
  setupMaxMs: number;
  rtpStreams: number;
  rtpSent: number;
  rtpReceived: number;
  rtpLost: number;
  rtpLossPct: number;
  rtpJitterP50Ms: number;
  rtpJitterP99Ms: number;
  rtpJitterMaxMs: number;
  rtpWorstGapMs: number;
  /** Per-stream longest gap: median and p99 over streams. */
  rtpGapP50Ms: number;
  rtpGapP99Ms: number;
  rtpSendLate: number;
  strayMessages: number;
}

const r3 = (n: number): number => Math.round(n * 1000) / 1000;

export function figuresOf(s: LoadSnapshot, elapsedSec: number, callsPerSec: number, targetRate: number): LoadFigures {
  const expected = s.rtp.packetsExpected;
  return {
    elapsedSec: r3(elapsedSec),
    callsPerSec: r3(callsPerSec),
    targetRate: r3(targetRate),
    generated: s.generated,
    successful: s.successful,
    failed: s.failed,
    active: s.active,
    retransmissions: s.retransmissions,
    responseP50Ms: r3(percentileOf(s.responseTime, 0.5)),
    responseP90Ms: r3(percentileOf(s.responseTime, 0.9)),
    responseP99Ms: r3(percentileOf(s.responseTime, 0.99)),
    responseMaxMs: r3(s.responseTime.maxMs),
    setupP50Ms: r3(percentileOf(s.setupTime, 0.5)),
    setupP90Ms: r3(percentileOf(s.setupTime, 0.9)),
    setupP99Ms: r3(percentileOf(s.setupTime, 0.99)),
    setupMaxMs: r3(s.setupTime.maxMs),
    rtpStreams: s.rtp.streams,
    rtpSent: s.rtp.packetsSent,
    rtpReceived: s.rtp.packetsReceived,
    rtpLost: s.rtp.packetsLost,
    rtpLossPct: expected > 0 ? r3((100 * s.rtp.packetsLost) / expected) : 0,
    rtpJitterP50Ms: r3(percentileOf(s.rtp.jitter, 0.5)),
    rtpJitterP99Ms: r3(percentileOf(s.rtp.jitter, 0.99)),
    rtpJitterMaxMs: r3(s.rtp.jitter.maxMs),
    rtpWorstGapMs: r3(s.rtp.worstGapMs),
    rtpGapP50Ms: r3(percentileOf(s.rtp.gaps, 0.5)),
    rtpGapP99Ms: r3(percentileOf(s.rtp.gaps, 0.99)),
    rtpSendLate: s.rtp.sendLate,
    strayMessages: s.strayMessages,
  };
}

export function progressLine(f: LoadFigures, rtp: boolean): string {
  let line =
    `${f.elapsedSec.toFixed(0).padStart(4)}s  ${f.callsPerSec.toFixed(1).padStart(7)} calls/s  active ${String(f.active).padStart(5)}` +
    `  ok ${f.successful}  fail ${f.failed}  retrans ${f.retransmissions}`;
  if (rtp) line += `  rtp loss ${f.rtpLossPct.toFixed(3)}%  gap ${f.rtpWorstGapMs.toFixed(0)}ms`;
  return line;
}

export interface SummaryContext {
  scenario: string;
  transport: string;
  target: string;
  workers: number;
  rtp: boolean;
}

const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

/** The end-of-run report, in the spirit of SIPp's final statistics screen. */
export function formatSummary(ctx: SummaryContext, f: LoadFigures, failures: Record<string, number>): string {
  const rows: string[] = [];
  const line = '-'.repeat(72);
  rows.push(`${line}\n tandem load ${ctx.scenario} over ${ctx.transport} to ${ctx.target}, ${ctx.workers} worker(s), ${f.elapsedSec.toFixed(1)} s\n${line}`);
  rows.push(`  Generated calls      ${String(f.generated).padStart(10)}   (${f.callsPerSec.toFixed(1)} calls/s)`);
  rows.push(`  Successful calls     ${String(f.successful).padStart(10)}`);
  rows.push(`  Failed calls         ${String(f.failed).padStart(10)}`);
  for (const [reason, n] of Object.entries(failures).sort((a, b) => b[1] - a[1])) {
    rows.push(`    ${reason.padEnd(38)} ${String(n).padStart(8)}`);
  }
  rows.push(`  Retransmissions      ${String(f.retransmissions).padStart(10)}`);
  if (f.strayMessages) rows.push(`  Unmatched messages   ${String(f.strayMessages).padStart(10)}`);
  rows.push(`  Response time ms     p50 ${ms(f.responseP50Ms)}  p90 ${ms(f.responseP90Ms)}  p99 ${ms(f.responseP99Ms)}  max ${ms(f.responseMaxMs)}`);
  rows.push(`  Call setup ms        p50 ${ms(f.setupP50Ms)}  p90 ${ms(f.setupP90Ms)}  p99 ${ms(f.setupP99Ms)}  max ${ms(f.setupMaxMs)}`);
  if (ctx.rtp) {
    rows.push(`  RTP streams          ${String(f.rtpStreams).padStart(10)}   sent ${f.rtpSent}  received ${f.rtpReceived}`);
    rows.push(`  RTP loss             ${String(f.rtpLost).padStart(10)}   (${f.rtpLossPct.toFixed(3)}%)${f.rtpSendLate ? `  sender late ${f.rtpSendLate}` : ''}`);
    rows.push(`  RTP jitter ms        p50 ${ms(f.rtpJitterP50Ms)}  p99 ${ms(f.rtpJitterP99Ms)}  max ${ms(f.rtpJitterMaxMs)}`);
    rows.push(`  RTP gap ms           per-stream longest p50 ${ms(f.rtpGapP50Ms)}  p99 ${ms(f.rtpGapP99Ms)}  worst ${ms(f.rtpWorstGapMs)}`);
  }
  rows.push(line);
  return rows.join('\n');
}

/** Periodic and final figures as CSV rows (appended as they come) or one JSON document. */
export class StatsFile {
  readonly #path: string;
  readonly #json: boolean;
  #rows: (LoadFigures & { kind: string })[] = [];
  #headerWritten = false;

  constructor(path: string) {
    this.#path = path;
    this.#json = path.toLowerCase().endsWith('.json');
  }

  add(kind: 'period' | 'final', f: LoadFigures, failures?: Record<string, number>): void {
    const row = { kind, ...f };
    if (this.#json) {
      this.#rows.push(row);
      const periods = this.#rows.filter((r) => r.kind === 'period');
      const final = this.#rows.find((r) => r.kind === 'final');
      writeFileSync(this.#path, JSON.stringify({ periods, final: final ? { ...final, failures: failures ?? {} } : null }, null, 1));
      return;
    }
    const keys = Object.keys(row) as (keyof typeof row)[];
    if (!this.#headerWritten) {
      writeFileSync(this.#path, keys.join(',') + ',failures\n');
      this.#headerWritten = true;
    }
    const fails = failures ? Object.entries(failures).map(([k, v]) => `${k}=${v}`).join(';') : '';
    appendFileSync(this.#path, keys.map((k) => String(row[k])).join(',') + `,"${fails.replace(/"/g, "'")}"\n`);
  }
}
