import { EventEmitter } from 'node:events';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter, gauge } from '../../util/metrics.js';
import { safeEmit } from '../../util/safe-emit.js';
import type { Algorithm, HashKey } from './algorithms.js';
import type { AdminState, Destination, DestinationSpec, Health, HealthChangeReason } from './destination.js';
import { DestinationSet, type DestinationSetView } from './destination-set.js';
import { applyProbeOutcome, type ProbeOutcome, type ProbeThresholds } from './probe-state.js';

const log = createLogger('dispatcher');

const healthChanges = counter('tandem_dispatcher_health_changes_total', 'Destination health changes', ['destination', 'to', 'reason']);
const selections = counter('tandem_dispatcher_selections_total', 'Destinations chosen for a call (first try or failover)', ['set', 'destination']);
const failovers = counter('tandem_dispatcher_failovers_total', 'Branches that failed over to the next destination', ['set', 'reason']);
const exhausted = counter('tandem_dispatcher_no_destination_total', 'Calls for which a set had no (further) destination', ['set']);
const probes = counter('tandem_dispatcher_probes_total', 'OPTIONS probe outcomes', ['destination', 'outcome']);
const aliveTimeouts = counter(
  'tandem_dispatcher_timeouts_while_alive_total',
  'Branch fr_timer expiries not marked down because the destination answered something else after the branch was sent',
  ['set'],
);
const panics = counter('tandem_dispatcher_all_down_tries_total', 'Destinations tried although down because every destination of the set was down', ['set']);
const adminChanges = counter('tandem_dispatcher_admin_changes_total', 'Run-time changes through the admin API', ['action']);

/** Every live dispatcher, so the gauges below read current state at scrape time. */
const live = new Set<Dispatcher>();
gauge('tandem_dispatcher_destination_up', '1 when a destination may take new calls (enabled and up)', ['set', 'destination'], function collect() {
  this.reset();
  for (const disp of live) for (const s of disp.sets.values()) for (const d of s.destinations) this.set({ set: s.name, destination: d.uri }, d.available ? 1 : 0);
});
gauge('tandem_dispatcher_active_calls', 'Calls in progress per destination (early + confirmed)', ['set', 'destination'], function collect() {
  this.reset();
  for (const disp of live) {
    disp.refreshLoad();
    for (const s of disp.sets.values()) for (const d of s.destinations) this.set({ set: s.name, destination: d.uri }, d.activeCalls);
  }
});

/** Fields of a request the `hash` algorithm can key on (structurally a SipRequest). */
export interface DispatchRequest {
  readonly callId: string;
  /** Request-URI as text. */
  readonly uri: string;
  readonly from: { uri: UriLike };
  readonly to: { uri: UriLike };
}
interface UriLike {
  scheme?: string;
  user?: string;
  host: string;
  port?: number;
}

/** Per-call options for `plan()` (the route script's `dispatch(set, opts)`). */
export interface DispatchOptions {
  /** Overrides the set's algorithm for this call. */
  algorithm?: Algorithm;
  /** Overrides the set's hash key for this call. */
  hashKey?: HashKey;
  /** Explicit hash input (instead of reading it from the request). */
  key?: string;
  /** Destinations (URIs) already tried for this call elsewhere (a peer that died): not chosen again. */
  exclude?: readonly string[];
}

/** One destination chosen for one branch of a call. */
export interface DispatchTarget {
  /** SIP URI of the back-end (next hop / request target). */
  readonly uri: string;
  readonly set: string;
  readonly attrs: Readonly<Record<string, string>>;
  /** 1 for the first try, 2 for the first failover... */
  readonly attempt: number;
  /** When the branch was handed to the proxy (ms, dispatcher clock). */
  readonly sentAt: number;
  /** @internal */
  readonly destination: Destination;
}

/** Why the proxy abandoned a branch; drives mark-down and counters. */
export type BranchFailure =
  /** fr_timer expired with no response at all: the destination is presumed dead (marked down). */
  | { reason: 'fr-timer' }
  /** fr_inv_timer expired after a provisional: alive but not answering. */
  | { reason: 'fr-inv-timer' }
  /** A failover status (5xx, 408, ...). */
  | { reason: 'status'; status: number }
  /** The transport could not send (ICMP unreachable, TCP refused): marked down. */
  | { reason: 'transport-error' }
  /** The caller cancelled or the call failed for a reason not tied to this destination. */
  | { reason: 'cancelled' };

