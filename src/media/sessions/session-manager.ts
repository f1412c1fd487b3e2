import { isIP } from 'node:net';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter, gauge } from '../../util/metrics.js';
import type { NgRequest } from '../../ng/ng-request.js';
import { describeSdp, parseSdp, rewriteSdp, serializeSdp, type AddressFamily, type SdpDocument, type SdpMediaInfo } from '../../sdp/sdp.js';
import type { RelayEngine, PairStats, LegStats, Endpoint, Side, LegPorts, AllocatedPair } from '../relay/relay-engine.js';
import type { Result } from '../../util/result.js';
import { estimateMosX10 } from './mos.js';
import type { CallExport, ChannelCounters, LegCounters, PeerExport, SlotCounters } from './session-export.js';

const log = createLogger('sessions');

const mCreated = counter('tandem_media_sessions_created_total', 'media sessions (calls) created by offer');
const mForks = counter('tandem_media_forks_created_total', 'offers with a tag pair new to a known Call-ID, given relay pairs of their own (forks)');
const mEnded = counter('tandem_media_sessions_ended_total', 'media sessions ended, by reason', ['reason']);
const mRejected = counter('tandem_media_sessions_rejected_total', 'offers refused, by reason', ['reason']);
const mSessions = gauge('tandem_media_sessions', 'media sessions (calls) now');

/** Zeroes the session metrics: after the start-up warm-up (warm-up.ts), whose synthetic calls are not traffic. */
export function resetSessionMetrics(): void {
  for (const m of [mCreated, mForks, mEnded, mRejected, mSessions]) m.reset();
}

/** The relay operations sessions use (a RelayEngine). */
export type RelayApi = Pick<RelayEngine, 'allocatePair' | 'setPeer' | 'release' | 'stats' | 'idlePairs' | 'totals' | 'advertisedAddress'>;

/** Options of {@link SessionManager}. */
export interface SessionManagerOptions {
  relay: RelayApi;
  /** Address written into SDP. @default relay.advertisedAddress */
  advertisedAddress?: string;
  /**
   * Media sessions beyond this many are refused with `load limit` (or an error). A call counts
   * one, and each fork of a call one more, since each holds its own relay pairs. 0 = no limit
   * here; the media node always passes one (`MediaConfig.maxSessions`, derived from the port
   * range unless set).
   * @default 0
   */
  maxSessions?: number;
  /** A dialogue with no media (and no signalling) for this long is torn down, ms. @default 60_000 */
  noMediaTimeoutMs?: number;
  /** Hard limit on a call's life, ms; 0 = none, as rtpengine's `final-timeout`. @default 0 */
  maxSessionMs?: number;
  /**
   * Relay pairs kept allocated ahead of need, so an offer does not wait for a worker to bind
   * sockets. They count against the port range like any pair. 0 disables.
   * @default 0
   */
  sparePairs?: number;
  /** How often timeouts are checked, ms. @default min(5000, noMediaTimeoutMs / 2, maxSessionMs / 2 when set), at least 100 */
  sweepIntervalMs?: number;
  /**
   * Called after every change of a call that a standby must know (offer, answer, latching,
   * adoption) with `ended` undefined, and once when the call ends with the reason. Session
   * replication (../cluster/) hangs on it; it must not throw and must not wait.
   */
  onChange?: (callId: string, ended: EndReason | undefined) => void;
}

type NgReply = Record<string, unknown>;

/** Work that no reply waits for (spare pairs bound) runs this long after the command that caused it, ms. */
const IDLE_WORK_DELAY_MS = 2;

/** One m= line of a dialogue: a relay pair (leg a faces party A, leg b faces party B). */
interface MediaSlot {
  index: number;
  type: string;
  protocol: string;
  pairId?: number;
  /** Relay worker that owns the pair's sockets. */
  worker?: number;
  ports?: { a: LegPorts; b: LegPorts };
  /** Peer addresses as last signalled (SDP or received-from) per side. */
  advertised: { a?: Endpoint; b?: Endpoint };
  rtcpMux: boolean;
  /** What was last given to the relay for each side (setPeer), and what it latched since. */
  peer: { a?: PeerExport; b?: PeerExport };
  /** Counters carried over from the node that ran the pair before a takeover (added to the relay's). */
  base?: SlotCounters;
  /** Latest counters (base + relay), refreshed by {@link SessionManager.refreshCounters}. */
  counters?: SlotCounters;
}

interface Party {
  tag: string;
  label?: string;
  createdMs: number;
}

/**
 * One offer/answer relationship inside a call, with relay pairs of its own: party A is the tag
 * that offered first, party B the answerer (rtpengine: two associated monologues).
 */
interface Dialogue {
  a: Party;
  b?: Party;
  media: MediaSlot[];
  answered: boolean;
  createdMs: number;
  lastSignalMs: number;
  deleteTimer?: NodeJS.Timeout;
  ended: boolean;
}

interface Call {
  callId: string;
  createdMs: number;
  lastSignalMs: number;
  /** `[0]` is the dialogue of the first offer (while it lives); forks follow in creation order. Never empty. */
  dialogues: Dialogue[];
  deleteTimer?: NodeJS.Timeout;
  ended: boolean;
  /** When the call's record was last handed to replication, ms. */
  lastRedisUpdateMs?: number;
}

/** An offer between its parse and its reply. */
interface OfferInProgress {
  req: NgRequest;
  doc: SdpDocument;
  info: ReturnType<typeof describeSdp>;
  dlg: Dialogue;
  side: Side;
  /** The call as it was found (undefined: this offer creates it). */
  call: Call | undefined;
  /** The dialogue is new (counted in the session limit by this offer). */
  isNew: boolean;
  now: number;
  from: string;
  to: string | undefined;
  /** Pairs this offer took, released if it fails. */
  fresh: number[];
}

/** Session counters for ng `statistics`. */
interface Totals {
  managed: number;
  rejected: number;
  timeout: number;
  hardLimit: number;
  deleted: number;
  offers: number;
  answers: number;
}

/** Why a call ended. `handover`: this node stopped serving it (lease lost), the call lives on elsewhere. */
export type EndReason = 'deleted' | 'timeout' | 'hard-limit' | 'shutdown' | 'relay-failure' | 'handover';

