/**
 * Tracks calls through the proxy: early (INVITE forwarded, no final yet) and confirmed (2xx)
 * dialogs, with counts per destination key. The dispatcher's call-load algorithm reads
 * `activeCount(destination)`. A call is counted from the moment its INVITE is sent to a
 * destination, moves with serial failover, and is removed on BYE, on a failure final response,
 * on CANCEL and on dialog timeout.
 */
import { ownString } from '../../util/string-calls.js';
import type { DialogRecord, DialogStore, ForwardedBranch } from '../../state/store.js';
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
  /**
   * Asked when a confirmed dialog reaches its timeout with no in-dialog request: is the call
   * still running (e.g. its media node still relays it)? true keeps the dialog for another
   * period, false ends it, undefined (cannot tell) keeps it at most twice more.
   */
  isAlive?: (record: DialogRecord) => Promise<boolean | undefined>;
  /** Optional shared store confirmed dialogs are written to (fire and forget), removed at their end. */
  store?: DialogStore;
  /** This node, written into every record as creator and owner. */
  nodeId?: string;
  /**
   * Share early dialogs too (one write per INVITE, once its branches are sent), so that a peer
   * can complete or CANCEL a call still ringing when this node dies. @default false
   */
  shareEarly?: boolean;
  /**
   * Asked before this node acts on a confirmed dialog it holds (timeout): false when a peer
   * claimed it meanwhile (a node that was frozen and came back), and then the dialog is forgotten
   * here without any side effect.
   */
  stillOwner?: (record: DialogRecord) => Promise<boolean>;
  now?: () => number;
}

export interface DialogTrackerEvents {
  /** Called when a dialog ends (BYE, failure, timeout) with its last record. */
  ended?: (record: DialogRecord, reason: 'bye' | 'failure' | 'cancel' | 'timeout') => void;
}

const endedCounter = counter('tandem_dialogs_ended_total', 'Dialogs ended, by reason', ['reason']);
const endedBy = childrenOf(endedCounter);
const adopted = counter('tandem_dialogs_adopted_total', 'Confirmed dialogs claimed from a dead node');
const keptAlive = counter('tandem_dialogs_kept_alive_total', 'Confirmed dialogs kept past their timeout because their call still runs');

export class DialogTracker {
  #byCallId = new Map<string, DialogRecord>();
  #perDestination = new Map<string, number>();
  #early = 0;
  #confirmed = 0;
  #opts: Required<Omit<DialogTrackerOptions, 'store' | 'now' | 'isAlive' | 'nodeId' | 'stillOwner' | 'shareEarly'>>;
  #shareEarly: boolean;
  #stillOwner: DialogTrackerOptions['stillOwner'];
  #nodeId: string | undefined;
  #isAlive: DialogTrackerOptions['isAlive'];
  /** Dialogs whose liveness is being asked, with how many answers in a row were "cannot tell". */
  #checking = new Set<string>();
  #unknownChecks = new Map<string, number>();
  #store: DialogStore | undefined;
  #now: () => number;
  #timer: NodeJS.Timeout;
  #listeners: Array<NonNullable<DialogTrackerEvents['ended']>> = [];