/** Authoritative active-call counts per destination key (the dialog tracker implements it). */
export interface CallLoadSource {
  /** Early + confirmed dialogs whose INVITE went to `destinationKey` (the destination URI). */
  activeCount(destinationKey: string): number;
}

export interface DispatcherOptions {
  /**
   * Where `call-load` reads active calls. With it, counts come from the dialog tracker (early +
   * confirmed dialogs, decremented on BYE, failure, CANCEL and dialog timeout). Without it the
   * dispatcher counts itself from its plans, and `callEnded(callId)` must be called at call end.
   */
  callLoad?: CallLoadSource;
  /** Probe thresholds (also used when a marked-down destination is probed back up). */
  thresholds?: ProbeThresholds;
  /** Also mark a destination down when fr_inv_timer expires on it. @default false */
  markDownOnInviteTimeout?: boolean;
  /**
   * When every enabled destination of a set is down, try them anyway (in algorithm order)
   * instead of rejecting the call with 503. @default true
   */
  tryAllWhenAllDown?: boolean;
  /** Calls older than this are forgotten by the call-load counters (lost BYE). @default 7200 */
  maxCallDurationSec?: number;
  /** Injectable for tests. */
  random?: () => number;
  now?: () => number;
}

export interface DispatcherEvents {
  /** Health changed: `(uri, health, reason)`. */
  health: [string, Health, HealthChangeReason];
}

/**
 * Destination sets, balancing, health and call-load bookkeeping for routing calls to back-end
 * PBXs. The proxy asks `plan(set, request)` for a serial target supplier and reports each branch's
 * fate back to it; probing (prober.ts) feeds `recordProbe`; the admin API changes sets at run time.
 */
export class Dispatcher extends EventEmitter {
  readonly sets = new Map<string, DestinationSet>();
  readonly thresholds: ProbeThresholds;
  readonly #markDownOnInviteTimeout: boolean;
  readonly #tryAllWhenAllDown: boolean;
  readonly #maxCallMs: number;
  readonly #random: () => number;
  readonly #now: () => number;
  /** Call-ID -> destination holding one call-load slot for it. */
  readonly #calls = new Map<string, { destination: Destination; at: number }>();
  #callLoad: CallLoadSource | undefined;
  #closed = false;

  constructor(opts: DispatcherOptions = {}) {
    super();
    this.thresholds = opts.thresholds ?? { downAfter: 3, upAfter: 2 };
    this.#markDownOnInviteTimeout = opts.markDownOnInviteTimeout ?? false;
    this.#tryAllWhenAllDown = opts.tryAllWhenAllDown ?? true;
    this.#maxCallMs = (opts.maxCallDurationSec ?? 7200) * 1000;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#callLoad = opts.callLoad;
    live.add(this);
  }

  /** Switches call-load counting to an external source (the dialog tracker). */
  setCallLoadSource(src: CallLoadSource | undefined): void {
    this.#callLoad = src;
    this.#calls.clear();
    this.refreshLoad();
  }

  /** Copies active-call counts from the external source into every destination (view, metrics, call-load). */
  refreshLoad(only?: DestinationSet): void {
    const src = this.#callLoad;
    if (!src) return;
    for (const s of only ? [only] : this.sets.values()) for (const d of s.destinations) d.activeCalls = src.activeCount(d.uri);
  }

