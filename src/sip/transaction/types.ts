import type { TimerWheel } from '../../util/timer-wheel.js';
import type { SipMessage, SipRequest, SipResponse } from '../message/sip-message.js';
import type { ViaLike } from '../transport/response-routing.js';
import type { Endpoint, Source } from '../transport/types.js';

/**
 * What the transaction layer needs from a transport. `TransportLayer` implements it; tests and
 * benchmarks use `InMemoryTransport` (src/sip/transport/in-memory-transport.ts).
 */
export interface TransactionTransport {
  on(event: 'message', listener: (msg: SipMessage, source: Source) => void): unknown;
  off(event: 'message', listener: (msg: SipMessage, source: Source) => void): unknown;
  /** Sends serialized bytes to `target` (retransmissions reuse the buffer). */
  sendRaw(data: Buffer, target: Endpoint): Promise<void>;
  /**
   * `sendRaw` without a Promise (the transactions' send path): a failure is reported through
   * `onError(err, arg)`, never before `transmit` returns. `local` is the listening point to send
   * from (a response leaves where its request came in).
   */
  transmit<A>(data: Buffer, target: Endpoint, onError: (err: Error, arg: A) => void, arg: A, local?: { localAddress: string; localPort: number }): void;
  /** Sends a serialized response, routed by its top Via, back along the request path (§18.2.2, RFC 3581). */
  sendResponseRaw(data: Buffer, via: ViaLike, source?: Source): Promise<void>;
  /** Via value with sent-by and the given branch for a request to `target`. */
  viaValue(target: Endpoint, branch: string, rport?: boolean): string;
  /** Sent-by (host ready for a header, port) used for requests to `target`; also the UA's Contact. */
  viaFor(target: Endpoint): { transport: string; host: string; port: number };
}

/** Implemented by the layer above (UA core, proxy core). */
export interface TransactionUser {
  /**
   * A new request. `tx` is the server transaction to answer through; it is undefined for an ACK
   * that matched no transaction (the ACK to a 2xx, RFC 3261 §17.2.3 / RFC 6026 §8.4).
   */
  onRequest(req: SipRequest, tx: ServerTransaction | undefined, source: Source): void;
  /** A response matching no client transaction (2xx retransmissions after Timer M, forks). */
  onStrayResponse?(res: SipResponse, source: Source): void;
  /**
   * A CANCEL matching no INVITE transaction here (a proxy of a cluster may know the INVITE from
   * a peer). The TU answers it through `tx`. Without this hook the layer answers 481 itself.
   */
  onUnmatchedCancel?(req: SipRequest, tx: ServerTransaction, source: Source): void;
  /**
   * Asked for a new non-INVITE request (not CANCEL, not ACK) that matched no transaction: true
   * answers it without a server transaction (`StatelessServerTransaction`: nothing kept, a
   * retransmission comes to the TU again). Only for idempotent processing, e.g. REGISTER to our
   * own registrar. Without this hook every request gets a transaction.
   */
  statelessFor?(req: SipRequest, source: Source): boolean;
}

export interface ClientTransactionHandlers {
  /** 101-199 responses (100 Trying too). */
  onProvisional?(res: SipResponse): void;
  /** The first final response. */
  onFinal?(res: SipResponse): void;
  /**
   * INVITE only, RFC 6026 Accepted state: every further 2xx during Timer M (retransmissions,
   * or 2xx from other forks with another To tag). The TU re-sends its ACK for each.
   */
  onAdditional2xx?(res: SipResponse): void;
  /** Timer B/F fired (RFC 3261 §8.1.3.1: treat as 408 Request Timeout). */
  onTimeout?(): void;
  /** The transport could not send (§8.1.3.1: treat as 503 Service Unavailable). */
  onTransportError?(err: Error): void;
}

export type TransactionState =
  | 'Calling'
  | 'Trying'
  | 'Proceeding'
  | 'Completed'
  | 'Accepted'
  | 'Confirmed'
  | 'Terminated';

