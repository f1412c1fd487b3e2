/**
 * Requests waiting for their reply on the hub link, both ways (worker -> primary and back): an id
 * each, a timeout each (a side that is gone or busy must not hang a SIP transaction), settled by
 * the `reply` message that carries the id.
 */
interface Pending {
  /** Who was asked (the primary uses it to fail what a dead worker was asked). */
  peer: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class PendingReplies {
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  /** A new request to `peer`: its id (to send) and the promise of its reply. */
  add<T>(peer: number, timeoutMs: number, timeoutError: () => Error): { id: number; reply: Promise<T> } {
    const id = this.#nextId++;
    const reply = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(timeoutError());
      }, timeoutMs);
      this.#pending.set(id, { peer, resolve: resolve as (v: unknown) => void, reject, timer });
    });
    return { id, reply };
  }

  /** The reply to request `id` came (an error text fails it); a late or unknown id is ignored. */
  settle(id: number, error: string | undefined, value: unknown): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (error) p.reject(new Error(error));
    else p.resolve(value);
  }

  /** Fails request `id` now (it could not be sent). */
  fail(id: number, err: Error): void {
    this.settle(id, err.message || 'request failed', undefined);
  }

  /** Fails every request made to `peer` now (it exited). */
  failPeer(peer: number, err: () => Error): void {
    for (const [id, p] of this.#pending) if (p.peer === peer) this.settle(id, err().message, undefined);
  }

  clear(): void {
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
  }
}
