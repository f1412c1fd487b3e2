/**
 * The state every worker of one node must see, without Redis (`tandem start --workers N`, no
 * `--redis`): a worker's side of each store. With `--redis` the workers use the Redis stores
 * instead, as peers of the cluster.
 *
 * - Location: every worker keeps a full replica (reads stay local, as on the INVITE hot path
 *   today); a write is applied here, then sent through the primary to every other worker and
 *   resolves once each has applied it. The registrar answers the REGISTER only after that, so an
 *   INVITE any worker routes after the 200 OK finds the binding. With Redis the same relay keeps
 *   the workers' Redis caches from answering with a binding another worker just replaced.
 * - Nonce counts: one authority, the primary (an atomic check-and-set must have one place).
 * - Failed authentications: each failure is counted here (this worker's own window, at once)
 *   and at the primary (the node's window); a block decided there reaches every worker.
 */
import { AuthFailureTracker } from '../../sip/auth/digest-server.js';
import { MemoryLocationStore } from '../../state/memory/memory-location-store.js';
import type { AuthFailureStore, Binding, LocationStore, NonceCountStore } from '../../state/store.js';
import { counter } from '../../util/metrics.js';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import type { HubClient } from './hub-client.js';

const log = createLogger('workers');
const hubErrors = counter('tandem_workers_hub_errors_total', 'Shared-state requests to the primary that failed or timed out (the worker went on with its own view)', ['op']);

/**
 * Location store of one worker; a write reaches every worker of the node before it resolves.
 * Without Redis `inner` is a full replica in memory. With Redis, `inner` is the Redis store,
 * whose cache learns another writer's change only when Redis tells it (after the writer's outbox
 * has reached Redis): a write another worker of this node made is held beside it for
 * `overlayMs`, long enough for Redis to have caught up.
 */
export class ReplicatedLocationStore implements LocationStore {
  readonly #inner: LocationStore;
  readonly #hub: HubClient;
  readonly #overlayMs: number;
  readonly #overlay = new Map<string, { bindings: Binding[]; untilMs: number }>();

  constructor(hub: HubClient, inner: LocationStore = new MemoryLocationStore(), overlayMs = 0) {
    this.#hub = hub;
    this.#inner = inner;
    this.#overlayMs = overlayMs;
    hub.on('loc', async (m) => {
      if (this.#overlayMs > 0) this.#overlay.set(m.aor, { bindings: m.bindings, untilMs: Date.now() + this.#overlayMs });
      else await this.#inner.setBindings(m.aor, m.bindings);
    });
  }

  /** Bindings every worker holds (a worker that starts gets them from the primary). */
  async load(entries: Array<[string, Binding[]]>): Promise<void> {
    for (const [aor, bindings] of entries) await this.#inner.setBindings(aor, bindings);
  }

  getBindings(aor: string): Promise<Binding[]> {
    if (this.#overlay.size > 0) {
      const o = this.#overlay.get(aor);
      if (o) {
        const now = Date.now();
        if (o.untilMs > now) return Promise.resolve(o.bindings.filter((b) => b.expiresAtMs > now));
        this.#overlay.delete(aor);
      }
    }
    return this.#inner.getBindings(aor);
  }

  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    this.#overlay.delete(aor);
    await this.#inner.setBindings(aor, bindings);
    try {
      await this.#hub.request({ t: 'setBindings', aor, bindings });
    } catch (err) {
      hubErrors.inc({ op: 'location' });
      rateLimitedLog('workers-location', (s) => log.warn({ err, aor, suppressed: s }, 'location write not confirmed by every worker'));
    }
  }

  size(): number {
    return this.#inner.size();
  }

  aorCount(): number {
    return this.#inner.aorCount();
  }

  onExpired(listener: (binding: Binding) => void): void {
    this.#inner.onExpired(listener);
  }

  async close(): Promise<void> {
    this.#overlay.clear();
    await this.#inner.close();
  }
}

/** Nonce counts checked and set at the primary (one authority for the node). */
export class HubNonceCountStore implements NonceCountStore {
  readonly #hub: HubClient;
  constructor(hub: HubClient) {
    this.#hub = hub;
  }

  async accept(nonce: string, nc: number, ttlSec: number): Promise<boolean> {
    try {
      return await this.#hub.request<boolean>({ t: 'nonce', nonce, nc, ttlSec });
    } catch {
      // The digest check itself passed; as with Redis down, degrade (accept) and count.
      hubErrors.inc({ op: 'nonce' });
      return true;
    }
  }

  async close(): Promise<void> {}
}

/** Failed authentications counted here and at the primary; blocks decided there reach every worker. */
export class HubAuthFailureStore implements AuthFailureStore {
  readonly #hub: HubClient;
  readonly #local: AuthFailureTracker;
  readonly #blocks = new Map<string, number>();

  constructor(hub: HubClient, opts: { maxFailures: number; failureWindowSec: number; blockSec: number }) {
    this.#hub = hub;
    this.#local = new AuthFailureTracker({ maxFailures: opts.maxFailures, windowSec: opts.failureWindowSec, blockSec: opts.blockSec });
    hub.on('block', (m) => {
      this.#blocks.set(m.source, m.untilMs);
    });
  }

  isBlocked(source: string): boolean {
    if (this.#local.isBlocked(source)) return true;
    const until = this.#blocks.get(source);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#blocks.delete(source);
    return false;
  }

  recordFailure(source: string): boolean {
    this.#hub.send({ t: 'authFailure', source });
    return this.#local.recordFailure(source);
  }

  recordSuccess(source: string): void {
    this.#local.recordSuccess(source);
    this.#hub.send({ t: 'authSuccess', source });
  }

  get blockedCount(): number {
    const now = Date.now();
    let n = 0;
    for (const [s, until] of this.#blocks) {
      if (until > now) n++;
      else this.#blocks.delete(s);
    }
    return n;
  }

  async close(): Promise<void> {}
}
