import type { SipRequest } from '../../sip/message/sip-message.js';
import { formatUri, parseUri } from '../../sip/uri/sip-uri.js';
import { createLogger } from '../../util/logger.js';
import type { ProxyStack } from '../proxy/proxy-stack.js';
import type { BranchFailureReason, RouteContext, RouteResult, SerialRoute, Target } from '../proxy/types.js';
import type { DispatcherConfig } from './config-schema.js';
import { dispatcherConfigSchema } from './config-schema.js';
import type { BranchFailure, CallLoadSource, DispatchOptions, DispatchTarget, Dispatcher } from './dispatcher.js';
import { dispatcherFromConfig } from './index.js';
import { endpointOf, optionsProbeSender } from './options-sender.js';
import { Prober } from './prober.js';

const log = createLogger('dispatcher');

/** Name under which the service sits in `RouteContext.services`. */
export const DISPATCHER_SERVICE = 'dispatcher';

export interface DispatcherServiceOptions {
  /** The validated `dispatcher` config section (defaults when omitted). */
  config?: DispatcherConfig;
  /** The proxy's SIP stack, used to send OPTIONS probes (no probing without it). */
  stack?: ProxyStack;
  /** Active-call counts for `call-load` (the proxy's DialogTracker). */
  callLoad?: CallLoadSource;
}

/** Per-call options of `dispatch()`: algorithm/hash overrides plus failover timers. */
export interface DispatchRouteOptions extends DispatchOptions {
  frTimerMs?: number;
  frInvTimerMs?: number;
  failoverStatuses?: ReadonlyArray<number | '5xx'>;
  /**
   * Request-URI of the forwarded INVITE: `rewrite-host` keeps the dialled user and puts the
   * destination's host/port/params in (a PBX sees `sip:1000@pbx1:5060`); `keep` leaves the
   * Request-URI alone and only sends to the destination. @default rewrite-host
   */
  requestUri?: 'rewrite-host' | 'keep';
}

/**
 * The dispatcher as the signalling node runs it: sets from config, OPTIONS probing through the
 * proxy's stack, and `dispatch()` that turns a set into the proxy's serial route with failover.
 *
 * Route script use:
 * ```ts
 * import { dispatch } from '../src/signalling/dispatcher/service.js';
 * export default function route(req, ctx) {
 *   if (req.requestUri.user?.startsWith('9')) return dispatch(ctx, 'pbx', req, { algorithm: 'call-load' });
 *   return { kind: 'default' };
 * }
 * ```
 */
export class DispatcherService {
  readonly dispatcher: Dispatcher;
  readonly config: DispatcherConfig;
  prober: Prober | undefined;

  constructor(opts: DispatcherServiceOptions = {}) {
    this.config = opts.config ?? dispatcherConfigSchema.parse({});
    this.dispatcher = dispatcherFromConfig(this.config, opts.callLoad ? { callLoad: opts.callLoad } : {});
    if (opts.stack) this.attachStack(opts.stack);
  }

  /** Gives the service the SIP stack to probe through (starts probing if enabled). */
  attachStack(stack: ProxyStack): void {
    if (this.prober || !this.config.probing.enabled) return;
    const p = this.config.probing;
    this.prober = new Prober(this.dispatcher, optionsProbeSender(stack, p.fromUri ? { fromUri: p.fromUri } : {}), {
      intervalSec: p.intervalSec,
      okStatuses: p.okStatuses,
      ...(p.timeoutMs !== undefined ? { timeoutMs: p.timeoutMs } : {}),
    });
    this.prober.start();
    log.info({ intervalSec: p.intervalSec, downAfter: p.downAfter, upAfter: p.upAfter, destinations: this.dispatcher.uris().length }, 'dispatcher probing started');
  }

  /** Whether `address` is the IP of one of the destinations (asked on authentication failures only). */
  isDestinationAddress(address: string): boolean {
    for (const uri of this.dispatcher.uris()) {
      const ep = endpointOf(uri);
      if (ep.ok && ep.value.address === address) return true;
    }
    return false;
  }

  setCallLoadSource(src: CallLoadSource): void {
    this.dispatcher.setCallLoadSource(src);
  }

  close(): void {
    this.prober?.stop();
    this.dispatcher.close();
  }

