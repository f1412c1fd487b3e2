/**
 * The primary's side of the state shared by the workers of one node when there is no Redis
 * (see worker-stores.ts): the location replica new workers start from, nonce counts, failed
 * authentications and blocks. Also the request/reply plumbing the primary uses to ask workers
 * (metrics, status, VIP binds).
 */
import { AuthFailureTracker } from '../../sip/auth/digest-server.js';
import { MemoryNonceCountStore } from '../../state/memory/memory-nonce-count-store.js';
import type { Binding } from '../../state/store.js';
import type { PrimaryToWorker, WorkerToPrimary } from './hub-protocol.js';
import { PendingReplies } from './pending-replies.js';

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
type PrimaryRequest = Extract<PrimaryToWorker, { id: number }>;

export interface WorkerHubOptions {
  /** Sends to worker `index`; false when it is not running. */
  send(index: number, msg: PrimaryToWorker): boolean;
  /** Indexes of the workers running now. */
  live(): number[];
  auth: { maxFailures: number; failureWindowSec: number; blockSec: number };
  /** Keep the bindings for workers that start (no Redis: the primary's copy is the node's). @default true */
  keepBindings?: boolean;
  /** How long a worker gets to answer, ms. @default 2000 */
  timeoutMs?: number;
}

export class WorkerHub {
  readonly #o: WorkerHubOptions;
  readonly #aors = new Map<string, Binding[]>();
  readonly #nonces = new MemoryNonceCountStore();
  readonly #failures: AuthFailureTracker;
  readonly #pending = new PendingReplies();
  readonly #sweep: NodeJS.Timeout;

  constructor(o: WorkerHubOptions) {
    this.#o = o;
    this.#failures = new AuthFailureTracker({ maxFailures: o.auth.maxFailures, windowSec: o.auth.failureWindowSec, blockSec: o.auth.blockSec });
    this.#sweep = setInterval(() => this.#purge(), 10_000);
    this.#sweep.unref();
  }

  /** Bindings the node holds (the primary's replica). */
  get bindingCount(): number {
    let n = 0;
    const now = Date.now();
    for (const list of this.#aors.values()) for (const b of list) if (b.expiresAtMs > now) n++;
    return n;
  }

  /** Current bindings of an AOR, from the primary's copy (no Redis). */
  bindingsOf(aor: string): Binding[] {
    const now = Date.now();
    return (this.#aors.get(aor) ?? []).filter((b) => b.expiresAtMs > now);
  }

  get aorCount(): number {
    return this.#aors.size;
  }

  /** What a worker that (re)starts is given before it serves. */
  snapshot(): PrimaryToWorker {
    this.#purge();
    return { t: 'locSnapshot', entries: [...this.#aors] };
  }

  /** Sends a request to worker `index` and waits for its reply. */
  request<T>(index: number, msg: DistributiveOmit<PrimaryRequest, 'id'>): Promise<T> {
    const { id, reply } = this.#pending.add<T>(index, this.#o.timeoutMs ?? 2000, () => new Error(`TANDEM_ERR_WORKER_TIMEOUT: worker ${index} did not answer ${msg.t}`));
    if (!this.#o.send(index, { ...msg, id } as PrimaryToWorker)) this.#pending.fail(id, new Error(`TANDEM_ERR_WORKER_DOWN: worker ${index} is not running`));
    return reply;
  }

  /** Asks every running worker; answers of those that fail are left out. */
  async requestAll<T>(msg: DistributiveOmit<PrimaryRequest, 'id'>): Promise<Array<{ index: number; value: T }>> {
    const live = this.#o.live();
    const r = await Promise.allSettled(live.map((i) => this.request<T>(i, msg)));
    const out: Array<{ index: number; value: T }> = [];
    r.forEach((x, k) => {
      if (x.status === 'fulfilled') out.push({ index: live[k]!, value: x.value });
    });
    return out;
  }

  /** A worker exited: what it was asked fails now instead of at its timeout; its calls count no more. */
  workerGone(index: number): void {
    for (const i of this.#o.live()) if (i !== index) this.#o.send(i, { t: 'load', index, counts: {} });
    this.#pending.failPeer(index, () => new Error(`TANDEM_ERR_WORKER_DOWN: worker ${index} exited`));
  }

  /** A message from worker `index`. */
  handle(index: number, msg: WorkerToPrimary): void {
    switch (msg.t) {
      case 'reply':
        this.#pending.settle(msg.id, msg.error, msg.value);
        return;
      case 'setBindings':
        void this.#replicate(index, msg.aor, msg.bindings).then(() => this.#o.send(index, { t: 'reply', id: msg.id }));
        return;
      case 'nonce':
        void this.#nonces.accept(msg.nonce, msg.nc, msg.ttlSec).then((value) => this.#o.send(index, { t: 'reply', id: msg.id, value }));
        return;
      case 'authFailure':
        if (this.#failures.recordFailure(msg.source)) {
          const until = Date.now() + this.#o.auth.blockSec * 1000;
          for (const i of this.#o.live()) this.#o.send(i, { t: 'block', source: msg.source, untilMs: until });
        }
        return;
      case 'load':
        for (const i of this.#o.live()) if (i !== index) this.#o.send(i, { t: 'load', index, counts: msg.counts });
        return;
      case 'adopt':
        this.#o.send(msg.index, msg);
        return;
      case 'authSuccess':
        this.#failures.recordSuccess(msg.source);
        return;
      default:
        return;
    }
  }

  async #replicate(from: number, aor: string, bindings: Binding[]): Promise<void> {
    if (this.#o.keepBindings === false) {
      // Redis holds them.
    } else if (bindings.length === 0) this.#aors.delete(aor);
    else this.#aors.set(aor, bindings);
    const others = this.#o.live().filter((i) => i !== from);
    // A worker that does not answer (stuck, exiting) does not hold the REGISTER longer than the timeout.
    await Promise.allSettled(others.map((i) => this.request(i, { t: 'loc', aor, bindings })));
  }

  #purge(): void {
    const now = Date.now();
    for (const [aor, list] of this.#aors) {
      const keep = list.filter((b) => b.expiresAtMs > now);
      if (keep.length === 0) this.#aors.delete(aor);
      else if (keep.length !== list.length) this.#aors.set(aor, keep);
    }
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#pending.clear();
  }
}
