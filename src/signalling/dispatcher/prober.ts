import { createLogger, rateLimitedLog } from '../../util/logger.js';
import type { Dispatcher } from './dispatcher.js';
import type { ProbeOutcome } from './probe-state.js';

const log = createLogger('dispatcher-prober');

/** What one OPTIONS probe came back with. */
export type ProbeReply = { status: number } | { timeout: true } | { error: string };

/**
 * Sends one OPTIONS to `uri` and resolves with its final status, a timeout or a send error.
 * Must never reject. The real one (options-sender.ts) goes through the transaction layer.
 */
export type ProbeSender = (uri: string, timeoutMs: number) => Promise<ProbeReply>;

/** Timers, injectable so tests run the state machine on a fake clock. */
export interface ProbeClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ProberOptions {
  /** Seconds between probes of one destination (minimum 1). @default 10 */
  intervalSec?: number;
  /** A probe with no final response within this is a failure. @default min(interval, 4000 ms) */
  timeoutMs?: number;
  /** Final statuses that count as alive. @default [200] */
  okStatuses?: number[];
  clock?: ProbeClock;
}

const realClock: ProbeClock = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Probes every destination URI of a dispatcher with OPTIONS every `intervalSec` and feeds the
 * outcomes to `Dispatcher.recordProbe` (K failures -> down, M successes -> up). One probe per URI
 * is in flight at a time; URIs added at run time are picked up on the next round.
 */
export class Prober {
  readonly #dispatcher: Dispatcher;
  readonly #send: ProbeSender;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #ok: Set<number>;
  readonly #clock: ProbeClock;
  readonly #inFlight = new Set<string>();
  #timer: unknown;
  #running = false;
  /** Completed probes (for tests and the admin view). */
  rounds = 0;

  constructor(dispatcher: Dispatcher, send: ProbeSender, opts: ProberOptions = {}) {
    this.#dispatcher = dispatcher;
    this.#send = send;
    this.#intervalMs = Math.max(1, opts.intervalSec ?? 10) * 1000;
    this.#timeoutMs = opts.timeoutMs ?? Math.min(this.#intervalMs, 4000);
    this.#ok = new Set(opts.okStatuses ?? [200]);
    this.#clock = opts.clock ?? realClock;
  }

  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Starts probing; the first round goes out at once. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#round();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Probes every URI now (also used by the admin API's "probe now"). */
  probeAll(): Promise<void> {
    return Promise.all(this.#dispatcher.uris().map((u) => this.probe(u))).then(() => undefined);
  }

  /** One probe of one URI; skipped if one is already in flight. */
  async probe(uri: string): Promise<void> {
    if (this.#inFlight.has(uri)) return;
    this.#inFlight.add(uri);
    let outcome: ProbeOutcome;
    try {
      const reply = await this.#send(uri, this.#timeoutMs);
      outcome = this.classify(reply);
    } catch (err) {
      outcome = { outcome: 'error', reason: err instanceof Error ? err.message : String(err) };
    } finally {
      this.#inFlight.delete(uri);
    }
    this.rounds++;
    if (outcome.outcome === 'error') {
      const reason = outcome.reason;
      rateLimitedLog(`probe-error:${uri}`, (suppressed) => log.warn({ uri, reason, suppressed }, 'OPTIONS probe could not be sent'));
    }
    if (!this.#dispatcher.closed) this.#dispatcher.recordProbe(uri, outcome);
  }

  classify(reply: ProbeReply): ProbeOutcome {
    if ('status' in reply) return this.#ok.has(reply.status) ? { outcome: 'ok', status: reply.status } : { outcome: 'bad-status', status: reply.status };
    if ('timeout' in reply) return { outcome: 'timeout' };
    return { outcome: 'error', reason: reply.error };
  }

  #round(): void {
    if (!this.#running) return;
    for (const uri of this.#dispatcher.uris()) void this.probe(uri);
    this.#timer = this.#clock.setTimeout(() => this.#round(), this.#intervalMs);
  }
}
