import { isIP } from 'node:net';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter, gauge } from '../../util/metrics.js';
import type { NgRequest } from '../../ng/ng-request.js';
import { describeSdp, parseSdp, rewriteSdp, serializeSdp, type AddressFamily, type SdpDocument, type SdpMediaInfo } from '../../sdp/sdp.js';
import type { RelayEngine, PairStats, LegStats, Endpoint, Side, LegPorts, AllocatedPair } from '../relay/relay-engine.js';
import type { Result } from '../../util/result.js';
import { estimateMosX10 } from './mos.js';

const log = createLogger('sessions');

const mCreated = counter('tandem_media_sessions_created_total', 'media sessions (calls) created by offer');
const mEnded = counter('tandem_media_sessions_ended_total', 'media sessions ended, by reason', ['reason']);
const mRejected = counter('tandem_media_sessions_rejected_total', 'offers refused, by reason', ['reason']);

/** The relay operations sessions use (a RelayEngine). */
export type RelayApi = Pick<RelayEngine, 'allocatePair' | 'setPeer' | 'release' | 'stats' | 'idlePairs' | 'totals' | 'advertisedAddress'>;

/** Options of {@link SessionManager}. */
export interface SessionManagerOptions {
  relay: RelayApi;
  /** Address written into SDP. @default relay.advertisedAddress */
  advertisedAddress?: string;
  /** New calls beyond this many are refused with `load limit` (or an error). 0 = no limit. @default 0 */
  maxSessions?: number;
  /** A call with no media (and no signalling) for this long is torn down, ms. @default 60_000 */
  noMediaTimeoutMs?: number;
  /** Hard limit on a call's life, ms. @default 10_800_000 (3 h) */
  maxSessionMs?: number;
  /**
   * Relay pairs kept allocated ahead of need, so an offer does not wait for a worker to bind
   * sockets. They count against the port range like any pair. 0 disables.
   * @default 0
   */
  sparePairs?: number;
  /** How often timeouts are checked, ms. @default min(5000, noMediaTimeoutMs / 2, maxSessionMs / 2), at least 100 */
  sweepIntervalMs?: number;
}

type NgReply = Record<string, unknown>;

/** One m= line of the call: a relay pair (leg a faces tag A's party, leg b faces tag B's). */
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
}

interface Party {
  tag: string;
  label?: string;
  createdMs: number;
}

interface Call {
  callId: string;
  createdMs: number;
  lastSignalMs: number;
  a: Party;
  b?: Party;
  media: MediaSlot[];
  answered: boolean;
  deleteTimer?: NodeJS.Timeout;
  ended: boolean;
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

/**
 * Calls handled by a media node: a call per Call-ID, a party per tag (A = first offerer, B =
 * answerer) and a relay pair per m= line. `offer` allocates pairs and rewrites the SDP toward
 * the answerer (leg b's ports); `answer` completes the call and rewrites toward the offerer
 * (leg a's ports); a re-offer from either party reuses the pairs. Commands for one Call-ID are
 * serialised.
 */
export class SessionManager {
  readonly #relay: RelayApi;
  readonly #opts: Required<Omit<SessionManagerOptions, 'relay' | 'advertisedAddress'>>;
  readonly #address: string;
  readonly #family: AddressFamily;
  readonly #calls = new Map<string, Call>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #sweepTimer: NodeJS.Timeout;
  #sweeping = false;
  readonly totals: Totals = { managed: 0, rejected: 0, timeout: 0, hardLimit: 0, deleted: 0, offers: 0, answers: 0 };