export interface TransactionOptions {
  /** RTT estimate (RFC 3261 §17.1.1.1). @default 500 */
  t1Ms?: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses. @default 4000 */
  t2Ms?: number;
  /** Maximum time a message remains in the network. @default 5000 */
  t4Ms?: number;
  /** Timer wheel driving every transaction timer. @default the shared real-time wheel */
  wheel?: TimerWheel;
  /**
   * An INVITE server transaction sends `100 Trying` if the TU has not answered within this
   * many ms (§17.2.1 says 200 ms); 0 sends it at once, -1 never.
   * @default 200
   */
  autoTryingMs?: number;
  /**
   * An INVITE client transaction in Proceeding with no final response for this long ends with
   * onTimeout (like Timer C, §16.6 step 11), so a lost final response cannot leak it.
   * @default 180000
   */
  inviteProceedingTimeoutMs?: number;
  /**
   * A server transaction whose TU never answers is removed after this long (INVITE) or
   * 64*T1 (non-INVITE: the client has given up by then).
   * @default 300000
   */
  inviteServerTimeoutMs?: number;
  /**
   * RFC 3261 §18.1.1: a request bigger than this many bytes that would go over UDP is sent over
   * TCP to the same address and port (top Via changed to TCP), falling back to UDP if the
   * connection fails. The RFC's figure is 1300 when the path MTU is unknown; 0 turns it off
   * (many phones take no TCP).
   * @default 0
   */
  udpMaxRequestBytes?: number;
  /**
   * How long a finished transaction is kept to absorb retransmissions: Timer J (non-INVITE
   * server, Completed), L (INVITE server, Accepted), M (INVITE client, Accepted) and D (INVITE
   * client, Completed). RFC 3261 and 6026 give 64*T1, 32 s: at 1,000 calls/s that is 32,000
   * calls' transactions held in memory and traced by every full collection. Kamailio's tm keeps
   * finished transactions 5 s (its `wt_timer`); a shorter linger trades a late retransmission
   * (a request whose answers were lost for that long) being handled as a new request. Timers H, I
   * and K are not affected. @default 64*T1
   */
  lingerMs?: number;
}

export interface ServerTransactionEvents {
  /** A CANCEL matched this INVITE transaction before its final response; the layer already answered it 200. */
  cancel: [cancel: SipRequest];
  /** Timer H: no ACK for a non-2xx final response; or the TU never answered. */
  timeout: [];
  transportError: [err: Error];
  terminated: [];
}

export interface ServerTransaction {
  readonly request: SipRequest;
  readonly source: Source;
  readonly state: TransactionState;
  readonly isInvite: boolean;
  /** True once a CANCEL matched (INVITE only). */
  readonly cancelled: boolean;
  /** Sends a response (provisional or final) through the transaction. */
  respond(res: SipResponse): void;
  on<K extends keyof ServerTransactionEvents>(event: K, fn: (...args: ServerTransactionEvents[K]) => void): this;
  off<K extends keyof ServerTransactionEvents>(event: K, fn: (...args: ServerTransactionEvents[K]) => void): this;
}

export interface ClientTransaction {
  readonly request: SipRequest;
  readonly target: Endpoint;
  readonly state: TransactionState;
  readonly isInvite: boolean;
}

/** @internal What a transaction needs from the layer that owns it. */
export interface TxContext {
  readonly wheel: TimerWheel;
  readonly t1: number;
  readonly t2: number;
  readonly t4: number;
  /** Timers J, L, M and D (`TransactionOptions.lingerMs`). */
  readonly linger: number;
  /** Ends `tx` when Timer J, L, M or D (`linger` ms from now) fires, unless it has ended by then. */
  endAfterLinger(tx: { readonly state: TransactionState; terminate(): void }): void;
  readonly transport: TransactionTransport;
  readonly opts: Required<Omit<TransactionOptions, 'wheel' | 't1Ms' | 't2Ms' | 't4Ms' | 'lingerMs'>>;
  /** Removes the transaction's map entry (only if the key still names this transaction). */
  removeClient(key: string, tx: object): void;
  removeServer(key: string, tx: object): void;
  /** Emits diagnostics (`sip:transaction:*` channel). */
  diag(event: string, tx: object): void;
}
