/**
 * The state every worker of one node must see, without Redis (`tandem start --workers N`, no
 * `--redis`): a worker's side of each store. With `--redis` the workers use the Redis stores
 * instead, as peers of the cluster.
 *
 * - Location: every worker keeps a full replica (reads stay local and synchronous, as on the
 *   INVITE hot path today); a write is applied here, then sent through the primary to every
 *   other worker and resolves once each has applied it. The registrar answers the REGISTER only
 *   after that, so an INVITE any worker routes after the 200 OK finds the binding.
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

/** Location replica of one worker; writes reach every worker before they resolve. */
export class ReplicatedLocationStore implements LocationStore {
  readonly #local = new MemoryLocationStore();
  readonly #hub: HubClient;

  constructor(hub: HubClient) {
    this.#hub = hub;
    hub.on('loc', async (m) => {
      await this.#local.setBindings(m.aor, m.bindings);
    });
    hub.on('locSnapshot', async (m) => {
      for (const [aor, bindings] of m.entries) await this.#local.setBindings(aor, bindings);
    });
  }

  getBindings(aor: string): Promise<Binding[]> {
    return this.#local.getBindings(aor);
  }

  async setBindings(aor: string, bindings: Binding[]): Promise<void> {
    await this.#local.setBindings(aor, bindings);
    try {
      await this.#hub.request({ t: 'setBindings', aor, bindings });
    } catch (err) {
      hubErrors.inc({ op: 'location' });
      rateLimitedLog('workers-location', (s) => log.warn({ err, aor, suppressed: s }, 'location write not confirmed by every worker'));
    }
  }

  size(): number {
    return this.#local.size();
  }

  aorCount(): number {
    return this.#local.aorCount();
  }

  onExpired(listener: (binding: Binding) => void): void {
    this.#local.onExpired(listener);
  }

  async close(): Promise<void> {
    await this.#local.close();
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
