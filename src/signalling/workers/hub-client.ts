/**
 * A worker's side of the hub (the primary process): requests with replies, and handlers for
 * what the primary sends. Requests time out (the primary is gone or busy) instead of hanging a
 * SIP transaction.
 */
import type { HubLink, PrimaryToWorker, WorkerToPrimary } from './hub-protocol.js';

type Handler = (msg: PrimaryToWorker) => void | Promise<unknown>;

/** Requests (those with an id) that a worker sends. */
type WorkerRequest = Extract<WorkerToPrimary, { id: number }>;
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export class HubClient {
  readonly #link: HubLink;
  readonly #timeoutMs: number;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #handlers = new Map<string, Handler>();

  constructor(link: HubLink, timeoutMs = 2000) {
    this.#link = link;
    this.#timeoutMs = timeoutMs;
    link.onMessage((msg) => this.#onMessage(msg));
  }

  /** Handles messages of type `t` from the primary; a request's answer is what `fn` returns. */
  on<T extends PrimaryToWorker['t']>(t: T, fn: (msg: Extract<PrimaryToWorker, { t: T }>) => void | Promise<unknown>): void {
    this.#handlers.set(t, fn as Handler);
  }

  send(msg: WorkerToPrimary): void {
    this.#link.send(msg);
  }

  request<T>(msg: DistributiveOmit<WorkerRequest, 'id'>): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`TANDEM_ERR_HUB_TIMEOUT: no answer from the primary to ${msg.t}`));
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#link.send({ ...msg, id } as WorkerToPrimary);
    });
  }

  #onMessage(msg: PrimaryToWorker): void {
    if (msg.t === 'reply') {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) p.reject(new Error(msg.error));
      else p.resolve(msg.value);
      return;
    }
    const h = this.#handlers.get(msg.t);
    if (!h) return;
    const id = 'id' in msg ? msg.id : undefined;
    Promise.resolve()
      .then(() => h(msg))
      .then(
        (value) => {
          if (id !== undefined) this.#link.send({ t: 'reply', id, value });
        },
        (err: unknown) => {
          if (id !== undefined) this.#link.send({ t: 'reply', id, error: err instanceof Error ? err.message : String(err) });
        },
      );
  }
}
