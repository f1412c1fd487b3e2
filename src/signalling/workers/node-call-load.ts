/**
 * Active calls per dispatcher destination across the workers of one node, for the dispatcher's
 * `call-load` algorithm and `maxCalls` limits: this worker's own dialogs (exact) plus what the
 * other workers last reported (each reports within `intervalMs` of a change, through the
 * primary). A destination may briefly see up to `intervalMs` worth of another worker's new calls
 * too few.
 */
import type { CallLoadSource } from '../dispatcher/dispatcher.js';
import type { HubClient } from './hub-client.js';

export interface NodeCallLoadOptions {
  hub: HubClient;
  /** This worker's dialogs. */
  own: CallLoadSource & { counts(): { perDestination: Record<string, number> } };
  /** How often this worker's counts are compared and sent when changed, ms. @default 20 */
  intervalMs?: number;
}

export class NodeCallLoad implements CallLoadSource {
  readonly #o: NodeCallLoadOptions;
  readonly #peers = new Map<number, Record<string, number>>();
  #last = '';
  readonly #timer: NodeJS.Timeout;

  constructor(o: NodeCallLoadOptions) {
    this.#o = o;
    o.hub.on('load', (m) => {
      if (Object.keys(m.counts).length === 0) this.#peers.delete(m.index);
      else this.#peers.set(m.index, m.counts);
    });
    this.#timer = setInterval(() => this.#report(), o.intervalMs ?? 20);
    this.#timer.unref();
  }

  activeCount(destinationKey: string): number {
    let n = this.#o.own.activeCount(destinationKey);
    for (const counts of this.#peers.values()) n += counts[destinationKey] ?? 0;
    return n;
  }

  #report(): void {
    const counts = this.#o.own.counts().perDestination;
    // Few destinations: the text is the cheapest change check.
    const text = JSON.stringify(counts);
    if (text === this.#last) return;
    this.#last = text;
    this.#o.hub.send({ t: 'load', counts });
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