  close(): void {
    this.#closed = true;
    live.delete(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The dispatcher's clock (ms). */
  now(): number {
    return this.#now();
  }

  // ---- configuration and admin --------------------------------------------------------------

  /** Creates a set (or changes the algorithm of an existing one). */
  defineSet(name: string, algorithm: Algorithm = 'round-robin', hashKey: HashKey = 'call-id'): DestinationSet {
    let s = this.sets.get(name);
    if (s) {
      s.algorithm = algorithm;
      s.hashKey = hashKey;
    } else {
      s = new DestinationSet(name, algorithm, hashKey);
      this.sets.set(name, s);
    }
    return s;
  }

  removeSet(name: string): boolean {
    adminChanges.inc({ action: 'remove-set' });
    return this.sets.delete(name);
  }

  /** Adds (or updates) a destination; a URI already known elsewhere starts with that health. */
  addDestination(setName: string, spec: DestinationSpec): Destination {
    const set = this.sets.get(setName) ?? this.defineSet(setName);
    const isNew = !set.find(spec.uri);
    const d = set.upsert(spec);
    if (isNew) {
      const twin = this.#byUri(spec.uri).find((x) => x !== d);
      if (twin) {
        d.health = twin.health;
        d.consecutiveFailures = twin.consecutiveFailures;
        d.consecutiveSuccesses = twin.consecutiveSuccesses;
      }
      adminChanges.inc({ action: 'add' });
      log.info({ set: setName, uri: spec.uri }, 'dispatcher destination added');
    }
    return d;
  }

  /** Removes a destination; its calls in progress are unaffected. */
  removeDestination(setName: string, uri: string): boolean {
    const d = this.sets.get(setName)?.remove(uri);
    if (!d) return false;
    adminChanges.inc({ action: 'remove' });
    log.info({ set: setName, uri }, 'dispatcher destination removed');
    return true;
  }

  /** enable / disable / drain one destination of a set. */
  setAdminState(setName: string, uri: string, state: AdminState): boolean {
    const d = this.sets.get(setName)?.find(uri);
    if (!d) return false;
    if (d.admin !== state) {
      log.info({ set: setName, uri, from: d.admin, to: state }, 'dispatcher destination admin state changed');
      d.admin = state;
      adminChanges.inc({ action: state });
    }
    return true;
  }

  /** Every distinct destination URI (what the prober probes). */
  uris(): string[] {
    const out = new Set<string>();
    for (const s of this.sets.values()) for (const d of s.destinations) out.add(d.uri);
    return [...out];
  }

  view(): DestinationSetView[] {
    this.refreshLoad();
    return [...this.sets.values()].map((s) => s.toJSON());
  }

  // ---- health -------------------------------------------------------------------------------

  /** Applies one probe outcome to every destination with this URI. */
  recordProbe(uri: string, o: ProbeOutcome): void {
    probes.inc({ destination: uri, outcome: o.outcome });
    const at = this.#now();
    for (const d of this.#byUri(uri)) {
      d.lastProbe = { at, outcome: o.outcome, ...('status' in o ? { status: o.status } : {}) };
      if ('status' in o) d.lastResponseAt = at;
      const next = applyProbeOutcome(d, o, this.thresholds);
      if (next) this.#setHealth(d, next, next === 'up' ? 'probe-successes' : 'probe-failures');
    }
  }

  /**
   * Takes a destination out of service at once (a branch timed out on it), without waiting for
   * probes; probing brings it back after `upAfter` successes.
   */
  markDown(uri: string, reason: HealthChangeReason): void {
    for (const d of this.#byUri(uri)) {
      d.consecutiveSuccesses = 0;
      if (d.health !== 'down') this.#setHealth(d, 'down', reason);
    }
  }

  /** Operator override: marks a destination up (or down) regardless of probes. */
  setHealth(uri: string, health: Health): boolean {
    const ds = this.#byUri(uri);
    for (const d of ds) {
      d.consecutiveFailures = 0;
      d.consecutiveSuccesses = 0;
      if (d.health !== health) this.#setHealth(d, health, 'admin');
    }
    return ds.length > 0;
  }

  #setHealth(d: Destination, health: Health, reason: HealthChangeReason): void {
    const from = d.health;
    d.health = health;
    d.lastChangeAt = this.#now();
    d.lastChangeReason = reason;
    healthChanges.inc({ destination: d.uri, to: health, reason });
    const fields = { uri: d.uri, from, to: health, reason, failures: d.consecutiveFailures, successes: d.consecutiveSuccesses };
    if (health === 'down') log.warn(fields, 'dispatcher destination down');
    else log.info(fields, 'dispatcher destination up');
    safeEmit(this, 'health', d.uri, health, reason);
  }

  #byUri(uri: string): Destination[] {
    const out: Destination[] = [];
    for (const s of this.sets.values()) {
      const d = s.find(uri);
      if (d) out.push(d);
    }
    return out;
  }

