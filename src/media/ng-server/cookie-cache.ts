/**
 * Reply cache keyed by ng cookie, so that a retransmitted command is answered without running it
 * again (rtpengine's ng protocol: the cookie is the idempotency key). Two generations are
 * swapped every `generationMs`, so a reply is kept between one and two generations (30-60 s by
 * default). A duplicate that arrives while the first copy is still being handled gets the same
 * promise and waits for its reply; a reply made in the command's own turn is kept as is.
 */
export class CookieCache {
  #current = new Map<string, Buffer | Promise<Buffer>>();
  #previous = new Map<string, Buffer | Promise<Buffer>>();
  readonly #timer: NodeJS.Timeout;
  readonly #maxEntries: number;

  constructor(opts: { generationMs?: number; maxEntries?: number } = {}) {
    this.#maxEntries = opts.maxEntries ?? 100_000;
    this.#timer = setInterval(() => this.rotate(), opts.generationMs ?? 30_000);
    this.#timer.unref();
  }

  /** The reply (or in-flight reply) for a cookie, if any. */
  get(cookie: string): Buffer | Promise<Buffer> | undefined {
    return this.#current.get(cookie) ?? this.#previous.get(cookie);
  }

  /** Records the reply, or the in-flight reply, of a new cookie. A failed promise is forgotten so the command may be retried. */
  set(cookie: string, reply: Buffer | Promise<Buffer>): void {
    if (this.#current.size >= this.#maxEntries) this.rotate();
    this.#current.set(cookie, reply);
    if (!(reply instanceof Promise)) return;
    reply.catch(() => {
      if (this.#current.get(cookie) === reply) this.#current.delete(cookie);
    });
  }

  /** Drops the older generation. */
  rotate(): void {
    this.#previous = this.#current;
    this.#current = new Map();
  }

  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#current.clear();
    this.#previous.clear();
  }
}