  constructor(opts: DialogTrackerOptions = {}) {
    this.#opts = { earlyTimeoutMs: opts.earlyTimeoutMs ?? 300_000, confirmedTimeoutMs: opts.confirmedTimeoutMs ?? 10_800_000 };
    this.#store = opts.store;
    this.#isAlive = opts.isAlive;
    this.#shareEarly = opts.shareEarly ?? false;
    this.#stillOwner = opts.stillOwner;
    this.#nodeId = opts.nodeId;
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
  early(callId: string, fromTag: string, destination?: string, mediaNode?: string, parties?: { fromUri: string; toUri: string }, cseq?: number): void {
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
    // Own copies: read off the INVITE, they are slices of its text and would keep it alive for
    // the whole call.
    const id = ownString(callId);
    const r: DialogRecord = { id, callId: id, fromTag: ownString(fromTag), state: 'early', createdAtMs: now, updatedAtMs: now };
    if (destination !== undefined) r.destination = destination;
    if (mediaNode !== undefined) r.mediaNode = mediaNode;
    if (cseq !== undefined) r.cseq = cseq;
    if (this.#nodeId !== undefined) {
      r.owner = this.#nodeId;
      r.creator = this.#nodeId;
    }
    if (parties) {
      r.fromUri = ownString(parties.fromUri);
      r.toUri = ownString(parties.toUri);
    }
    this.#byCallId.set(id, r);
    this.#early++;
    this.#inc(destination);
    // Shared when confirmed: a peer continues established calls; an early dialog is only this
    // node's (one write fewer per call, and most calls that fail never reach Redis).
  }

  /** Early dialogs are shared (their INVITE's branches written once each). */
  get sharesEarly(): boolean {
    return this.#shareEarly && this.#store !== undefined;
  }

  /**
   * A copy of the dialog's INVITE was sent (first try, parallel fork or serial failover): when
   * early dialogs are shared the record, with how to CANCEL each copy, is written (the outbox
   * folds the writes of one INVITE's branches into one).
   */
  forwarded(callId: string, invite: Omit<NonNullable<DialogRecord['invite']>, 'branches'>, branch: ForwardedBranch, onDurable?: () => void): void {
    if (!this.#shareEarly || !this.#store) {
      onDurable?.();
      return;
    }
    const rec = this.#byCallId.get(callId);
    if (!rec || rec.state !== 'early') {
      onDurable?.();
      return;
    }
    if (!rec.invite) rec.invite = { ...invite, branches: [] };
    rec.invite.branches.push(branch);
    void this.#store.put(rec, onDurable).catch(() => undefined);
  }

  /** A 2xx confirmed the dialog. */
  confirm(callId: string, toTag: string | undefined): void {
    const rec = this.#byCallId.get(callId);
    if (!rec || rec.state === 'confirmed') return;
    rec.state = 'confirmed';
    if (toTag !== undefined) rec.toTag = ownString(toTag); // a slice of the 2xx's text otherwise
    rec.updatedAtMs = this.#now();
    rec.answeredAtMs = rec.updatedAtMs;
    delete rec.invite;
    this.#early--;
    this.#confirmed++;
    void this.#store?.put(rec).catch(() => undefined);
  }

  /** A confirmed dialog claimed from a dead peer: tracked here from now on (counts, timeouts). */
  adopt(record: DialogRecord): void {
    if (this.#byCallId.has(record.callId)) return;
    const r: DialogRecord = { ...record, state: 'confirmed', updatedAtMs: this.#now() };
    this.#byCallId.set(r.callId, r);
    this.#confirmed++;
    this.#inc(r.destination);
    adopted.inc();
  }

  /** Drops a dialog this node no longer owns, with no side effect (no store write, no listeners). */
  #forget(callId: string): void {
    const rec = this.#byCallId.get(callId);
    if (!rec) return;
    this.#byCallId.delete(callId);
    this.#unknownChecks.delete(callId);
    if (rec.state === 'early') this.#early--;
    else this.#confirmed--;
    this.#dec(rec.destination);
  }

  /** An in-dialog request (re-INVITE, UPDATE, INFO...) was seen: the call is alive. */
  touch(callId: string): void {
    const rec = this.#byCallId.get(callId);
    if (rec) rec.updatedAtMs = this.#now();
  }

  /** The call ended. Only early dialogs end on 'failure'/'cancel'. */
  end(callId: string, reason: 'bye' | 'failure' | 'cancel' | 'timeout'): void {
    const rec = this.#byCallId.get(callId);
    if (!rec) {
      // A dialog another node set up (its BYE reached us after a takeover): its shared record goes.
      if (reason === 'bye') void this.#store?.delete(callId).catch(() => undefined);
      return;
    }
    if ((reason === 'failure' || reason === 'cancel') && rec.state === 'confirmed') return;
    this.#byCallId.delete(callId);
    this.#unknownChecks.delete(callId);
    if (rec.state === 'early') this.#early--;
    else this.#confirmed--;
    this.#dec(rec.destination);
    endedBy(reason).inc();
    if (rec.state === 'confirmed' || rec.invite) void this.#store?.delete(rec.id).catch(() => undefined);
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
      if (now - rec.updatedAtMs <= limit) continue;
      if (rec.state === 'confirmed' && (this.#isAlive || this.#stillOwner)) {
        if (!this.#checking.has(id)) void this.#checkAlive(id, rec);
        continue;
      }
      this.end(id, 'timeout');
    }
  }

  /** A confirmed dialog with no request for a whole period: kept while its call still runs. */
  async #checkAlive(id: string, rec: DialogRecord): Promise<void> {
    this.#checking.add(id);
    let alive: boolean | undefined;
    try {
      if (this.#stillOwner && !(await this.#stillOwner(rec))) {
        this.#forget(id);
        return;
      }
      alive = this.#isAlive ? await this.#isAlive(rec) : false;
    } catch {
      alive = undefined;
    } finally {
      this.#checking.delete(id);
    }
    if (this.#byCallId.get(id) !== rec) return;
    const unknown = alive === undefined ? (this.#unknownChecks.get(id) ?? 0) + 1 : 0;
    if (alive === false || unknown > 2) {
      this.end(id, 'timeout');
      return;
    }
    if (unknown > 0) this.#unknownChecks.set(id, unknown);
    else this.#unknownChecks.delete(id);
    rec.updatedAtMs = this.#now();
    keptAlive.inc();
    // The shared record lives as long as the call too.
    void this.#store?.put(rec).catch(() => undefined);
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