/**
 * Calls handled by a media node: a call per Call-ID, made of one or more dialogues, each with
 * two parties (tags) and a relay pair per m= line. `offer` allocates pairs and rewrites the SDP
 * toward the answerer (leg b's ports); `answer` completes the dialogue and rewrites toward the
 * offerer (leg a's ports). Commands for one Call-ID are serialised.
 *
 * Several tags in one call follow rtpengine's rules (daemon/call.c `call_get_mono_dialogue`,
 * `call_delete_branch`; call_interfaces.c `ng_call_stats`): a tag names a monologue, and a from-tag
 * the call has not seen is a new monologue (a branch), never a new name for an existing one.
 * Here each dialogue owns its relay pairs, so a party is only ever re-pointed by signalling that
 * carries its own tag:
 *
 * - **offer** (from-tag F, optional to-tag T). With T: the dialogue whose parties are exactly F
 *   and T, or else a dialogue that F offered and nobody has answered yet (T becomes its B). Without
 *   T: the first dialogue in which F is a party (re-INVITE or hold from either side, including the
 *   callee). The offer re-points F's side of that dialogue only. Otherwise (F unknown, or T naming
 *   someone F does not talk to) the offer opens a **fork**: a new dialogue with fresh pairs, counted
 *   against `maxSessions`; the existing dialogues, answered or not, are untouched.
 * - **answer** (from-tag = offerer, to-tag = answerer). The dialogue whose parties are exactly the
 *   two tags; or else one the from-tag offered, preferring one not answered yet, whose B takes the
 *   to-tag (rtpengine keeps a changed to-tag as an alias: a forked INVITE can get early media from
 *   one branch and the 200 from another). A from-tag that offered nothing is `Unknown tag`.
 * - **delete** without from-tag ends the call. With a from-tag: the dialogue of exactly from-tag
 *   and to-tag (the to-tag only counts with the `to-tag` flag, as in rtpengine), else one the
 *   from-tag offered that was never answered; without to-tag, every dialogue the from-tag is in.
 *   When that leaves no dialogue the call ends; otherwise the others keep running.
 * - **query** with tags reports the dialogues the same selection finds (the to-tag counts without
 *   a flag); without tags, all of them. `list`, the session gauge and `statistics` count calls.
 * - **timeouts** apply per dialogue (an idle fork ends alone), the hard limit per call; a relay
 *   worker's death ends the dialogues that had pairs on it. A call ends with its last dialogue.
 */
export class SessionManager {
  readonly #relay: RelayApi;
  readonly #opts: Required<Omit<SessionManagerOptions, 'relay' | 'advertisedAddress' | 'onChange'>>;
  readonly #onChange: SessionManagerOptions['onChange'];
  /** Relay pair id -> the slot that holds it (latching events). */
  readonly #slotOfPair = new Map<number, { call: Call; slot: MediaSlot }>();
  /** Calls taken over from another node (adopted), by Call-ID. */
  readonly #adopted = new Set<string>();
  /** Adopted calls bound ahead of a takeover (keepalived standby): not timed out here, their owner does that. */
  readonly #standby = new Set<string>();
  readonly #address: string;
  readonly #family: AddressFamily;
  readonly #calls = new Map<string, Call>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #sweepTimer: NodeJS.Timeout;
  #sweeping = false;
  /** Live dialogues over all calls (what `maxSessions` limits). */
  #dialogueCount = 0;
  readonly totals: Totals & { adopted: number } = { managed: 0, rejected: 0, timeout: 0, hardLimit: 0, deleted: 0, offers: 0, answers: 0, adopted: 0 };

