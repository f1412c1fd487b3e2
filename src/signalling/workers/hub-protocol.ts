/**
 * Messages between the primary process of `tandem start --workers N` and its workers (over the
 * cluster IPC channel, v8 serialization). Requests carry an `id`; the answer is a `reply` with
 * the same id. The link itself is injected (`HubLink`): the signalling layer never touches
 * processes.
 */
import type { Binding, DialogRecord } from '../../state/store.js';
import type { ListeningPoint } from '../../sip/transport/types.js';

/** Worker index -> channel port (0: down), and connection-id incarnation -> worker index. */
export interface PeersMessage {
  t: 'peers';
  ports: number[];
  incarnations: Array<[number, number]>;
}

/** The first message a worker gets: who it is and what it shares with the others. */
export interface InitMessage {
  t: 'init';
  index: number;
  count: number;
  /** Grows with every worker process the primary starts: the worker's connection-id range. */
  incarnation: number;
  /** Worker channel token, hex (8 bytes). */
  token: string;
  nodeId: string;
  /** The node's secret (nonces, flow and route tokens): the same in every worker. */
  secret: string;
  /** ng address of the media node the primary runs, when it runs one. */
  mediaNg?: string;
  /** First start of this index since the node started (not a restart after a crash). */
  firstStart: boolean;
  /** Bearer token of the worker's own admin server (loopback; only the primary calls it). */
  adminToken: string;
}

export type PrimaryToWorker =
  | InitMessage
  | PeersMessage
  | { t: 'reply'; id: number; value?: unknown; error?: string }
  /** A location write made through another worker: apply, then ack. */
  | { t: 'loc'; id: number; aor: string; bindings: Binding[] }
  /** Every binding the node holds (a worker that starts or restarts). */
  | { t: 'locSnapshot'; entries: Array<[string, Binding[]]> }
  | { t: 'block'; source: string; untilMs: number }
  /** Requests answered with a reply: */
  | { t: 'metrics'; id: number }
  | { t: 'status'; id: number }
  | { t: 'listen'; id: number; vip: string; epoch: number }
  | { t: 'unlisten'; id: number; vip: string }
  | { t: 'peerTakeover' }
  /** Active calls per dispatcher destination of worker `index` (its own dialogs). */
  | { t: 'load'; index: number; counts: Record<string, number> }
  /** SIP tracing (HEP export) switched through the admin API. */
  | { t: 'trace'; enabled: boolean }
  /** A dialog claimed from a dead node by another worker, for the worker holding its Call-ID. */
  | { t: 'adopt'; index: number; record: DialogRecord }
  | { t: 'shutdown'; graceMs: number };

export type WorkerToPrimary =
  /** A worker that has loaded asks who it is (answered with `init`). */
  | { t: 'boot' }
  /** Before listening: the worker gets the location snapshot and the peers as the reply. */
  | { t: 'hello'; id: number; channelPort: number }
  /** Listening: messages may be steered to it now. */
  | { t: 'ready'; channelPort: number; lps: ListeningPoint[]; adminPort: number }
  | { t: 'reply'; id: number; value?: unknown; error?: string }
  | { t: 'setBindings'; id: number; aor: string; bindings: Binding[] }
  | { t: 'nonce'; id: number; nonce: string; nc: number; ttlSec: number }
  | { t: 'authFailure'; source: string }
  | { t: 'authSuccess'; source: string }
  /** This worker's active calls per dispatcher destination, when they change (relayed to the others). */
  | { t: 'load'; counts: Record<string, number> }
  /** Hand a claimed dialog to worker `index` (relayed by the primary). */
  | { t: 'adopt'; index: number; record: DialogRecord };

/** The worker's end of the IPC channel. */
export interface HubLink {
  send(msg: WorkerToPrimary): void;
  onMessage(fn: (msg: PrimaryToWorker) => void): void;
}

/** Whether an IPC message is one of ours (prom-client and Node's own share the channel). */
export function isHubMessage(m: unknown): m is { t: string } {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string' && (m as { tandem?: unknown }).tandem === undefined;
}
