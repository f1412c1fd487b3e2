import { EventEmitter } from 'node:events';
import { safeEmit } from '../util/safe-emit.js';

/** Kinds of cluster events shown on the dashboard's timeline and by `tandem status`. */
export type ClusterEventKind =
  | 'node-up'
  | 'node-down'
  | 'vip-moved'
  | 'vip-free'
  | 'lease-taken'
  | 'redis-down'
  | 'redis-up'
  | 'redis-failover'
  | 'pbx-up'
  | 'pbx-down';

/** One entry of the timeline. */
export interface ClusterEvent {
  /** Grows by one per event on this node; clients ask for what came after a seq. */
  seq: number;
  atMs: number;
  kind: ClusterEventKind;
  /** What it is about: a node id, a VIP, a PBX URI, a Redis address. */
  subject: string;
  text: string;
  /** The node that saw it. */
  seenBy: string;
}

export interface EventLogEvents {
  event: [ClusterEvent];
}

/** Bounded ring of the latest cluster events as this node saw them. */
export class EventLog extends EventEmitter<EventLogEvents> {
  readonly #max: number;
  readonly #seenBy: string;
  #events: ClusterEvent[] = [];
  #seq = 0;

  constructor(seenBy: string, max = 500) {
    super();
    this.#seenBy = seenBy;
    this.#max = max;
  }

  add(kind: ClusterEventKind, subject: string, text: string, atMs = Date.now()): ClusterEvent {
    const e: ClusterEvent = { seq: ++this.#seq, atMs, kind, subject, text, seenBy: this.#seenBy };
    this.#events.push(e);
    if (this.#events.length > this.#max) this.#events.splice(0, this.#events.length - this.#max);
    safeEmit(this, 'event', e);
    return e;
  }

  /** Events after `afterSeq`, newest last, at most `limit`. */
  since(afterSeq = 0, limit = 100): ClusterEvent[] {
    const out = this.#events.filter((e) => e.seq > afterSeq);
    return out.slice(Math.max(0, out.length - limit));
  }

  get size(): number {
    return this.#events.length;
  }
}
