/**
 * One back-end (PBX) in a dispatcher set: its SIP URI, balancing attributes, administrative state
 * (set by an operator through config or the admin API) and health (set by OPTIONS probing and by
 * failed branches).
 */

/** What an operator configures for a destination. */
export interface DestinationSpec {
  /** SIP URI of the back-end, e.g. `sip:10.0.0.5:5060;transport=udp`. */
  uri: string;
  /** Relative share for weighted algorithms (weighted round-robin, random). @default 1 */
  weight?: number;
  /** Order for the `priority` algorithm and serial failover: lower is tried first (as in DNS SRV). @default 0 */
  priority?: number;
  /** Most concurrent calls the `call-load` algorithm gives this destination; unset = unlimited. */
  maxCalls?: number;
  /** Free-form attributes (site, label, socket...) returned to the route script with the target. */
  attrs?: Record<string, string>;
}

/**
 * - `enabled`: receives new calls while healthy.
 * - `disabled`: receives nothing new; still probed so its health is known when re-enabled.
 * - `draining`: receives no new calls; calls in progress finish normally (maintenance).
 */
export type AdminState = 'enabled' | 'disabled' | 'draining';

/** Health from probing / branch failures. A destination starts `up` so traffic flows at start. */
export type Health = 'up' | 'down';

/** Why a destination changed health; logged, counted and shown by the admin API. */
export type HealthChangeReason = 'probe-failures' | 'probe-successes' | 'branch-timeout' | 'transport-error' | 'admin';

export class Destination {
  readonly uri: string;
  weight: number;
  priority: number;
  maxCalls: number | undefined;
  attrs: Record<string, string>;
  admin: AdminState = 'enabled';
  health: Health = 'up';
  /** Calls in progress (early + confirmed dialogs) routed to this destination. */
  activeCalls = 0;
  /** Consecutive probe failures / successes (reset by the opposite outcome). */
  consecutiveFailures = 0;
  consecutiveSuccesses = 0;
  /** Wall-clock time of the last health change and its reason. */
  lastChangeAt = 0;
  lastChangeReason: HealthChangeReason | undefined;
  /** Last probe outcome, for the admin API. */
  lastProbe: { at: number; status?: number; outcome: 'ok' | 'bad-status' | 'timeout' | 'error' } | undefined;
  /** Total calls this destination was selected for (first try or failover). */
  selected = 0;
  /** Last time (ms) any SIP response (call branch or probe) came back from it. */
  lastResponseAt = 0;
  /** Smooth weighted round-robin running weight (see algorithms.ts). */
  currentWeight = 0;

  constructor(spec: DestinationSpec) {
    this.uri = spec.uri;
    this.weight = spec.weight ?? 1;
    this.priority = spec.priority ?? 0;
    this.maxCalls = spec.maxCalls;
    this.attrs = { ...(spec.attrs ?? {}) };
  }

  /** May receive a new call (ignoring the call-load limit, which only `call-load` applies). */
  get available(): boolean {
    return this.admin === 'enabled' && this.health === 'up';
  }

  /** Below its call limit (always true without `maxCalls`). */
  get hasCapacity(): boolean {
    return this.maxCalls === undefined || this.activeCalls < this.maxCalls;
  }

  toJSON(): DestinationView {
    return {
      uri: this.uri,
      weight: this.weight,
      priority: this.priority,
      ...(this.maxCalls !== undefined ? { maxCalls: this.maxCalls } : {}),
      attrs: this.attrs,
      admin: this.admin,
      health: this.health,
      available: this.available,
      activeCalls: this.activeCalls,
      selected: this.selected,
      consecutiveFailures: this.consecutiveFailures,
      consecutiveSuccesses: this.consecutiveSuccesses,
      ...(this.lastChangeAt ? { lastChangeAt: new Date(this.lastChangeAt).toISOString() } : {}),
      ...(this.lastChangeReason ? { lastChangeReason: this.lastChangeReason } : {}),
      ...(this.lastProbe ? { lastProbe: { ...this.lastProbe, at: new Date(this.lastProbe.at).toISOString() } } : {}),
    };
  }
}

/** JSON view of a destination (admin API). */
export interface DestinationView {
  uri: string;
  weight: number;
  priority: number;
  maxCalls?: number;
  attrs: Record<string, string>;
  admin: AdminState;
  health: Health;
  available: boolean;
  activeCalls: number;
  selected: number;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastChangeAt?: string;
  lastChangeReason?: HealthChangeReason;
  lastProbe?: { at: string; status?: number; outcome: string };
}
