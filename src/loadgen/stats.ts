import { counter } from '../util/metrics.js';
import { LatencyHistogram, emptyHistogram, mergeHistograms, type HistogramSnapshot } from './histogram.js';

/** SIP messages the generator dropped (garbage, unmatched responses), by role and reason. */
export const droppedMessages = counter('tandem_load_dropped_messages_total', 'SIP messages dropped by the load generator', ['role', 'reason']);

/** RTP figures summed over streams (both directions of every call seen by one side). */
export interface RtpTotals {
  streams: number;
  packetsSent: number;
  packetsReceived: number;
  /** RFC 3550 A.3: expected - received, summed over streams (never negative per stream). */
  packetsLost: number;
  packetsExpected: number;
  /** Interarrival jitter per stream (RFC 3550 A.8), in ms, at stream end. */
  jitter: HistogramSnapshot;
  /** Longest interval between two consecutive received packets of any one stream, ms. */
  worstGapMs: number;
  /** Per stream (at its end): its longest interval between consecutive packets, ms. */
  gaps: HistogramSnapshot;
  /** Packets the sender could not send on time (its tick was late by more than the catch-up budget). */
  sendLate: number;
}

/** Cumulative figures of one worker or of a whole run (merged). */
export interface LoadSnapshot {
  generated: number;
  successful: number;
  failed: number;
  active: number;
  retransmissions: number;
  /** reason -> count: `timeout`, `status 503`, `transport error`, `bad response: ...`, `aborted` */
  failures: Record<string, number>;
  /** Request sent -> first response (any, including 100). */
  responseTime: HistogramSnapshot;
  /** INVITE (or REGISTER) sent -> its 2xx. */
  setupTime: HistogramSnapshot;
  rtp: RtpTotals;
  /** Messages that could not be parsed or matched, not attributable to a call. */
  strayMessages: number;
  /** UAS side: requests answered by method. */
  requests: Record<string, number>;
}

export function emptyRtp(): RtpTotals {
  return { streams: 0, packetsSent: 0, packetsReceived: 0, packetsLost: 0, packetsExpected: 0, jitter: emptyHistogram(), worstGapMs: 0, gaps: emptyHistogram(), sendLate: 0 };
}

export function emptySnapshot(): LoadSnapshot {
  return {
    generated: 0,
    successful: 0,
    failed: 0,
    active: 0,
    retransmissions: 0,
    failures: {},
    responseTime: emptyHistogram(),
    setupTime: emptyHistogram(),
    rtp: emptyRtp(),
    strayMessages: 0,
    requests: {},
  };
}

function addCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export function mergeRtp(a: RtpTotals, b: RtpTotals): RtpTotals {
  return {
    streams: a.streams + b.streams,
    packetsSent: a.packetsSent + b.packetsSent,
    packetsReceived: a.packetsReceived + b.packetsReceived,
    packetsLost: a.packetsLost + b.packetsLost,
    packetsExpected: a.packetsExpected + b.packetsExpected,
    jitter: mergeHistograms(a.jitter, b.jitter),
    worstGapMs: Math.max(a.worstGapMs, b.worstGapMs),
    gaps: mergeHistograms(a.gaps ?? emptyHistogram(), b.gaps ?? emptyHistogram()),
    sendLate: a.sendLate + b.sendLate,
  };
}

/** Sums counters and histograms; percentiles are then taken from the merged histogram. */
export function mergeSnapshots(list: LoadSnapshot[]): LoadSnapshot {
  let out = emptySnapshot();
  for (const s of list) {
    out = {
      generated: out.generated + s.generated,
      successful: out.successful + s.successful,
      failed: out.failed + s.failed,
      active: out.active + s.active,
      retransmissions: out.retransmissions + s.retransmissions,
      failures: addCounts(out.failures, s.failures),
      responseTime: mergeHistograms(out.responseTime, s.responseTime),
      setupTime: mergeHistograms(out.setupTime, s.setupTime),
      rtp: mergeRtp(out.rtp, s.rtp),
      strayMessages: out.strayMessages + s.strayMessages,
      requests: addCounts(out.requests, s.requests),
    };
  }
  return out;
}

/** Mutable counters one engine (UAC or UAS) updates on its hot path. */
export class StatsCollector {
  generated = 0;
  successful = 0;
  failed = 0;
  active = 0;
  retransmissions = 0;
  strayMessages = 0;
  failures = new Map<string, number>();
  requests = new Map<string, number>();
  responseTime = new LatencyHistogram();
  setupTime = new LatencyHistogram();

  fail(reason: string): void {
    this.failed++;
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }

  countRequest(method: string): void {
    this.requests.set(method, (this.requests.get(method) ?? 0) + 1);
  }

  snapshot(rtp: RtpTotals): LoadSnapshot {
    return {
      generated: this.generated,
      successful: this.successful,
      failed: this.failed,
      active: this.active,
      retransmissions: this.retransmissions,
      failures: Object.fromEntries(this.failures),
      responseTime: this.responseTime.snapshot(),
      setupTime: this.setupTime.snapshot(),
      rtp,
      strayMessages: this.strayMessages,
      requests: Object.fromEntries(this.requests),
    };
  }
}