  constructor(opts: SessionManagerOptions) {
    this.#relay = opts.relay;
    const noMediaTimeoutMs = opts.noMediaTimeoutMs ?? 60_000;
    const maxSessionMs = opts.maxSessionMs ?? 3 * 3600_000;
    this.#opts = {
      maxSessions: opts.maxSessions ?? 0,
      sparePairs: opts.sparePairs ?? 0,
      noMediaTimeoutMs,
      maxSessionMs,
      sweepIntervalMs: opts.sweepIntervalMs ?? Math.max(100, Math.min(5000, noMediaTimeoutMs / 2, maxSessionMs / 2)),
    };
    this.#address = opts.advertisedAddress ?? opts.relay.advertisedAddress;
    this.#family = isIP(this.#address) === 6 ? 'IP6' : 'IP4';
    this.#sweepTimer = setInterval(() => void this.#sweep(), this.#opts.sweepIntervalMs);
    this.#sweepTimer.unref();
    this.#gauge.set(0);
    this.#refill();
  }

  readonly #gauge = gauge('tandem_media_sessions', 'media sessions (calls) now');

  get size(): number {
    return this.#calls.size;
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

  /** Summary of each call for the admin API. */
  summaries(): Array<{ callId: string; createdMs: number; lastSignalMs: number; tags: string[]; answered: boolean; media: Array<{ type: string; a?: LegPorts; b?: LegPorts }> }> {
    return [...this.#calls.values()].map((c) => ({
      callId: c.callId,
      createdMs: c.createdMs,
      lastSignalMs: c.lastSignalMs,
      tags: [c.a.tag, ...(c.b ? [c.b.tag] : [])],
      answered: c.answered,
      media: c.media.map((m) => ({ type: m.type, ...(m.ports ? { a: m.ports.a, b: m.ports.b } : {}) })),
    }));
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
    return r;
  }

  /** Tops the spare pairs up to `sparePairs`; stops at the first failure (range exhausted). */
  #refill(): void {
    if (this.#refilling || this.#closed || this.#spare.length >= this.#opts.sparePairs) return;
    this.#refilling = true;
    void (async () => {
      try {
        while (!this.#closed && this.#spare.length < this.#opts.sparePairs) {
          const r = await this.#relay.allocatePair('spare');
          if (!r.ok) break;
          if (this.#closed) this.#relay.release(r.value.id);
          else this.#spare.push(r.value);
        }
      } catch (err) {
        log.warn({ err }, 'spare pair allocation failed');
      } finally {
        this.#refilling = false;
      }
    })();
  }

  #withLock<T>(callId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(callId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#locks.set(callId, tail);
    void tail.then(() => {
      if (this.#locks.get(callId) === tail) this.#locks.delete(callId);
    });
    return next;
  }

  offer(req: NgRequest): Promise<NgReply> {
    if (!req.callId) return Promise.resolve(error('No call-id in message'));
    if (!req.fromTag) return Promise.resolve(error('No from-tag in message'));
    if (req.sdp === undefined) return Promise.resolve(error('No SDP body in message'));
    return this.#withLock(req.callId, () => this.#offer(req));
  }

  answer(req: NgRequest): Promise<NgReply> {
    if (!req.callId) return Promise.resolve(error('No call-id in message'));
    if (!req.fromTag) return Promise.resolve(error('No from-tag in message'));
    if (!req.toTag) return Promise.resolve(error('No to-tag in message'));
    if (req.sdp === undefined) return Promise.resolve(error('No SDP body in message'));
    return this.#withLock(req.callId, () => this.#answer(req));
  }

  delete(req: NgRequest): Promise<NgReply> {
    if (!req.callId) return Promise.resolve(error('No call-id in message'));
    return this.#withLock(req.callId, () => this.#delete(req));
  }

  async query(req: NgRequest): Promise<NgReply> {
    if (!req.callId) return error('No call-id in message');
    const call = this.#calls.get(req.callId);
    if (!call) return error('Unknown call-id');
    return { result: 'ok', ...(await this.#callStats(call)) };
  }

  list(req: NgRequest): NgReply {
    return { result: 'ok', calls: this.callIds(req.limit ?? 32) };
  }

  async #offer(req: NgRequest): Promise<NgReply> {
    const parsed = parseSdp(req.sdp!);
    if (!parsed.ok) return error(`Failed to parse SDP: ${parsed.reason}`);
    const info = describeSdp(parsed.value);
    const now = Date.now();
    let call = this.#calls.get(req.callId!);
    const isNew = !call;
    if (!call) {
      if (this.#opts.maxSessions > 0 && this.#calls.size >= this.#opts.maxSessions) {
        this.totals.rejected++;
        mRejected.inc({ reason: 'session-limit' });
        const message = 'Parallel session limit reached';
        return req.supports.has('load-limit') ? { result: 'load limit', message } : error(message);
      }
      call = { callId: req.callId!, createdMs: now, lastSignalMs: now, a: { tag: req.fromTag!, createdMs: now }, media: [], answered: false, ended: false };
    }
    // Which party offers: A (the first offerer) or B (re-INVITE from the callee).
    let side: Side = 'a';
    if (call.b && req.fromTag === call.b.tag) side = 'b';
    else if (req.fromTag !== call.a.tag) {
      // A new from-tag on a call that was never answered: the caller retried with a new tag.
      call.a = { tag: req.fromTag!, createdMs: now };
    }
    const offerer = side === 'a' ? call.a : call.b!;
    if (req.label) offerer.label = req.label;
    if (side === 'a' && req.toTag && !call.b) call.b = { tag: req.toTag, createdMs: now };

    // Allocate a pair for each m= line that has none yet; roll back on failure.
    const fresh: number[] = [];
    for (const m of info.media) {
      const slot = call.media[m.index];
      if (m.port === 0) continue;
      if (slot?.pairId !== undefined) continue;
      const r = await this.#takePair(req.callId!);
      if (!r.ok) {
        for (const id of fresh) this.#relay.release(id);
        for (const s of call.media) {
          if (s?.pairId !== undefined && fresh.includes(s.pairId)) {
            delete s.pairId;
            delete s.ports;
            delete s.worker;
          }
        }
        this.totals.rejected++;
        mRejected.inc({ reason: r.code });
        rateLimitedLog(`offer-${r.code}`, (n) => log.warn({ callId: req.callId, code: r.code, reason: r.reason, suppressed: n }, 'offer failed: no media ports'));
        return error(r.code === 'NG_ERR_PORTS_EXHAUSTED' ? 'Ran out of ports' : r.reason);
      }
      fresh.push(r.value.id);
      call.media[m.index] = {
        index: m.index,
        type: m.type,
        protocol: m.proto,
        pairId: r.value.id,
        worker: r.value.worker,
        ports: { a: r.value.a, b: r.value.b },
        advertised: slot?.advertised ?? {},
        rtcpMux: m.rtcpMux,
      };
    }
    if (isNew) {
      this.#calls.set(call.callId, call);
      this.totals.managed++;
      mCreated.inc();
      this.#gauge.set(this.#calls.size);
    }
    call.lastSignalMs = now;
    this.totals.offers++;
    const warnings = this.#applyPeers(call, side, info.media, req);
    const other: Side = side === 'a' ? 'b' : 'a';
    const sdp = this.#rewrite(parsed.value, call, other, info.media, req, warnings);
    return ok(sdp, warnings);
  }

  async #answer(req: NgRequest): Promise<NgReply> {
    const call = this.#calls.get(req.callId!);
    if (!call) return error('Unknown call-id');
    const parsed = parseSdp(req.sdp!);
    if (!parsed.ok) return error(`Failed to parse SDP: ${parsed.reason}`);
    const info = describeSdp(parsed.value);
    const now = Date.now();
    // The answerer is the party that did not send the offer (from-tag = offerer).
    let side: Side;
    if (req.fromTag === call.a.tag) {
      side = 'b';
      if (!call.b || call.b.tag !== req.toTag) call.b = { tag: req.toTag!, createdMs: now };
    } else if (call.b && req.fromTag === call.b.tag) side = 'a';
    else if (call.b && req.toTag === call.b.tag) side = 'b';
    else return error('Unknown tag');
    const answerer = side === 'a' ? call.a : call.b!;
    if (req.label) answerer.label = req.label;
    call.lastSignalMs = now;
    call.answered = true;
    this.totals.answers++;
    const warnings = this.#applyPeers(call, side, info.media, req);
    const sdp = this.#rewrite(parsed.value, call, side === 'a' ? 'b' : 'a', info.media, req, warnings);
    return ok(sdp, warnings);
  }

  /**
   * Tells the relay where `side`'s party receives media. The address is the SDP's when
   * `trust-address` is set (or nothing else is known); otherwise the SIP source address
   * (`received-from`) with the SDP's ports, as rtpengine does for `SIP-source-address`.
   * `media-address` overrides both.
   */
  #applyPeers(call: Call, side: Side, media: SdpMediaInfo[], req: NgRequest): string[] {
    const warnings: string[] = [];
    const latch = !req.flags.has('asymmetric');
    const strictSource = req.flags.has('strict-source');
    const useSource = !req.flags.has('trust-address') && req.receivedFrom !== undefined;
    for (const m of media) {
      const slot = call.media[m.index];
      if (!slot || slot.pairId === undefined) continue;
      const sdpAddr = m.connection?.address;
      const hold = !sdpAddr || sdpAddr === '0.0.0.0' || sdpAddr === '::' || m.port === 0;
      let address: string | undefined = req.mediaAddress ?? (useSource ? req.receivedFrom!.address : sdpAddr);
      if (hold && !req.mediaAddress) address = undefined;
      slot.rtcpMux = m.rtcpMux;
      if (!address || isIP(address) === 0) {
        if (address) warnings.push(`Unusable media address ${address}`);
        slot.advertised[side] = undefined;
        this.#relay.setPeer(slot.pairId, side, {}, { latch, strictSource });
        continue;
      }
      const rtp = { address, port: m.port };
      const rtcpPort = m.rtcpMux ? m.port : (m.rtcp?.port ?? m.port + 1);
      const rtcpAddr = m.rtcp?.address && isIP(m.rtcp.address) && !useSource ? m.rtcp.address : address;
      slot.advertised[side] = rtp;
      this.#relay.setPeer(slot.pairId, side, { rtp, rtcp: { address: rtcpAddr, port: rtcpPort } }, { latch, strictSource });
    }
    return warnings;
  }

  #rewrite(doc: SdpDocument, call: Call, toward: Side, media: SdpMediaInfo[], req: NgRequest, warnings: string[]): string {
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
        const slot = call.media[m.index];
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
    const tagOk = (t: string | undefined): boolean => t === undefined || t === call?.a.tag || t === call?.b?.tag;
    if (!call || !tagOk(req.fromTag) || (req.flags.has('to-tag') && !tagOk(req.toTag))) {
      if (req.flags.has('fatal')) return error('Unknown call-id');
      return { result: 'ok', warning: 'Call-ID not found or tags didn\'t match' };
    }
    const stats = req.flags.has('fast') ? {} : await this.#callStats(call);
    const delaySec = req.deleteDelaySec ?? 0;
    if (delaySec > 0) {
      if (!call.deleteTimer) {
        call.deleteTimer = setTimeout(() => this.#end(call, 'deleted'), delaySec * 1000);
        call.deleteTimer.unref();
      }
    } else this.#end(call, 'deleted');
    return { result: 'ok', ...stats };
  }

  /** Tears a call down: releases its ports and forgets it. */
  #end(call: Call, reason: 'deleted' | 'timeout' | 'hard-limit' | 'shutdown' | 'relay-failure'): void {
    if (call.ended) return;
    call.ended = true;
    if (call.deleteTimer) clearTimeout(call.deleteTimer);
    for (const m of call.media) if (m.pairId !== undefined) this.#relay.release(m.pairId);
    if (this.#calls.get(call.callId) === call) this.#calls.delete(call.callId);
    this.#refill();
    this.#gauge.set(this.#calls.size);
    mEnded.inc({ reason });
    if (reason === 'deleted') this.totals.deleted++;
    else if (reason === 'timeout') this.totals.timeout++;
    else if (reason === 'hard-limit') this.totals.hardLimit++;
    if (reason !== 'deleted' && reason !== 'shutdown') log.info({ callId: call.callId, reason }, 'call torn down');
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#calls.size === 0) return;
    this.#sweeping = true;
    try {
      const now = Date.now();
      const idle = new Set(await this.#relay.idlePairs(this.#opts.noMediaTimeoutMs));
      for (const call of [...this.#calls.values()]) {
        if (now - call.createdMs >= this.#opts.maxSessionMs) {
          this.#end(call, 'hard-limit');
          continue;
        }
        if (now - call.lastSignalMs < this.#opts.noMediaTimeoutMs) continue;
        const pairs = call.media.filter((m) => m.pairId !== undefined);
        if (pairs.every((m) => idle.has(m.pairId!))) this.#end(call, 'timeout');
      }
    } catch (err) {
      log.error({ err }, 'session sweep failed');
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * Statistics of a call in the layout of rtpengine's `query`/`delete` replies (created,
   * last signal, SSRC, tags -> medias -> streams, totals). MOS values are an E-model estimate
   * (see mos.ts) computed at the time of the request; average, lowest and highest are the same
   * single sample.
   */
  async #callStats(call: Call): Promise<Record<string, unknown>> {
    const stats = await Promise.all(call.media.map((m) => (m?.pairId !== undefined ? this.#relay.stats(m.pairId) : Promise.resolve(undefined))));
    const nowSec = Math.floor(Date.now() / 1000);
    const ssrc: Record<string, unknown> = {};
    const totals = { RTP: { bytes: 0, packets: 0, errors: 0 }, RTCP: { bytes: 0, packets: 0, errors: 0 } };
    const tagEntry = (party: Party | undefined, side: Side, otherParty: Party | undefined): Record<string, unknown> | undefined => {
      if (!party) return undefined;
      const medias = call.media
        .map((slot, i) => ({ slot, ps: stats[i] }))
        .filter(({ slot }) => slot !== undefined)
        .map(({ slot, ps }) => mediaEntry(slot, ps, side));
      return {
        tag: party.tag,
        ...(party.label ? { label: party.label } : {}),
        created: Math.floor(party.createdMs / 1000),
        ...(otherParty ? { 'in dialogue with': otherParty.tag } : {}),
        medias,
      };
    };
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
    const tags: Record<string, unknown> = {};
    const ta = tagEntry(call.a, 'a', call.b);
    if (ta) tags[call.a.tag] = ta;
    const tb = tagEntry(call.b, 'b', call.a);
    if (tb && call.b) tags[call.b.tag] = tb;
    return {
      created: Math.floor(call.createdMs / 1000),
      created_us: (call.createdMs % 1000) * 1000,
      created_ts: call.createdMs * 1000,
      'last signal': Math.floor(call.lastSignalMs / 1000),
      'last redis update': 0,
      SSRC: ssrc,
      tags,
      totals,
    };
  }

  /**
   * A relay worker died: its sockets (and so the media of its calls) are gone and the engine has
   * dropped its pairs. Those calls are ended (counted as `relay-failure`) so that controllers
   * see the loss instead of a call that can never time out, and spare pairs on it are forgotten.
   */
  onWorkerExit(worker: number): void {
    for (let i = this.#spare.length - 1; i >= 0; i--) if (this.#spare[i]!.worker === worker) this.#spare.splice(i, 1);
    for (const call of [...this.#calls.values()]) {
      if (call.media.some((m) => m?.pairId !== undefined && m.worker === worker)) this.#end(call, 'relay-failure');
    }
    this.#refill();
  }

  /** Ends every call (node shutdown). */
  close(): void {
    this.#closed = true;
    for (const p of this.#spare.splice(0)) this.#relay.release(p.id);
    clearInterval(this.#sweepTimer);
    for (const call of [...this.#calls.values()]) this.#end(call, 'shutdown');
  }
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
