/** Messages between the control thread (RelayEngine) and relay workers. Control only, never per packet. */
import type { Endpoint, Side } from './types.js';

export type ControlToWorker =
  | { t: 'open'; req: number; id: number; callKey: string; ports: [number, number, number, number] }
  | { t: 'peer'; id: number; side: Side; rtp?: Endpoint; rtcp?: Endpoint; latch: boolean; strict: boolean; clockRate: number; latchedRtp?: Endpoint; latchedRtcp?: Endpoint }
  | { t: 'close'; req: number; id: number }
  | { t: 'stats'; req: number; id: number }
  | { t: 'idle'; req: number; idleMs: number }
  | { t: 'totals'; req: number }
  | { t: 'stop'; req: number };

export type WorkerToControl =
  | { t: 'ready' }
  | { t: 'reply'; req: number; value: unknown }
  | { t: 'latched'; id: number; side: Side; kind: 'rtp' | 'rtcp'; endpoint: Endpoint };

/** Per-worker counters; `dropped` is indexed like DROP_REASONS. */
export interface WorkerCounters {
  rtpPackets: number;
  rtpBytes: number;
  rtpErrors: number;
  rtcpPackets: number;
  rtcpBytes: number;
  rtcpErrors: number;
  forwarded: number;
  dropped: number[];
}