  /**
   * Serial route over the destinations of `setName` for this request. Each failed branch
   * (fr_timer, fr_inv_timer, failover status, transport error) asks the set again, excluding
   * destinations already tried; a branch with no response at all marks its destination down.
   * Unknown set or nothing available: 503.
   */
  dispatch(setName: string, request: SipRequest, opts: DispatchRouteOptions = {}): RouteResult {
    const plan = this.dispatcher.plan(setName, request, opts);
    if (!plan) {
      log.warn({ set: setName }, 'dispatch to unknown set');
      return { kind: 'reply', status: 503, reason: 'No Such Destination Set' };
    }
    const f = this.config.failover;
    const rewrite = (opts.requestUri ?? 'rewrite-host') === 'rewrite-host';
    const supplier = (): Target | undefined => {
      const t = plan.next();
      if (!t) return undefined;
      const target: Target = { uri: rewrite ? rewriteHost(request.uri, t.uri) : request.uri, destinationKey: t.uri, data: t };
      if (!rewrite) {
        const ep = endpointOf(t.uri);
        if (ep.ok) target.nextHop = ep.value;
      }
      return target;
    };
    const route: SerialRoute = {
      kind: 'serial',
      targets: supplier,
      frTimerMs: opts.frTimerMs ?? f.frTimerMs,
      frInvTimerMs: opts.frInvTimerMs ?? f.frInvTimerMs,
      failoverStatuses: opts.failoverStatuses ?? f.statuses,
      exhaustedStatus: 503,
      dispatchSet: setName,
      onBranchFailed: (target, reason) => {
        const t = target.data as DispatchTarget | undefined;
        if (t) plan.failed(t, toFailure(reason));
      },
      onBranchAnswered: (target) => {
        const t = target.data as DispatchTarget | undefined;
        if (t) plan.answered(t);
      },
      onBranchResponded: (target) => {
        const t = target.data as DispatchTarget | undefined;
        if (t) plan.responded(t);
      },
    };
    return route;
  }

  /** Routes by the `routes` prefix table of the config; undefined when no prefix matches. */
  routeByPrefix(request: SipRequest): RouteResult | undefined {
    const user = userOf(request.uri);
    if (user === undefined) return undefined;
    for (const r of this.config.routes) {
      if (user.startsWith(r.prefix)) return this.dispatch(r.set, request, r.algorithm ? { algorithm: r.algorithm } : {});
    }
    return undefined;
  }
}

/**
 * Route script helper: `return dispatch(context, 'pbx', request, { algorithm: 'hash' })`.
 * Answers 503 when the node runs without a dispatcher.
 */
export function dispatch(context: RouteContext, setName: string, request: SipRequest, opts?: DispatchRouteOptions): RouteResult {
  // Duck-typed: a route script may load its own copy of this module (source vs built output).
  const svc = context.services[DISPATCHER_SERVICE] as Partial<Pick<DispatcherService, 'dispatch'>> | undefined;
  if (typeof svc?.dispatch !== 'function') return { kind: 'reply', status: 503, reason: 'No Dispatcher' };
  return svc.dispatch(setName, request, opts);
}

function toFailure(r: BranchFailureReason): BranchFailure {
  switch (r.kind) {
    case 'timeout':
      // A destination that answered anything (e.g. only 100 Trying) is alive: do not mark it down.
      return (r as { anyResponse?: boolean }).anyResponse === true ? { reason: 'fr-inv-timer' } : { reason: 'fr-timer' };
    case 'no-answer':
      return { reason: 'fr-inv-timer' };
    case 'status':
      return { reason: 'status', status: r.status };
    case 'transport':
      return { reason: 'transport-error' };
  }
}

/** `sip:1000@tandem.local;user=phone` + `sip:10.0.0.5:5070;transport=tcp` -> `sip:1000@10.0.0.5:5070;transport=tcp`. */
export function rewriteHost(requestUri: string, destination: string): string {
  const d = parseUri(destination);
  if (!d.ok || d.value.user) return destination;
  const r = parseUri(requestUri);
  if (!r.ok || !r.value.user || r.value.scheme === 'tel') return destination;
  return formatUri({ ...d.value, user: r.value.user });
}

function userOf(uri: string): string | undefined {
  const r = parseUri(uri);
  return r.ok ? r.value.user : undefined;
}
