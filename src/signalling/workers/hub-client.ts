/**
 * A worker's side of the hub (the primary process): requests with replies, and handlers for
 * what the primary sends. Requests time out (the primary is gone or busy) instead of hanging a
 * SIP transaction.
 */
import type { HubLink, PrimaryToWorker, WorkerToPrimary } from './hub-protocol.js';
import { PendingReplies } from './pending-replies.js';

type Handler = (msg: PrimaryToWorker) => void | Promise<unknown>;

/** Requests (those with an id) that a worker sends. */
type WorkerRequest = Extract<WorkerToPrimary, { id: number }>;
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export class HubClient {
  readonly #link: HubLink;
  readonly #timeoutMs: number;
  readonly #pending = new PendingReplies();
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
    const { id, reply } = this.#pending.add<T>(0, this.#timeoutMs, () => new Error(`TANDEM_ERR_HUB_TIMEOUT: no answer from the primary to ${msg.t}`));
    try {
      this.#link.send({ ...msg, id } as WorkerToPrimary);
    } catch (err) {
      // The link to the primary is closed: the request fails now, as a rejection.
      this.#pending.fail(id, err instanceof Error ? err : new Error(String(err)));
    }
    return reply;
  }

  #onMessage(msg: PrimaryToWorker): void {
    if (msg.t === 'reply') {
      this.#pending.settle(msg.id, msg.error, msg.value);
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
