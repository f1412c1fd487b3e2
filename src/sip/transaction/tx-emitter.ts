import { createLogger } from '../../util/logger.js';

const log = createLogger('sip-transaction');

/**
 * Minimal event emitter for transactions: listener storage is allocated only when someone
 * listens (most transactions never have a listener), and a throwing listener is logged.
 */
export class TxEmitter<E extends { [K in keyof E]: unknown[] }> {
  #listeners: { [K in keyof E]?: ((...args: E[K]) => void)[] } | undefined;

  on<K extends keyof E>(event: K, fn: (...args: E[K]) => void): this {
    this.#listeners ??= {};
    (this.#listeners[event] ??= []).push(fn);
    return this;
  }

  off<K extends keyof E>(event: K, fn: (...args: E[K]) => void): this {
    const list = this.#listeners?.[event];
    if (list) {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  /** Drops every listener of `event` (they may hold the TU's per-request state alive). */
  protected removeAllListeners<K extends keyof E>(event: K): void {
    const l = this.#listeners;
    if (l === undefined) return;
    l[event] = undefined;
    // No listener left: no storage either (a finished transaction lives on for 32 s).
    for (const k in l) if (l[k] !== undefined) return;
    this.#listeners = undefined;
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const list = this.#listeners?.[event];
    if (!list) return;
    for (const fn of [...list]) {
      try {
        fn(...args);
      } catch (err) {
        log.error({ err, event: String(event) }, 'transaction listener threw');
      }
    }
  }
}
