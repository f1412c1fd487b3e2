/**
 * Public types of the stateful proxy: targets, routing results, the routing hook and the serial
 * failover API used by the dispatcher. See README.md in this folder.
 */
import type { SipRequest, SipResponse } from '../../sip/message/sip-message.js';
import type { Endpoint, Source } from '../../sip/transport/types.js';
import type { Binding } from '../../state/store.js';

/** One place a request can be forwarded to (RFC 3261 §16.5 "target set" element). */
export interface Target {
  /** Request-URI of the forwarded request, e.g. `sip:alice@10.0.0.5:5062` or `sip:100@pbx1`. */
  uri: string;
  /**
   * Where to send it (next hop). Default: the Route set (Path) if any, else resolved from `uri`
   * (host, port, `transport` parameter).
   */
  nextHop?: Endpoint;
  /** Route header values to put on the request (top first), e.g. a registered Path. */
  route?: string[];
  /** q-value; parallel targets are tried in order of decreasing q (RFC 3261 §16.6). @default 1 */
  q?: number;
  /**
   * Key used for dialog counting per destination (the dispatcher's call-load algorithm reads
   * it), e.g. the destination URI. Default: none (not counted per destination).
   */
  destinationKey?: string;
  /** Free-form data for the routing hook / dispatcher (e.g. the destination object). */
  data?: unknown;
  /**
   * `nextHop` is the flow a registration came over (NAT or TCP/TLS): the Record-Route then
   * carries it so in-dialog requests reach the UA over the same flow.
   */
  viaFlow?: boolean;
  /**
   * Index the branch's Via branch is derived from (default: its position among the request's
   * branches). A node re-sending a dead peer's branch gives the peer's index, so the callee sees
   * a retransmission.
   */
  branchIndex?: number;
}

/** Why a serial branch was abandoned. */
export type BranchFailureReason =
  /** No response at all within `frTimerMs` (or the client transaction timed out). */
  | { kind: 'timeout' }
  /** A provisional came but no final within `frInvTimerMs`. */
  | { kind: 'no-answer' }
  /** A final response whose status is in `failoverStatuses`. */
  | { kind: 'status'; status: number; response: SipResponse }
  /** The transport could not send (connection refused, unreachable). */
  | { kind: 'transport'; error: string };

/**
 * Supplies serial targets one at a time: called for the first branch with `attempt` 0 and after
 * each failed branch; returning undefined ends the search. `tried` lists the targets already
 * used, oldest first.
 */
export type TargetSupplier = (attempt: number, tried: readonly Target[]) => Target | undefined;

/** Serial forking with failover (the dispatcher's use). */
export interface SerialRoute {
  kind: 'serial';
  /** Fixed list (tried in order) or a supplier asked after each failure. */
  targets: readonly Target[] | TargetSupplier;
  /**
   * No provisional response within this time: the branch is abandoned (CANCEL if anything at all
   * was received), the next target tried.
   * @default 4000
   */
  frTimerMs?: number;
  /**
   * Provisional but no final response within this time (counted from the INVITE): CANCEL, next.
   * @default 60000
   */
  frInvTimerMs?: number;
  /**
   * Final statuses that move on to the next target. Classes may be given as 500 meaning 5xx when
   * written as `'5xx'`. 4xx and 6xx not listed here go back to the caller.
   * @default ['5xx', 408, 503]
   */
  failoverStatuses?: ReadonlyArray<number | '5xx' | '4xx' | '6xx'>;
  /**
   * Status sent upstream when every target failed without a usable response.
   * @default 503
   */
  exhaustedStatus?: number;
  /** Called when a branch fails (timeout, no answer, failover status, transport error). */
  onBranchFailed?: (target: Target, reason: BranchFailureReason) => void;
  /** Called when a branch gets a 2xx (the call is answered on this target). */
  onBranchAnswered?: (target: Target, response: SipResponse) => void;
  /** Called when a branch gets any response (the destination is alive). */
  onBranchResponded?: (target: Target, response: SipResponse) => void;
  /** Media node the offer must go to (a peer already sent this call's offer there). */
  mediaNode?: string;
  /**
   * The dispatcher set the targets come from: written with a ringing call's record so that a
   * peer can go on with the failover if this node dies.
   */
  dispatchSet?: string;
}

/** Parallel forking to all targets at once (RFC 3261 §16.6), ordered by q. */
export interface ParallelRoute {
  kind: 'parallel';
  targets: readonly Target[];
  /** Media node the offer must go to (a peer already sent this call's offer there). */
  mediaNode?: string;
}

/** Answer the request locally. */
export interface ReplyRoute {
  kind: 'reply';
  status: number;
  reason?: string;
  headers?: [string, string][];
}

/** Default behaviour: location lookup for local domains, else forward to the Request-URI. */
export interface DefaultRoute {
  kind: 'default';
}

export type RouteResult = SerialRoute | ParallelRoute | ReplyRoute | DefaultRoute;

/** What a routing hook can see and use. */
export interface RouteContext {
  /** Where the request came from. */
  source: Source;
  /** Authenticated user name (undefined when the request was not authenticated). */
  authUser: string | undefined;
  /** True for a request inside a dialog (To tag present). */
  inDialog: boolean;
  /** Domains served by this node. */
  isLocalDomain(host: string): boolean;
  /** Registered contacts of an AOR (`sip:user@domain`), as parallel targets ordered by q. */
  lookup(aor: string): Promise<Target[]>;
  /** Raw bindings of an AOR. */
  bindings(aor: string): Promise<Binding[]>;
  /** Destination sets registered by the dispatcher (empty without one). */
  readonly services: Record<string, unknown>;
}

/**
 * User routing logic, loaded from the file named by `signalling.routeScript`:
 * `export default function route(request, context): RouteResult | Promise<RouteResult>` or a
 * named export `route`. Return `{ kind: 'default' }` to get the built-in behaviour.
 */
export type RouteHook = (request: SipRequest, context: RouteContext) => RouteResult | Promise<RouteResult>;
