/**
 * Tracks calls through the proxy: early (INVITE forwarded, no final yet) and confirmed (2xx)
 * dialogs, with counts per destination key. The dispatcher's call-load algorithm reads
 * `activeCount(destination)`. A call is counted from the moment its INVITE is sent to a
 * destination, moves with serial failover, and is removed on BYE, on a failure final response,
 * on CANCEL and on dialog timeout.
 */
import type { DialogRecord, DialogStore } from '../../state/store.js';
import { gauge, counter } from '../../util/metrics.js';
import { childrenOf } from '../metric-children.js';

export interface DialogTrackerOptions {
  /**
   * An early dialog with no final response for this long is dropped.
   * @default 300000
   */
  earlyTimeoutMs?: number;
  /**
   * A confirmed dialog without BYE for this long is dropped (dialog timeout).
   * @default 10800000 (3 h)
   */
  confirmedTimeoutMs?: number;
  /** Optional shared store the records are written to (fire and forget). */
  store?: DialogStore;
  now?: () => number;
}

export interface DialogTrackerEvents {
  /** Called when a dialog ends (BYE, failure, timeout) with its last record. */
  ended?: (record: DialogRecord, reason: 'bye' | 'failure' | 'cancel' | 'timeout') => void;
}

const endedCounter = counter('tandem_dialogs_ended_total', 'Dialogs ended, by reason', ['reason']);
const endedBy = childrenOf(endedCounter);

export class DialogTracker {
  #byCallId = new Map<string, DialogRecord>();
  #perDestination = new Map<string, number>();
  #early = 0;
  #confirmed = 0;
  #opts: Required<Omit<DialogTrackerOptions, 'store' | 'now'>>;
  #store: DialogStore | undefined;
  #now: () => number;
  #timer: NodeJS.Timeout;
  #listeners: Array<NonNullable<DialogTrackerEvents['ended']>> = [];

  constructor(opts: DialogTrackerOptions = {}) {
    this.#opts = { earlyTimeoutMs: opts.earlyTimeoutMs ?? 300_000, confirmedTimeoutMs: opts.confirmedTimeoutMs ?? 10_800_000 };
    this.#store = opts.store;
    this.#now = opts.now ?? Date.now;
    this.#timer = setInterval(() => this.sweep(), 1000);
    this.#timer.unref();
    const self = this;
    gauge('tandem_dialogs', 'Dialogs tracked by the proxy, by state', ['state'], function () {
      this.set({ state: 'early' }, self.#early);
      this.set({ state: 'confirmed' }, self.#confirmed);
    });
  }

  onEnded(fn: NonNullable<DialogTrackerEvents['ended']>): void {
    this.#listeners.push(fn);
  }

  /** An INVITE was forwarded to `destination` (or moved there by failover). */
  early(callId: string, fromTag: string, destination?: string, mediaNode?: string): void {
    const now = this.#now();
    const rec = this.#byCallId.get(callId);
    if (rec) {
      if (rec.state === 'confirmed') return;
      if (rec.destination !== destination) {
        this.#dec(rec.destination);
        this.#inc(destination);
        if (destination === undefined) delete rec.destination;
        else rec.destination = destination;
      }
      rec.updatedAtMs = now;
      return;
    }
    const r: DialogRecord = { id: callId, callId, fromTag, state: 'early', createdAtMs: now, updatedAtMs: now };
    if (destination !== undefined) r.destination = destination;
    if (mediaNode !== undefined) r.mediaNode = mediaNode;
    this.#byCallId.set(callId, r);
    this.#early++;
    this.#inc(destination);
    void this.#store?.put(r).catch(() => undefined);
  }

  /** A 2xx confirmed the dialog. */
  confirm(callId: string, toTag: string | undefined): void {
    const rec = this.#byCallId.get(callId);
    if (!rec || rec.state === 'confirmed') return;
    rec.state = 'confirmed';
    if (toTag !== undefined) rec.toTag = toTag;
    rec.updatedAtMs = this.#now();
    this.#early--;
    this.#confirmed++;
    void this.#store?.put(rec).catch(() => undefined);
  }

  /** The call ended. Only early dialogs end on 'failure'/'cancel'. */
  end(callId: string, reason: 'bye' | 'failure' | 'cancel' | 'timeout'): void {
    const rec = this.#byCallId.get(callId);
    if (!rec) return;
    if ((reason === 'failure' || reason === 'cancel') && rec.state === 'confirmed') return;
    this.#byCallId.delete(callId);
    if (rec.state === 'early') this.#early--;
    else this.#confirmed--;
    this.#dec(rec.destination);
    endedBy(reason).inc();
    void this.#store?.delete(rec.id).catch(() => undefined);
    for (const l of this.#listeners) {
      try {
        l(rec, reason);
      } catch {
        /* a listener never breaks tracking */
      }
    }
  }

  get(callId: string): DialogRecord | undefined {
    return this.#byCallId.get(callId);
  }

  /** Early + confirmed dialogs at a destination (the call-load metric). */
  activeCount(destination: string): number {
    return this.#perDestination.get(destination) ?? 0;
  }

  counts(): { early: number; confirmed: number; perDestination: Record<string, number> } {
    return { early: this.#early, confirmed: this.#confirmed, perDestination: Object.fromEntries(this.#perDestination) };
  }

  sweep(): void {
    const now = this.#now();
    for (const [id, rec] of this.#byCallId) {
      const limit = rec.state === 'early' ? this.#opts.earlyTimeoutMs : this.#opts.confirmedTimeoutMs;
      if (now - rec.updatedAtMs > limit) this.end(id, 'timeout');
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #inc(dest: string | undefined): void {
    if (dest === undefined) return;
    this.#perDestination.set(dest, (this.#perDestination.get(dest) ?? 0) + 1);
  }

  #dec(dest: string | undefined): void {
    if (dest === undefined) return;
    const n = (this.#perDestination.get(dest) ?? 0) - 1;
    if (n <= 0) this.#perDestination.delete(dest);
    else this.#perDestination.set(dest, n);
  }
}