  constructor(opts: SessionManagerOptions) {
    this.#relay = opts.relay;
    const noMediaTimeoutMs = opts.noMediaTimeoutMs ?? 60_000;
    const maxSessionMs = opts.maxSessionMs ?? 0;
    this.#opts = {
      maxSessions: opts.maxSessions ?? 0,
      sparePairs: opts.sparePairs ?? 0,
      noMediaTimeoutMs,
      maxSessionMs,
      sweepIntervalMs: opts.sweepIntervalMs ?? Math.max(100, Math.min(5000, noMediaTimeoutMs / 2, maxSessionMs > 0 ? maxSessionMs / 2 : Infinity)),
    };
    this.#onChange = opts.onChange;
    this.#address = opts.advertisedAddress ?? opts.relay.advertisedAddress;
    this.#family = isIP(this.#address) === 6 ? 'IP6' : 'IP4';
    this.#sweepTimer = setInterval(() => void this.#sweep(), this.#opts.sweepIntervalMs);
    this.#sweepTimer.unref();
    this.#gauge.set(0);
    this.#refillNow();
  }

  readonly #gauge = mSessions;

  /** Calls (Call-IDs) now. */
  get size(): number {
    return this.#calls.size;
  }

  /** Dialogues now, over all calls: calls plus their forks. */
  get dialogueCount(): number {
    return this.#dialogueCount;
  }

  /** Limits in force (defaults applied). */
  get limits(): { maxSessions: number; noMediaTimeoutMs: number; maxSessionMs: number; sparePairs: number } {
    const { maxSessions, noMediaTimeoutMs, maxSessionMs, sparePairs } = this.#opts;
    return { maxSessions, noMediaTimeoutMs, maxSessionMs, sparePairs };
  }

  /** Call-IDs, oldest first. */
  callIds(limit = Infinity): string[] {
    const out: string[] = [];
    for (const id of this.#calls.keys()) {
      if (out.length >= limit) break;
      out.push(id);
    }
    return out;
  }

  /** Summary of each call for the admin API: the call's tags and media over all its dialogues, then each dialogue. */
  summaries(offset = 0, limit = Infinity): Array<{
    callId: string;
    createdMs: number;
    lastSignalMs: number;
    tags: string[];
    answered: boolean;
    media: Array<{ type: string; a?: LegPorts; b?: LegPorts }>;
    dialogues: Array<{ tags: string[]; answered: boolean; media: Array<{ type: string; a?: LegPorts; b?: LegPorts }> }>;
  }> {
    const page: Call[] = [];
    let i = 0;
    for (const c of this.#calls.values()) {
      if (page.length >= limit) break;
      if (i++ >= offset) page.push(c);
    }
    return page.map((c) => {
      const dialogues = c.dialogues.map((d) => ({
        tags: [d.a.tag, ...(d.b ? [d.b.tag] : [])],
        answered: d.answered,
        media: d.media.filter((m) => m !== undefined).map((m) => ({ type: m.type, ...(m.ports ? { a: m.ports.a, b: m.ports.b } : {}) })),
      }));
      return {
        callId: c.callId,
        createdMs: c.createdMs,
        lastSignalMs: c.lastSignalMs,
        tags: [...new Set(dialogues.flatMap((d) => d.tags))],
        answered: dialogues.some((d) => d.answered),
        media: dialogues.flatMap((d) => d.media),
        dialogues,
      };
    });
  }

  readonly #spare: AllocatedPair[] = [];
  #refilling = false;
  #closed = false;

  /** A pair for a new m= line: a spare one if any (then refilled in the background), else a fresh one. */
  async #takePair(callKey: string): Promise<Result<AllocatedPair>> {
    const spare = this.#spare.shift();
    if (spare) {
      this.#refill();
      return { ok: true, value: spare };
    }
    const r = await this.#relay.allocatePair(callKey);
    if (r.ok) this.#refill();
    else if (r.code === 'NG_ERR_PORTS_EXHAUSTED' && (this.#refilling || this.#refillScheduled)) {
      // The last free ports are spares being bound right now (a small range, or just after start).
      this.#refillNow();
      await this.#refillRun;
      const late = this.#spare.shift();
      if (late) {
        this.#refill();
        return { ok: true, value: late };
      }
    }
    return r;
  }

  #refillScheduled = false;
  #refillTimer: NodeJS.Timeout | undefined;

  /**
   * Tops the spare pairs up to `sparePairs` shortly after the current command has been answered
   * (binding four sockets costs tens of µs of system calls; an offer that took a spare must not
   * wait for its replacement). Stops at the first failure (range exhausted).
   */
  #refill(): void {
    if (this.#refillScheduled || this.#refilling || this.#closed || this.#spare.length >= this.#opts.sparePairs) return;
    this.#refillScheduled = true;
    // A moment later rather than at once: the answer of the offer just served comes within a
    // fraction of a millisecond, and should not find the loop busy binding sockets. One timer,
    // restarted each time (no new one per offer).
    if (this.#refillTimer) this.#refillTimer.refresh();
    else {
      this.#refillTimer = setTimeout(() => {
        this.#refillScheduled = false;
        this.#refillNow();
      }, IDLE_WORK_DELAY_MS).unref();
    }
  }

  /** The refill in progress, if any. */
  #refillRun: Promise<void> | undefined;

  #refillNow(): void {
    if (this.#refilling || this.#closed || this.#spare.length >= this.#opts.sparePairs) return;
    this.#refilling = true;
    this.#refillRun = (async () => {
      try {
        while (!this.#closed && this.#spare.length < this.#opts.sparePairs) {
          // All missing at once, bound by the forwarding threads: this thread makes no system call
          // for a spare.
          const need = this.#opts.sparePairs - this.#spare.length;
          const rs = await Promise.all(Array.from({ length: need }, () => this.#relay.allocatePair('spare', { background: true })));
          let failed = false;
          for (const r of rs) {
            if (!r.ok) failed = true;
            else if (this.#closed) this.#relay.release(r.value.id);
            else this.#spare.push(r.value);
          }
          if (failed) break;
        }
      } catch (err) {
        log.warn({ err }, 'spare pair allocation failed');
      } finally {
        this.#refilling = false;
        this.#refillRun = undefined;
      }
    })();
  }

  /**
   * Runs `fn` once nothing else runs for `callId`. With nothing running (the usual case) it starts
   * at once; when it also finishes in this turn, no lock is left behind and no promise is made.
   */
  #withLock<T>(callId: string, fn: () => T | Promise<T>): T | Promise<T> {
    const prev = this.#locks.get(callId);
    let next: Promise<T>;
    if (prev) next = prev.then(fn, fn);
    else {
      const now = fn();
      if (!(now instanceof Promise)) return now;
      next = now;
    }
    const done = (): void => {
      if (this.#locks.get(callId) === tail) this.#locks.delete(callId);
    };
    const tail: Promise<void> = next.then(done, done);
    this.#locks.set(callId, tail);
    return next;
  }

  /** The reply, or its promise when ports must be bound first or another command of the call is running. */
  offer(req: NgRequest): NgReply | Promise<NgReply> {
    if (!req.callId) return error('No call-id in message');
    if (!req.fromTag) return error('No from-tag in message');
    if (req.sdp === undefined) return error('No SDP body in message');
    return this.#withLock(req.callId, () => this.#offer(req));
  }

  answer(req: NgRequest): NgReply | Promise<NgReply> {
    if (!req.callId) return error('No call-id in message');
    if (!req.fromTag) return error('No from-tag in message');
    if (!req.toTag) return error('No to-tag in message');
    if (req.sdp === undefined) return error('No SDP body in message');
    return this.#withLock(req.callId, () => this.#answer(req));
  }

  delete(req: NgRequest): NgReply | Promise<NgReply> {
    if (!req.callId) return error('No call-id in message');
    return this.#withLock(req.callId, () => this.#delete(req));
  }

  async query(req: NgRequest): Promise<NgReply> {
    if (!req.callId) return error('No call-id in message');
    const call = this.#calls.get(req.callId);
    if (!call) return error('Unknown call-id');
    return { result: 'ok', ...(await this.#callStats(call, selectDialogues(call, req.fromTag, req.toTag))) };
  }

  list(req: NgRequest): NgReply {
    return { result: 'ok', calls: this.callIds(req.limit ?? 32) };
  }

  #offer(req: NgRequest): NgReply | Promise<NgReply> {
    const parsed = parseSdp(req.sdp!);
    if (!parsed.ok) return error(`Failed to parse SDP: ${parsed.reason}`);
    const info = describeSdp(parsed.value);
    const now = Date.now();
    const from = req.fromTag!;
    const to = req.toTag !== from ? req.toTag : undefined;
    const call = this.#calls.get(req.callId!);
    const found = call ? findOfferDialogue(call, from, to) : undefined;
    if (!found && this.#opts.maxSessions > 0 && this.#dialogueCount >= this.#opts.maxSessions) {
      this.totals.rejected++;
      mRejected.inc({ reason: 'session-limit' });
      const message = 'Parallel session limit reached';
      return req.supports.has('load-limit') ? { result: 'load limit', message } : error(message);
    }
    // Counted before the first await, so concurrent offers for other Call-IDs cannot overshoot.
    if (!found) this.#dialogueCount++;
    const dlg: Dialogue = found?.dialogue ?? { a: { tag: from, createdMs: now }, media: [], answered: false, createdMs: now, lastSignalMs: now, ended: false };
    const side: Side = found?.side ?? 'a';
    const offerer = side === 'a' ? dlg.a : dlg.b!;
    if (req.label) offerer.label = req.label;
    if (side === 'a' && to && !dlg.b) dlg.b = { tag: to, createdMs: now };

    const offer: OfferInProgress = { req, doc: parsed.value, info, dlg, side, call, isNew: !found, now, from, to, fresh: [] };
    // New m= lines take spare pairs when there are enough (the usual case): the offer is then
    // answered in this turn, with no promise on the way. Otherwise pairs are bound first.
    const wanted = info.media.filter((m) => m.port !== 0 && dlg.media[m.index]?.pairId === undefined);
    if (wanted.length > this.#spare.length) return this.#offerBinding(offer, wanted);
    for (const m of wanted) this.#usePair(offer, m, this.#spare.shift()!);
    if (wanted.length > 0) this.#refill();
    return this.#completeOffer(offer);
  }

  /** The offer's new m= lines (`wanted`) get pairs one by one (spare or freshly bound); rolled back on failure. */
  async #offerBinding(offer: OfferInProgress, wanted: SdpMediaInfo[]): Promise<NgReply> {
    const { req, dlg } = offer;
    for (const m of wanted) {
      const r = await this.#takePair(req.callId!);
      if (!r.ok) {
        for (const id of offer.fresh) this.#relay.release(id);
        for (const s of dlg.media) {
          if (s?.pairId !== undefined && offer.fresh.includes(s.pairId)) {
            delete s.pairId;
            delete s.ports;
            delete s.worker;
          }
        }
        if (offer.isNew) this.#dialogueCount--;
        this.totals.rejected++;
        mRejected.inc({ reason: r.code });
        rateLimitedLog(`offer-${r.code}`, (n) => log.warn({ callId: req.callId, code: r.code, reason: r.reason, suppressed: n }, 'offer failed: no media ports'));
        return error(r.code === 'NG_ERR_PORTS_EXHAUSTED' ? 'Ran out of ports' : r.reason);
      }
      this.#usePair(offer, m, r.value);
    }
    return this.#completeOffer(offer);
  }

  #usePair(offer: OfferInProgress, m: SdpMediaInfo, pair: AllocatedPair): void {
    const slot = offer.dlg.media[m.index];
    offer.fresh.push(pair.id);
    offer.dlg.media[m.index] = {
      index: m.index,
      type: m.type,
      protocol: m.proto,
      pairId: pair.id,
      worker: pair.worker,
      ports: { a: pair.a, b: pair.b },
      advertised: slot?.advertised ?? {},
      rtcpMux: m.rtcpMux,
      peer: slot?.peer ?? {},
    };
  }

  /** Records the call, points the relay at the offerer and rewrites the SDP. */
  #completeOffer(offer: OfferInProgress): NgReply {
    const { req, dlg, side, call, now, from, to } = offer;
    if (call?.ended || dlg.ended) {
      // A delayed delete fired while pairs were being bound: nothing holds them any more.
      for (const id of offer.fresh) this.#relay.release(id);
      if (offer.isNew) this.#dialogueCount--;
      return error('Call was deleted');
    }
    let theCall = call;
    if (!call) {
      theCall = { callId: req.callId!, createdMs: now, lastSignalMs: now, dialogues: [dlg], ended: false };
      this.#calls.set(req.callId!, theCall);
      this.totals.managed++;
      mCreated.inc();
      this.#gauge.set(this.#calls.size);
    } else {
      if (offer.isNew) {
        call.dialogues.push(dlg);
        mForks.inc();
        rateLimitedLog('offer-fork', (n) => log.info({ callId: call.callId, fromTag: from, toTag: to, dialogues: call.dialogues.length, suppressed: n }, 'offer with a new tag pair: fork with its own relay pairs'));
      }
      call.lastSignalMs = now;
    }
    dlg.lastSignalMs = now;
    this.totals.offers++;
    for (const s of dlg.media) if (s?.pairId !== undefined) this.#slotOfPair.set(s.pairId, { call: theCall!, slot: s });
    const warnings = this.#applyPeers(dlg, side, offer.info.media, req);
    const other: Side = side === 'a' ? 'b' : 'a';
    const sdp = this.#rewrite(offer.doc, dlg, other, offer.info.media, req, warnings);
    this.#changed(req.callId!, undefined);
    return ok(sdp, warnings);
  }

  #answer(req: NgRequest): NgReply {
    const call = this.#calls.get(req.callId!);
    if (!call) return error('Unknown call-id');
    const parsed = parseSdp(req.sdp!);
    if (!parsed.ok) return error(`Failed to parse SDP: ${parsed.reason}`);
    const info = describeSdp(parsed.value);
    const now = Date.now();
    const from = req.fromTag!;
    const to = req.toTag!;
    if (from === to) return error('From-tag and to-tag are the same');
    const found = findAnswerDialogue(call, from, to);
    if (!found) return error('Unknown tag');
    const { dialogue: dlg, side } = found;
    if (side === 'b' && dlg.b?.tag !== to) dlg.b = { tag: to, createdMs: now };
    const answerer = side === 'a' ? dlg.a : dlg.b!;
    if (req.label) answerer.label = req.label;
    dlg.lastSignalMs = call.lastSignalMs = now;
    dlg.answered = true;
    this.totals.answers++;
    const warnings = this.#applyPeers(dlg, side, info.media, req);
    const sdp = this.#rewrite(parsed.value, dlg, side === 'a' ? 'b' : 'a', info.media, req, warnings);
    this.#changed(call.callId, undefined);
    return ok(sdp, warnings);
  }

  /**
   * Tells the relay where `side`'s party receives media. The address is the SDP's when
   * `trust-address` is set (or nothing else is known); otherwise the SIP source address
   * (`received-from`) with the SDP's ports, as rtpengine does for `SIP-source-address`.
   * `media-address` overrides both.
   */
  #applyPeers(dlg: Dialogue, side: Side, media: SdpMediaInfo[], req: NgRequest): string[] {
    const warnings: string[] = [];
    const latch = !req.flags.has('asymmetric');
    const strictSource = req.flags.has('strict-source');
    const useSource = !req.flags.has('trust-address') && req.receivedFrom !== undefined;
    for (const m of media) {
      const slot = dlg.media[m.index];
      if (!slot || slot.pairId === undefined) continue;
      const sdpAddr = m.connection?.address;
      const hold = !sdpAddr || sdpAddr === '0.0.0.0' || sdpAddr === '::' || m.port === 0;
      let address: string | undefined = req.mediaAddress ?? (useSource ? req.receivedFrom!.address : sdpAddr);
      if (hold && !req.mediaAddress) address = undefined;
      slot.rtcpMux = m.rtcpMux;
      if (!address || isIP(address) === 0) {
        if (address) warnings.push(`Unusable media address ${address}`);
        slot.advertised[side] = undefined;
        slot.peer[side] = { latch, strict: strictSource };
        this.#relay.setPeer(slot.pairId, side, {}, { latch, strictSource });
        continue;
      }
      const rtp = { address, port: m.port };
      const rtcpPort = m.rtcpMux ? m.port : (m.rtcp?.port ?? m.port + 1);
      const rtcpAddr = m.rtcp?.address && isIP(m.rtcp.address) && !useSource ? m.rtcp.address : address;
      slot.advertised[side] = rtp;
      const rtcp = { address: rtcpAddr, port: rtcpPort };
      // A new SDP address restarts latching in the relay, and so here.
      slot.peer[side] = { rtp, rtcp, latch, strict: strictSource };
      this.#relay.setPeer(slot.pairId, side, { rtp, rtcp }, { latch, strictSource });
    }
    return warnings;
  }

  #rewrite(doc: SdpDocument, dlg: Dialogue, toward: Side, media: SdpMediaInfo[], req: NgRequest, warnings: string[]): string {
    const ice = req.ice === 'keep' || req.ice === 'passthrough' ? 'keep' : 'remove';
    if (req.ice === 'force' || req.ice === 'force-relay') warnings.push('ICE is not terminated by this relay; ICE attributes removed');
    let transportProtocol: string | undefined;
    if (req.transportProtocol) {
      const plain = (p: string): boolean => p === 'RTP/AVP' || p === 'RTP/AVPF';
      if (plain(req.transportProtocol) && media.every((m) => m.port === 0 || plain(m.proto))) transportProtocol = req.transportProtocol;
      else if (!media.every((m) => m.proto === req.transportProtocol)) warnings.push(`Transport protocol ${req.transportProtocol} not supported; left unchanged`);
    }
    const out = rewriteSdp(doc, {
      address: this.#address,
      family: this.#family,
      media: media.map((m) => {
        const slot = dlg.media[m.index];
        // Leg `toward` is the one the receiving party sends to.
        return slot?.ports ? slot.ports[toward] : undefined;
      }),
      ice,
      replaceOrigin: req.replace.has('origin') || req.replace.has('origin-full'),
      rtcpAttribute: req.flags.has('no-rtcp-attribute') ? 'none' : req.flags.has('full-rtcp-attribute') ? 'full' : 'auto',
      ...(transportProtocol ? { transportProtocol } : {}),
    });
    return serializeSdp(out);
  }

  async #delete(req: NgRequest): Promise<NgReply> {
    const call = this.#calls.get(req.callId!);
    // rtpengine call_delete_ng: the to-tag only narrows a delete when the `to-tag` flag is given.
    const toTag = req.flags.has('to-tag') ? req.toTag : undefined;
    const targets = !call ? [] : !req.fromTag ? [...call.dialogues] : selectDialogues(call, req.fromTag, toTag);
    if (!call || targets.length === 0) {
      if (req.flags.has('fatal')) return error('Unknown call-id');
      return { result: 'ok', warning: 'Call-ID not found or tags didn\'t match' };
    }
    const stats = req.flags.has('fast') ? {} : await this.#callStats(call, targets);
    const whole = targets.length === call.dialogues.length;
    const delaySec = req.deleteDelaySec ?? 0;
    if (delaySec > 0) {
      if (whole) {
        call.deleteTimer ??= setTimeout(() => this.#end(call, 'deleted'), delaySec * 1000).unref();
      } else {
        for (const d of targets) d.deleteTimer ??= setTimeout(() => this.#endDialogue(call, d, 'deleted'), delaySec * 1000).unref();
      }
    } else if (whole) this.#end(call, 'deleted');
    else for (const d of targets) this.#endDialogue(call, d, 'deleted');
    return { result: 'ok', ...stats };
  }

  /** Releases a dialogue's pairs; the caller removes it from its call. `handover`: no port quarantine (the call lives on elsewhere and may come back). */
  #releaseDialogue(d: Dialogue, handover = false): void {
    if (d.ended) return;
    d.ended = true;
    if (d.deleteTimer) clearTimeout(d.deleteTimer);
    for (const m of d.media) {
      if (m?.pairId === undefined) continue;
      if (handover) this.#relay.release(m.pairId, 0);
      else this.#relay.release(m.pairId);
      this.#slotOfPair.delete(m.pairId);
    }
    this.#dialogueCount--;
  }

  /** Ends one dialogue of a call; the call ends (with `reason`) when it was the last one. */
  #endDialogue(call: Call, d: Dialogue, reason: EndReason): void {
    if (call.ended || d.ended) return;
    if (call.dialogues.length === 1 && call.dialogues[0] === d) return this.#end(call, reason);
    this.#releaseDialogue(d);
    const i = call.dialogues.indexOf(d);
    if (i >= 0) call.dialogues.splice(i, 1);
    this.#refill();
    this.#changed(call.callId, undefined);
    if (reason !== 'deleted' && reason !== 'shutdown') log.info({ callId: call.callId, tags: [d.a.tag, d.b?.tag], reason }, 'dialogue torn down; call continues');
  }

  /** Tears a call down: releases the ports of all its dialogues and forgets it. */
  #end(call: Call, reason: EndReason): void {
    if (call.ended) return;
    call.ended = true;
    if (call.deleteTimer) clearTimeout(call.deleteTimer);
    for (const d of call.dialogues) this.#releaseDialogue(d, reason === 'handover');
    if (this.#calls.get(call.callId) === call) this.#calls.delete(call.callId);
    this.#adopted.delete(call.callId);
    this.#standby.delete(call.callId);
    this.#refill();
    this.#gauge.set(this.#calls.size);
    this.#changed(call.callId, reason);
    mEnded.inc({ reason });
    if (reason === 'deleted') this.totals.deleted++;
    else if (reason === 'timeout') this.totals.timeout++;
    else if (reason === 'hard-limit') this.totals.hardLimit++;
    if (reason !== 'deleted' && reason !== 'shutdown' && reason !== 'handover') log.info({ callId: call.callId, reason }, 'call torn down');
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#calls.size === 0) return;
    this.#sweeping = true;
    try {
      const now = Date.now();
      const idle = new Set(await this.#relay.idlePairs(this.#opts.noMediaTimeoutMs));
      for (const call of [...this.#calls.values()]) {
        if (this.#standby.has(call.callId)) continue;
        if (this.#opts.maxSessionMs > 0 && now - call.createdMs >= this.#opts.maxSessionMs) {
          this.#end(call, 'hard-limit');
          continue;
        }
        for (const d of [...call.dialogues]) {
          if (now - d.lastSignalMs < this.#opts.noMediaTimeoutMs) continue;
          if (d.media.every((m) => m?.pairId === undefined || idle.has(m.pairId))) this.#endDialogue(call, d, 'timeout');
        }
      }
    } catch (err) {
      log.error({ err }, 'session sweep failed');
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * Statistics of a call's `dialogues` in the layout of rtpengine's `query`/`delete` replies
   * (created, last signal, SSRC, tags -> medias -> streams, totals). MOS values are an E-model
   * estimate (see mos.ts) computed at the time of the request; average, lowest and highest are
   * the same single sample. A tag that is a party of several dialogues lists the medias of all.
   */
  async #callStats(call: Call, dialogues: Dialogue[]): Promise<Record<string, unknown>> {
    const nowSec = Math.floor(Date.now() / 1000);
    const ssrc: Record<string, unknown> = {};
    const totals = { RTP: { bytes: 0, packets: 0, errors: 0 }, RTCP: { bytes: 0, packets: 0, errors: 0 } };
    const tags: Record<string, { medias: unknown[] } & Record<string, unknown>> = {};
    for (const d of dialogues) {
      const stats = await Promise.all(d.media.map(async (m) => withBase(m?.pairId !== undefined ? await this.#relay.stats(m.pairId) : undefined, m?.base)));
      for (const ps of stats) {
        if (!ps) continue;
        for (const leg of [ps.a, ps.b]) {
          totals.RTP.bytes += leg.rtp.bytes;
          totals.RTP.packets += leg.rtp.packets;
          totals.RTP.errors += leg.rtp.errors;
          totals.RTCP.bytes += leg.rtcp.bytes;
          totals.RTCP.packets += leg.rtcp.packets;
          totals.RTCP.errors += leg.rtcp.errors;
          for (const s of leg.ssrcs) ssrc[String(s.ssrc >>> 0)] = ssrcEntry(s, nowSec);
        }
      }
      const addParty = (party: Party | undefined, side: Side, otherParty: Party | undefined): void => {
        if (!party) return;
        const medias = d.media
          .map((slot, i) => ({ slot, ps: stats[i] }))
          .filter(({ slot }) => slot !== undefined)
          .map(({ slot, ps }) => mediaEntry(slot, ps, side));
        const known = tags[party.tag];
        if (known) {
          known.medias.push(...medias);
          return;
        }
        tags[party.tag] = {
          tag: party.tag,
          ...(party.label ? { label: party.label } : {}),
          created: Math.floor(party.createdMs / 1000),
          ...(otherParty ? { 'in dialogue with': otherParty.tag } : {}),
          medias,
        };
      };
      addParty(d.a, 'a', d.b);
      addParty(d.b, 'b', d.a);
    }
    return {
      created: Math.floor(call.createdMs / 1000),
      created_us: (call.createdMs % 1000) * 1000,
      created_ts: call.createdMs * 1000,
      'last signal': Math.floor(call.lastSignalMs / 1000),
      'last redis update': Math.floor((call.lastRedisUpdateMs ?? 0) / 1000),
      SSRC: ssrc,
      tags,
      totals,
    };
  }

  /**
   * A relay worker died: its sockets (and so the media of its dialogues) are gone and the engine
   * has dropped its pairs. Those dialogues are ended, and a call left without any ends (counted
   * as `relay-failure`) so that controllers see the loss instead of a call that can never time
   * out; spare pairs on it are forgotten.
   */
  onWorkerExit(worker: number): void {
    for (let i = this.#spare.length - 1; i >= 0; i--) if (this.#spare[i]!.worker === worker) this.#spare.splice(i, 1);
    for (const call of [...this.#calls.values()]) {
      for (const d of [...call.dialogues]) {
        if (d.media.some((m) => m?.pairId !== undefined && m.worker === worker)) this.#endDialogue(call, d, 'relay-failure');
      }
    }
    this.#refill();
  }

  #changed(callId: string, ended: EndReason | undefined): void {
    if (!this.#onChange) return;
    try {
      this.#onChange(callId, ended);
    } catch (err) {
      log.error({ err }, 'session change handler threw');
    }
  }

  /** Marks that the call's record was handed to replication now (`last redis update` in stats). */
  markReplicated(callId: string): void {
    const c = this.#calls.get(callId);
    if (c) c.lastRedisUpdateMs = Date.now();
  }

  /** Calls taken over from another node that still run here (not those only bound ahead of a takeover). */
  get adoptedCount(): number {
    return this.#adopted.size - this.#standby.size;
  }

  /** True when the call was taken over from another node. */
  isAdopted(callId: string): boolean {
    return this.#adopted.has(callId);
  }

  /**
   * The relay latched a peer (its first packet came from `endpoint`): kept, so that a node that
   * takes the call over sends there at once without waiting for the peer to speak.
   */
  onLatched(pairId: number, side: Side, kind: 'rtp' | 'rtcp', endpoint: Endpoint): void {
    const hit = this.#slotOfPair.get(pairId);
    if (!hit || hit.call.ended) return;
    const peer = (hit.slot.peer[side] ??= { latch: true, strict: false });
    const key = kind === 'rtp' ? 'latchedRtp' : 'latchedRtcp';
    const cur = peer[key];
    if (cur && cur.address === endpoint.address && cur.port === endpoint.port) return;
    peer[key] = { address: endpoint.address, port: endpoint.port };
    this.#changed(hit.call.callId, undefined);
  }

  /**
   * Everything a standby needs to carry the call on: dialogues, tags, ports, peers (signalled and
   * latched), flags and the latest counters. undefined for an unknown call.
   */
  exportCall(callId: string): CallExport | undefined {
    const c = this.#calls.get(callId);
    if (!c || c.ended) return undefined;
    return {
      callId: c.callId,
      createdMs: c.createdMs,
      lastSignalMs: c.lastSignalMs,
      dialogues: c.dialogues.map((d) => ({
        a: { ...d.a },
        ...(d.b ? { b: { ...d.b } } : {}),
        answered: d.answered,
        createdMs: d.createdMs,
        lastSignalMs: d.lastSignalMs,
        media: d.media
          .filter((m) => m !== undefined && m.ports !== undefined)
          .map((m) => ({
            index: m.index,
            type: m.type,
            protocol: m.protocol,
            rtcpMux: m.rtcpMux,
            ports: { a: { ...m.ports!.a }, b: { ...m.ports!.b } },
            advertised: { ...(m.advertised.a ? { a: { ...m.advertised.a } } : {}), ...(m.advertised.b ? { b: { ...m.advertised.b } } : {}) },
            peer: { ...(m.peer.a ? { a: { ...m.peer.a } } : {}), ...(m.peer.b ? { b: { ...m.peer.b } } : {}) },
            ...(m.counters ?? m.base ? { counters: m.counters ?? m.base } : {}),
          })),
      })),
    };
  }

  /**
   * Reads every pair's counters from the relay (plus what was carried over at a takeover) into
   * the calls, for the next records written. Called every few seconds by replication.
   */
  async refreshCounters(): Promise<void> {
    for (const call of [...this.#calls.values()]) {
      for (const d of call.dialogues) {
        for (const m of d.media) {
          if (m?.pairId === undefined) continue;
          const ps = withBase(await this.#relay.stats(m.pairId), m.base);
          if (ps) m.counters = { a: legCounters(ps.a), b: legCounters(ps.b) };
        }
      }
    }
  }

  /**
   * Takes over a call another node ran (its record from Redis): binds exactly its ports, points
   * each side at the latched address when there is one (else the signalled one), so media flows
   * at once both ways, with no re-latching needed; counters continue from the record's snapshot.
   * Fails (and holds nothing) when a port cannot be had or the call is known here already.
   */
  async adopt(rec: CallExport, opts: { standby?: boolean } = {}): Promise<Result<void>> {
    if (this.#calls.has(rec.callId)) return { ok: false, code: 'MEDIA_ERR_EXISTS', reason: 'call already known' };
    const call: Call = { callId: rec.callId, createdMs: rec.createdMs, lastSignalMs: rec.lastSignalMs, dialogues: [], ended: false };
    const taken: number[] = [];
    const fail = (code: string, reason: string): Result<void> => {
      for (const id of taken) this.#relay.release(id);
      return { ok: false, code, reason };
    };
    for (const rd of rec.dialogues) {
      const d: Dialogue = {
        a: { ...rd.a },
        ...(rd.b ? { b: { ...rd.b } } : {}),
        media: [],
        answered: rd.answered,
        createdMs: rd.createdMs,
        lastSignalMs: rd.lastSignalMs,
        ended: false,
      };
      for (const rm of rd.media) {
        const r = await this.#relay.allocatePair(rec.callId, { ports: rm.ports });
        if (!r.ok) return fail(r.code, r.reason);
        taken.push(r.value.id);
        const slot: MediaSlot = {
          index: rm.index,
          type: rm.type,
          protocol: rm.protocol,
          pairId: r.value.id,
          worker: r.value.worker,
          ports: { a: r.value.a, b: r.value.b },
          advertised: { ...rm.advertised },
          rtcpMux: rm.rtcpMux,
          peer: { ...rm.peer },
          ...(rm.counters ? { base: rm.counters, counters: rm.counters } : {}),
        };
        d.media[rm.index] = slot;
        for (const side of ['a', 'b'] as const) {
          const p = rm.peer[side];
          if (p) this.#relay.setPeer(r.value.id, side, peerSpec(p), { latch: p.latch, strictSource: p.strict });
        }
      }
      call.dialogues.push(d);
    }
    if (this.#closed) return fail('NG_ERR_RELAY_DOWN', 'closed');
    if (this.#calls.has(rec.callId) || call.dialogues.length === 0) return fail('MEDIA_ERR_EXISTS', 'call already known or empty');
    this.#calls.set(call.callId, call);
    for (const d of call.dialogues) for (const m of d.media) if (m?.pairId !== undefined) this.#slotOfPair.set(m.pairId, { call, slot: m });
    this.#dialogueCount += call.dialogues.length;
    this.#adopted.add(call.callId);
    if (opts.standby) this.#standby.add(call.callId);
    else this.totals.adopted++;
    this.#gauge.set(this.#calls.size);
    this.#changed(call.callId, undefined);
    return { ok: true, value: undefined };
  }

  /** A call of this node is left to another (the address moved away) but stays bound, following its records: no timeouts here. */
  markStandby(callId: string): void {
    if (!this.#calls.has(callId)) return;
    this.#adopted.add(callId);
    this.#standby.add(callId);
  }

  /** The calls bound ahead of a takeover are this node's now (the address arrived): timeouts apply, counted as taken over. */
  claimStandby(): number {
    const n = this.#standby.size;
    this.totals.adopted += n;
    // Their pairs saw no media here until now: the no-media timeout counts from the takeover.
    const now = Date.now();
    for (const id of this.#standby) for (const d of this.#calls.get(id)?.dialogues ?? []) d.lastSignalMs = Math.max(d.lastSignalMs, now);
    this.#standby.clear();
    return n;
  }

  /** Stops serving one call without ending it for the cluster (its ports freed at once, no record removed). */
  drop(callId: string): void {
    const c = this.#calls.get(callId);
    if (c) this.#end(c, 'handover');
  }

  /**
   * A newer record of a call adopted here (a standby that binds calls ahead of a takeover): when
   * its dialogues and ports are the same, the counters and peers are refreshed in place and true
   * returned; false when they differ (the caller drops and adopts it again).
   */
  refreshAdopted(rec: CallExport): boolean {
    const c = this.#calls.get(rec.callId);
    if (!c || c.dialogues.length !== rec.dialogues.length) return false;
    const same = rec.dialogues.every((rd, i) => {
      const d = c.dialogues[i]!;
      const slots = d.media.filter((m) => m !== undefined);
      return (
        d.a.tag === rd.a.tag &&
        d.b?.tag === rd.b?.tag &&
        slots.length === rd.media.length &&
        rd.media.every((rm) => {
          const m = d.media[rm.index];
          return m?.ports !== undefined && m.ports.a.rtpPort === rm.ports.a.rtpPort && m.ports.b.rtpPort === rm.ports.b.rtpPort && m.ports.a.rtcpPort === rm.ports.a.rtcpPort && m.ports.b.rtcpPort === rm.ports.b.rtcpPort;
        })
      );
    });
    if (!same) return false;
    c.lastSignalMs = rec.lastSignalMs;
    rec.dialogues.forEach((rd, i) => {
      const d = c.dialogues[i]!;
      d.answered = rd.answered;
      d.lastSignalMs = rd.lastSignalMs;
      for (const rm of rd.media) {
        const m = d.media[rm.index]!;
        if (rm.counters) m.base = m.counters = rm.counters;
        m.advertised = { ...rm.advertised };
        for (const side of ['a', 'b'] as const) {
          const p = rm.peer[side];
          const before = m.peer[side];
          if (!p || m.pairId === undefined) continue;
          m.peer[side] = { ...p };
          const changed =
            !sameEndpoint(p.rtp, before?.rtp) || !sameEndpoint(p.rtcp, before?.rtcp) || !sameEndpoint(p.latchedRtp, before?.latchedRtp) ||
            !sameEndpoint(p.latchedRtcp, before?.latchedRtcp) || before?.latch !== p.latch || before?.strict !== p.strict;
          if (changed) this.#relay.setPeer(m.pairId, side, peerSpec(p), { latch: p.latch, strictSource: p.strict });
        }
      }
    });
    return true;
  }

  /** Stops serving every call without ending it for the cluster (the lease went to another node). */
  handOver(): void {
    for (const call of [...this.#calls.values()]) this.#end(call, 'handover');
  }

  /** Ends every call (node shutdown). */
  close(): void {
    this.#closed = true;
    for (const p of this.#spare.splice(0)) this.#relay.release(p.id);
    clearInterval(this.#sweepTimer);
    if (this.#refillTimer) clearTimeout(this.#refillTimer);
    for (const call of [...this.#calls.values()]) this.#end(call, 'shutdown');
  }
}

/** The dialogue whose two parties are exactly `x` and `y`, in either role. */
function pairOf(call: Call, x: string, y: string): Dialogue | undefined {
  return call.dialogues.find((d) => d.b !== undefined && ((d.a.tag === x && d.b.tag === y) || (d.a.tag === y && d.b.tag === x)));
}

/** Where an offer from `from` (to `to`) belongs; undefined = a new dialogue (fork). See {@link SessionManager}. */
function findOfferDialogue(call: Call, from: string, to: string | undefined): { dialogue: Dialogue; side: Side } | undefined {
  if (to !== undefined) {
    const exact = pairOf(call, from, to);
    if (exact) return { dialogue: exact, side: exact.a.tag === from ? 'a' : 'b' };
    const unanswered = call.dialogues.find((d) => d.a.tag === from && !d.b);
    return unanswered ? { dialogue: unanswered, side: 'a' } : undefined;
  }
  for (const d of call.dialogues) {
    if (d.a.tag === from) return { dialogue: d, side: 'a' };
    if (d.b?.tag === from) return { dialogue: d, side: 'b' };
  }
  return undefined;
}

/** Where an answer from-tag `from` (the offerer), to-tag `to` (the answerer) belongs; `side` is the answerer's. */
function findAnswerDialogue(call: Call, from: string, to: string): { dialogue: Dialogue; side: Side } | undefined {
  const exact = pairOf(call, from, to);
  if (exact) return { dialogue: exact, side: exact.a.tag === to ? 'a' : 'b' };
  const offered = call.dialogues.filter((d) => d.a.tag === from);
  const d = offered.find((x) => !x.b) ?? offered.find((x) => !x.answered) ?? offered[0];
  return d ? { dialogue: d, side: 'b' } : undefined;
}

/**
 * The dialogues a `query` or `delete` names: all without tags; with both tags the dialogue of
 * exactly those two, else one `from` offered that has no answerer yet (rtpengine's last resort in
 * `call_delete_branch`); with one tag every dialogue it is a party of.
 */
function selectDialogues(call: Call, from: string | undefined, to: string | undefined): Dialogue[] {
  if (from && to && from !== to) {
    const exact = pairOf(call, from, to);
    if (exact) return [exact];
    return call.dialogues.filter((d) => d.a.tag === from && !d.b);
  }
  const tag = from ?? to;
  if (!tag) return [...call.dialogues];
  return call.dialogues.filter((d) => d.a.tag === tag || d.b?.tag === tag);
}

/** What the relay gets for a side taken over: the signalled address, and the latched one as already latched. */
function peerSpec(p: PeerExport): { rtp?: Endpoint; rtcp?: Endpoint; latchedRtp?: Endpoint; latchedRtcp?: Endpoint } {
  return {
    ...(p.rtp ?? p.latchedRtp ? { rtp: p.rtp ?? p.latchedRtp } : {}),
    ...(p.rtcp ?? p.latchedRtcp ? { rtcp: p.rtcp ?? p.latchedRtcp } : {}),
    ...(p.latchedRtp ? { latchedRtp: p.latchedRtp } : {}),
    ...(p.latchedRtcp ? { latchedRtcp: p.latchedRtcp } : {}),
  };
}

function sameEndpoint(x: Endpoint | undefined, y: Endpoint | undefined): boolean {
  return x === y || (x !== undefined && y !== undefined && x.address === y.address && x.port === y.port);
}

function channelCounters(c: { packets: number; bytes: number; errors: number; lastPacketMs: number }): ChannelCounters {
  return { packets: c.packets, bytes: c.bytes, errors: c.errors, lastPacketMs: c.lastPacketMs };
}

function legCounters(l: LegStats): LegCounters {
  return {
    rtp: channelCounters(l.rtp),
    rtcp: channelCounters(l.rtcp),
    ssrcs: l.ssrcs.map((x) => ({ ssrc: x.ssrc >>> 0, packets: x.packets, bytes: x.bytes, lost: x.lost, lastSeq: x.lastSeq, lastTimestamp: x.lastTimestamp >>> 0, jitterMs: x.jitterMs, lastPacketMs: x.lastPacketMs })),
  };
}

/** The relay's statistics of a pair plus the counters carried over from the node that ran it before. */
function withBase(ps: PairStats | undefined, base: SlotCounters | undefined): PairStats | undefined {
  if (!base) return ps;
  const leg = (l: LegStats | undefined, b: LegCounters): LegStats => {
    const ch = (c: LegStats['rtp'] | undefined, bc: ChannelCounters): LegStats['rtp'] => ({
      packets: (c?.packets ?? 0) + bc.packets,
      bytes: (c?.bytes ?? 0) + bc.bytes,
      errors: (c?.errors ?? 0) + bc.errors,
      forwarded: c?.forwarded ?? 0,
      lastPacketMs: Math.max(c?.lastPacketMs ?? 0, bc.lastPacketMs),
      ...(c?.endpoint ? { endpoint: c.endpoint } : {}),
      latched: c?.latched ?? false,
    });
    const ssrcs = new Map<number, LegStats['ssrcs'][number]>();
    for (const s of b.ssrcs) {
      ssrcs.set(s.ssrc >>> 0, { ssrc: s.ssrc, packets: s.packets, bytes: s.bytes, lost: s.lost, extendedHighestSeq: s.lastSeq, lastSeq: s.lastSeq, lastTimestamp: s.lastTimestamp, jitter: 0, jitterMs: s.jitterMs, clockRate: 8000, lastPacketMs: s.lastPacketMs });
    }
    for (const s of l?.ssrcs ?? []) {
      const prev = ssrcs.get(s.ssrc >>> 0);
      if (!prev) {
        ssrcs.set(s.ssrc >>> 0, s);
        continue;
      }
      // Packets that arrived while no node held the address: between the last sequence number the
      // old node saw and the first one this node saw.
      const first = (s.extendedHighestSeq - (s.packets + s.lost) + 1) & 0xffff;
      const gap = (first - prev.lastSeq - 1) & 0xffff;
      ssrcs.set(s.ssrc >>> 0, { ...s, packets: s.packets + prev.packets, bytes: s.bytes + prev.bytes, lost: s.lost + prev.lost + (gap < 0x8000 ? gap : 0) });
    }
    return { ports: l?.ports ?? { rtpPort: 0, rtcpPort: 0 }, rtp: ch(l?.rtp, b.rtp), rtcp: ch(l?.rtcp, b.rtcp), ssrcs: [...ssrcs.values()] };
  };
  return { id: ps?.id ?? 0, callKey: ps?.callKey ?? '', createdMs: ps?.createdMs ?? 0, a: leg(ps?.a, base.a), b: leg(ps?.b, base.b) };
}

function ok(sdp: string, warnings: string[]): NgReply {
  return { result: 'ok', sdp, ...(warnings.length ? { warning: warnings.join('; ') } : {}) };
}

function error(reason: string): NgReply {
  return { result: 'error', 'error-reason': reason };
}

function endpointDict(e: Endpoint | undefined): Record<string, unknown> | undefined {
  if (!e) return undefined;
  return { family: isIP(e.address) === 6 ? 'IPv6' : 'IPv4', address: e.address, port: e.port };
}

function mediaEntry(slot: MediaSlot, ps: PairStats | undefined, side: Side): Record<string, unknown> {
  const leg: LegStats | undefined = ps?.[side];
  const other: LegStats | undefined = ps?.[side === 'a' ? 'b' : 'a'];
  const flags = ['initialized', 'send', 'recv', ...(slot.rtcpMux ? ['rtcp-mux'] : [])];
  const stream = (kind: 'rtp' | 'rtcp'): Record<string, unknown> => {
    const ch = leg?.[kind];
    const port = slot.ports ? (kind === 'rtp' ? slot.ports[side].rtpPort : slot.ports[side].rtcpPort) : 0;
    const sflags = [kind === 'rtp' ? 'RTP' : 'RTCP', ...(ch?.endpoint ? ['filled'] : []), ...(ch?.latched ? ['confirmed'] : []), 'no kernel support'];
    // Kamailio's rtpengine module reads `SSRC` from a tag's first stream to find that party's MOS (label lookup).
    const ssrc = kind === 'rtp' && leg?.ssrcs[0] ? { SSRC: leg.ssrcs[0].ssrc >>> 0 } : {};
    return {
      ...ssrc,
      'local port': port,
      ...(ch?.endpoint ? { endpoint: endpointDict(ch.endpoint) } : {}),
      ...(slot.advertised[side] ? { 'advertised endpoint': endpointDict(kind === 'rtp' ? slot.advertised[side] : { address: slot.advertised[side]!.address, port: slot.advertised[side]!.port + 1 }) } : {}),
      'last packet': ch ? Math.floor(ch.lastPacketMs / 1000) : 0,
      flags: sflags,
      stats: { bytes: ch?.bytes ?? 0, packets: ch?.packets ?? 0, errors: ch?.errors ?? 0 },
    };
  };
  return {
    index: slot.index + 1,
    type: slot.type,
    protocol: slot.protocol,
    flags,
    'ingress SSRCs': (leg?.ssrcs ?? []).map((s) => ({ SSRC: s.ssrc >>> 0, packets: s.packets, bytes: s.bytes })),
    'egress SSRCs': (other?.ssrcs ?? []).map((s) => ({ SSRC: s.ssrc >>> 0, packets: s.packets, bytes: s.bytes })),
    streams: [stream('rtp'), stream('rtcp')],
  };
}

function ssrcEntry(s: LegStats['ssrcs'][number], nowSec: number): Record<string, unknown> {
  const expected = s.packets + Math.max(0, s.lost);
  const lossPct = expected > 0 ? (Math.max(0, s.lost) * 100) / expected : 0;
  const jitterMs = Math.round(s.jitterMs);
  const mos = estimateMosX10(lossPct, s.jitterMs);
  const sample = { MOS: mos, 'round-trip time': 0, 'round-trip time leg': 0, jitter: jitterMs, 'packet loss': Math.round(lossPct), samples: 1 };
  return {
    bytes: s.bytes,
    packets: s.packets,
    'last RTP timestamp': s.lastTimestamp >>> 0,
    'last RTP seq': s.lastSeq,
    'cumulative loss': Math.max(0, s.lost),
    'average MOS': sample,
    'lowest MOS': { ...sample, 'reported at': nowSec },
    'highest MOS': { ...sample, 'reported at': nowSec },
    'MOS progression': { interval: 0, entries: [{ MOS: mos, 'reported at': nowSec }] },
  };
}