  // ---- routing ------------------------------------------------------------------------------

  /**
   * Serial target supplier for one call to `setName`, or undefined if the set does not exist.
   * The first `next()` applies the set's algorithm; each later one (failover) picks again among
   * the destinations not yet tried, so a destination marked down in between is skipped.
   */
  plan(setName: string, request?: DispatchRequest, opts: DispatchOptions = {}): DispatchPlan | undefined {
    const set = this.sets.get(setName);
    if (!set) return undefined;
    const algorithm = opts.algorithm ?? set.algorithm;
    const key = algorithm === 'hash' ? (opts.key ?? (request ? hashKeyOf(request, opts.hashKey ?? set.hashKey) : undefined)) : undefined;
    const plan = new DispatchPlan(this, set, algorithm, key, request?.callId);
    for (const uri of opts.exclude ?? []) plan.exclude(uri);
    return plan;
  }

  /** @internal used by DispatchPlan */
  choose(set: DestinationSet, algorithm: Algorithm, exclude: ReadonlySet<Destination>, key: string | undefined): Destination | undefined {
    if (algorithm === 'call-load') this.refreshLoad(set);
    const { destination: d, panic } = set.choose(algorithm, exclude, key, this.#random, this.#tryAllWhenAllDown);
    if (panic && d) {
      panics.inc({ set: set.name });
      rateLimitedLog(`dispatcher-all-down:${set.name}`, (suppressed) =>
        log.warn({ set: set.name, uri: d.uri, suppressed }, 'every destination of the set is down: trying one anyway'),
      );
    }
    if (d) {
      d.selected++;
      selections.inc({ set: set.name, destination: d.uri });
    } else exhausted.inc({ set: set.name });
    return d;
  }

  /** A response from `uri` came in now (any call or probe): it is alive. */
  noteResponse(uri: string): void {
    const at = this.#now();
    for (const d of this.#byUri(uri)) d.lastResponseAt = at;
  }

  /**
   * @internal a branch failed: count, and mark the destination down when it is presumed dead.
   *
   * fr_timer with no response marks the destination down unless it answered anything else
   * (another call, a probe) after this branch was sent: an overloaded node fires timers late and
   * before reading the responses already queued on its socket, and must not take a live PBX out
   * of service for that. The check runs after pending I/O (setImmediate) for the same reason.
   */
  branchFailed(set: DestinationSet, d: Destination, f: BranchFailure, sentAt: number): void {
    if (f.reason !== 'cancelled') failovers.inc({ set: set.name, reason: f.reason });
    if (f.reason === 'fr-timer' || (f.reason === 'fr-inv-timer' && this.#markDownOnInviteTimeout)) {
      setImmediate(() => {
        if (d.lastResponseAt > sentAt && f.reason === 'fr-timer') {
          aliveTimeouts.inc({ set: set.name });
          return;
        }
        this.markDown(d.uri, 'branch-timeout');
      });
    } else if (f.reason === 'transport-error') this.markDown(d.uri, 'transport-error');
  }

  // ---- call-load bookkeeping (early + confirmed dialogs per destination) ----------------------

  /** A call (early dialog) now holds a slot on `d`. Replaces a slot the Call-ID held elsewhere. */
  callStarted(callId: string, d: Destination): void {
    if (this.#callLoad) return;
    this.callEnded(callId);
    d.activeCalls++;
    this.#calls.set(callId, { destination: d, at: this.#now() });
    if (this.#calls.size % 1024 === 0) this.#sweep();
  }

  /** The call ended (BYE, failure, dialog timeout); idempotent. */
  callEnded(callId: string): void {
    const c = this.#calls.get(callId);
    if (!c) return;
    this.#calls.delete(callId);
    if (c.destination.activeCalls > 0) c.destination.activeCalls--;
  }

  /** Calls currently counted. */
  get trackedCalls(): number {
    return this.#calls.size;
  }

  /** Forgets calls older than maxCallDurationSec (their BYE was lost and no tracker told us). */
  #sweep(): void {
    const cutoff = this.#now() - this.#maxCallMs;
    for (const [id, c] of this.#calls) {
      if (c.at >= cutoff) break; // insertion order = start order
      this.callEnded(id);
    }
  }

  override on<K extends keyof DispatcherEvents>(event: K, listener: (...args: DispatcherEvents[K]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }
}

/**
 * The destinations of one call, tried one after another. The proxy calls `next()` for a branch
 * target, then exactly one of `failed()` / `answered()` for it; `release()` when the whole call
 * is over without an answer (caller CANCEL, all failed) is idempotent.
 */
export class DispatchPlan {
  readonly #dispatcher: Dispatcher;
  readonly set: DestinationSet;
  readonly algorithm: Algorithm;
  readonly key: string | undefined;
  readonly #callId: string;
  readonly #tried = new Set<Destination>();
  readonly tried: DispatchTarget[] = [];
  #current: DispatchTarget | undefined;

  constructor(dispatcher: Dispatcher, set: DestinationSet, algorithm: Algorithm, key: string | undefined, callId: string | undefined) {
    this.#dispatcher = dispatcher;
    this.set = set;
    this.algorithm = algorithm;
    this.key = key;
    this.#callId = callId ?? `plan-${Math.random().toString(36).slice(2)}`;
  }

  /** Never choose the destination `uri` (tried by a peer). */
  exclude(uri: string): void {
    for (const d of this.set.destinations) if (d.uri === uri) this.#tried.add(d);
  }

  /** Next destination to try, or undefined when none is left (the proxy answers 503 / best). */
  next(): DispatchTarget | undefined {
    if (this.#current) this.#dispatcher.callEnded(this.#callId);
    this.#current = undefined;
    const d = this.#dispatcher.choose(this.set, this.algorithm, this.#tried, this.key);
    if (!d) return undefined;
    this.#tried.add(d);
    const target: DispatchTarget = { uri: d.uri, set: this.set.name, attrs: d.attrs, attempt: this.tried.length + 1, sentAt: this.#dispatcher.now(), destination: d };
    this.tried.push(target);
    this.#current = target;
    this.#dispatcher.callStarted(this.#callId, d);
    return target;
  }

  /** The branch to `target` failed; frees its call slot and marks the destination down if dead. */
  failed(target: DispatchTarget, f: BranchFailure): void {
    if (this.#current === target) {
      this.#dispatcher.callEnded(this.#callId);
      this.#current = undefined;
    }
    this.#dispatcher.branchFailed(this.set, target.destination, f, target.sentAt);
  }

  /** Any response (provisional or final) came back on the branch to `target`. */
  responded(target: DispatchTarget): void {
    this.#dispatcher.noteResponse(target.uri);
  }

  /** The branch was answered (2xx): the call keeps its slot until `Dispatcher.callEnded(callId)`. */
  answered(target: DispatchTarget): void {
    this.#dispatcher.noteResponse(target.uri);
    if (this.#current === target) this.#current = undefined;
  }

  /** The call ended without an answer; frees any slot still held. */
  release(): void {
    if (this.#current) this.#dispatcher.callEnded(this.#callId);
    this.#current = undefined;
  }

  get callId(): string {
    return this.#callId;
  }
}

/** Hash input for a request: Call-ID, or a URI reduced to scheme:user@host:port (no params, no tag). */
export function hashKeyOf(req: DispatchRequest, key: HashKey): string {
  switch (key) {
    case 'call-id':
      return req.callId;
    case 'from-uri':
      return uriKey(req.from.uri);
    case 'to-uri':
      return uriKey(req.to.uri);
    case 'request-uri': {
      const semi = req.uri.indexOf(';');
      return (semi >= 0 ? req.uri.slice(0, semi) : req.uri).toLowerCase();
    }
  }
}

function uriKey(u: UriLike): string {
  return `${u.scheme ?? 'sip'}:${u.user ? `${u.user}@` : ''}${u.host.toLowerCase()}${u.port ? `:${u.port}` : ''}`;
}
