import { randomBytes } from 'node:crypto';
import { DigestAuthenticator } from '../sip/auth/digest-server.js';
import { createLogger, escapeSnippet, rateLimitedLog } from '../util/logger.js';
import { LocalUasMedia, WorkerUasMedia, type UasMediaBackend } from './rtp/uas-media.js';
import type { G711Audio } from './rtp/wav.js';
import { newTag } from '../sip/message/builders.js';
import { sipErrorStatus } from '../sip/message/errors.js';
import { parseMessage } from '../sip/message/parser.js';
import type { SipRequest } from '../sip/message/sip-message.js';
import { formatNameAddr } from '../sip/uri/sip-uri.js';
import { hostPort, sdpAudioTarget, templateResponse, templateSdp } from './sip/sip-templates.js';
import { SipEndpoint, type LoadTransport, type Peer } from './sip/sip-endpoint.js';
import { UasRegistration, type UasRegistrationOptions } from './uas-registration.js';
import { StatsCollector, droppedMessages, emptyRtp, type LoadSnapshot } from './stats.js';
import type { LoadUser } from './users.js';

const log = createLogger('loadgen-uas');

/** `off`: no RTP socket (SDP port 9); `echo`: return the caller's packets; `send`: own tone/WAV stream. */
export type UasRtpMode = 'off' | 'echo' | 'send';

export interface UasOptions {
  /** Address and port to listen on (port 0 = any). */
  listen: Peer;
  /** @default 'udp' */
  transport?: LoadTransport;
  /** @default 'off' */
  rtp?: UasRtpMode;
  audio?: G711Audio;
  rtpPortMin?: number;
  rtpPortMax?: number;
  /** Delay between 180 and the final response. @default 0 */
  ringDelayMs?: number;
  /** Send 180 and never answer (the caller must CANCEL or time out). @default false */
  ringForever?: boolean;
  /** Final status for INVITEs: 200 answers; anything else rejects. @default 200 */
  answerStatus?: number;
  /** Challenge INVITE and REGISTER with digest (RFC 3261 §22) against these users. */
  authUsers?: LoadUser[];
  /** @default 'tandem' */
  realm?: string;
  /** @default 500 */
  t1Ms?: number;
  /** @default 4000 */
  t2Ms?: number;
  /** Worker threads for RTP streams (0 = in the SIP thread). @default 0 */
  rtpWorkers?: number;
  /** A confirmed call never hung up is forgotten (and its RTP closed) after this long. @default 3600000 */
  maxCallMs?: number;
  /** Register the UAS's contact at a registrar (kept refreshed, removed on close). */
  register?: UasRegistrationOptions;
}

interface InviteTx {
  branch: string;
  callId: string;
  req: SipRequest;
  source: Peer;
  toTag: string;
  /** RFC 3261 §17.2.1 states; `accepted` = 2xx sent, waiting for the ACK (RFC 6026). */
  state: 'proceeding' | 'completed' | 'accepted' | 'confirmed' | 'terminated';
  last?: Buffer;
  rtp?: { id: number; port: number };
  ringTimer?: NodeJS.Timeout;
  retransTimer?: NodeJS.Timeout;
  giveUpTimer?: NodeJS.Timeout;
  maxTimer?: NodeJS.Timeout;
  intervalMs: number;
}

/**
 * The load generator's UAS: answers INVITEs (100, 180, optional ringing delay, 200 with SDP, or
 * a configured error), echoes or sends RTP, answers BYE, CANCEL, OPTIONS and REGISTER (with an
 * optional digest challenge). Back-end PBX stand-in for tests and benchmarks.
 */
export class UasServer {
  readonly stats = new StatsCollector();
  readonly media: UasMediaBackend | undefined;
  readonly #o: Required<Omit<UasOptions, 'audio' | 'authUsers' | 'rtpPortMin' | 'rtpPortMax' | 'register'>> & UasOptions;
  #ep!: SipEndpoint;
  #byBranch = new Map<string, InviteTx>();
  #byCallId = new Map<string, InviteTx>();
  /** Non-INVITE responses by branch, two generations (~64*T1), for retransmitted requests. */
  #cache = new Map<string, Buffer>();
  #cacheOld = new Map<string, Buffer>();
  #rotator: NodeJS.Timeout | undefined;
  #auth: DigestAuthenticator | undefined;
  #registration: UasRegistration | undefined;

  private constructor(opts: UasOptions) {
    this.#o = {
      transport: 'udp',
      rtp: 'off',
      ringDelayMs: 0,
      ringForever: false,
      answerStatus: 200,
      realm: 'tandem',
      t1Ms: 500,
      t2Ms: 4000,
      rtpWorkers: 0,
      maxCallMs: 3_600_000,
      ...opts,
    };
    if (this.#o.rtp !== 'off') {
      const n = this.#o.rtpWorkers;
      const mediaOpts = {
        address: opts.listen.address,
        ...(opts.audio ? { audio: opts.audio } : {}),
        ...(opts.rtpPortMin ? { portMin: opts.rtpPortMin } : {}),
        ...(opts.rtpPortMax ? { portMax: opts.rtpPortMax } : {}),
      };
      this.media = n > 0 ? new WorkerUasMedia(mediaOpts, n) : new LocalUasMedia(mediaOpts);
    }
    if (opts.authUsers?.length) {
      const users = new Map(opts.authUsers.map((u) => [u.user, { username: u.user, password: u.password }]));
      this.#auth = new DigestAuthenticator({
        realm: this.#o.realm,
        secret: randomBytes(16),
        algorithms: ['MD5'],
        users: { lookup: (name) => users.get(name) },
      });
    }
  }

  static async start(opts: UasOptions): Promise<UasServer> {
    const uas = new UasServer(opts);
    uas.#ep = await SipEndpoint.open({ transport: uas.#o.transport, address: opts.listen.address, port: opts.listen.port, listen: true });
    uas.#ep.onMessage = (buf, from) => uas.#onMessage(buf, from);
    uas.#rotator = setInterval(() => {
      uas.#cacheOld = uas.#cache;
      uas.#cache = new Map();
    }, 40 * uas.#o.t1Ms);
    if (opts.register) {
      uas.#registration = new UasRegistration(uas.#ep, opts.register, uas.#o.t1Ms, uas.#o.t2Ms);
      try {
        await uas.#registration.register();
      } catch (err) {
        await uas.close();
        throw err;
      }
    }
    return uas;
  }

  /** Where the UAS listens (the actual port when 0 was asked). */
  get address(): Peer {
    return this.#ep.local;
  }

  get transport(): LoadTransport {
    return this.#o.transport;
  }

  snapshot(): LoadSnapshot {
    this.stats.active = this.#byCallId.size;
    return this.stats.snapshot(this.media ? this.media.snapshot() : emptyRtp());
  }

  async close(): Promise<void> {
    const reg = this.#registration;
    this.#registration = undefined;
    await reg?.unregister();
    if (this.#rotator) clearInterval(this.#rotator);
    for (const tx of this.#byBranch.values()) this.#clearTimers(tx);
    for (const tx of this.#byCallId.values()) if (tx.maxTimer) clearTimeout(tx.maxTimer);
    this.#byBranch.clear();
    this.#byCallId.clear();
    await this.media?.shutdown();
    await this.#ep.close();
  }

  #onMessage(buf: Buffer, from: Peer): void {
    const parsed = parseMessage(buf);
    if (!parsed.ok) {
      // a request with readable Via/Call-ID/CSeq... gets `400 <fault>` (RFC 3261 §8.2), never an ACK
      if (parsed.partial && parsed.partial.method !== 'ACK') this.#reply(parsed.partial, from, sipErrorStatus(parsed.code), undefined, [], '', parsed.reason);
      this.stats.strayMessages++;
      droppedMessages.inc({ role: 'uas', reason: 'unparseable' });
      rateLimitedLog('uas-garbage', (n) => log.debug({ from, reason: parsed.reason, snippet: escapeSnippet(buf), suppressed: n }, 'dropping unparseable SIP message'));
      return;
    }
    const msg = parsed.value;
    if (!msg.isRequest()) {
      if (this.#registration?.onResponse(msg)) return;
      this.stats.strayMessages++;
      droppedMessages.inc({ role: 'uas', reason: 'response' });
      return;
    }
    this.stats.countRequest(msg.method);
    // CSeq (method equal to the request's) was checked by the parser
    const branch = msg.topVia.branch ?? '';
    switch (msg.method) {
      case 'INVITE':
        return this.#onInvite(msg, from, branch);
      case 'ACK':
        return this.#onAck(msg, branch);
      case 'CANCEL':
        return this.#onCancel(msg, from, branch);
      default:
        return this.#onNonInvite(msg, from, branch);
    }
  }

  /** RFC 3261 §18.2.2 / RFC 3581: back to the source address; the source port when rport was asked. */
  #responsePeer(msg: SipRequest, from: Peer): Peer {
    if (this.#o.transport === 'tcp') return from;
    const via = msg.topVia;
    if (via.rport !== undefined) return from;
    return { address: from.address, port: via.port ?? 5060 };
  }

  #reply(req: SipRequest, from: Peer, status: number, toTag: string | undefined, extra: [string, string][] = [], body = '', reason?: string): Buffer {
    const buf = templateResponse(req, status, toTag, extra, body, reason);
    this.#ep.send(buf, this.#responsePeer(req, from));
    return buf;
  }

  #needsAuth(msg: SipRequest): boolean {
    if (!this.#auth) return false;
    const r = this.#auth.verify(msg.getAll('Authorization'), msg.method);
    return !r.ok;
  }

  #challenge(msg: SipRequest, from: Peer, toTag: string): Buffer {
    const ch = this.#auth!.challenges();
    return this.#reply(msg, from, 401, toTag, ch.map((c) => ['WWW-Authenticate', c] as [string, string]));
  }

  #onInvite(msg: SipRequest, from: Peer, branch: string): void {
    const existing = this.#byBranch.get(branch);
    if (existing) {
      // retransmission: repeat the last response (RFC 3261 §17.2.1)
      if (existing.last) this.#ep.send(existing.last, this.#responsePeer(msg, from));
      return;
    }
    const callId = msg.callId;
    const toTag = newTag();
    if (msg.toTag !== undefined) {
      // re-INVITE / in-dialog: this UAS holds no media changes; answer without state
      const d = this.#byCallId.get(callId);
      if (!d) this.#reply(msg, from, 481, undefined);
      else this.#reply(msg, from, 488, undefined, [], '', 'Not Acceptable Here');
      return;
    }
    const tx: InviteTx = { branch, callId, req: msg, source: from, toTag, state: 'proceeding', intervalMs: this.#o.t1Ms };
    this.#byBranch.set(branch, tx);
    if (this.#needsAuth(msg)) {
      this.#final(tx, 401);
      return;
    }
    this.stats.generated++;
    this.#byCallId.set(callId, tx);
    // a call neither hung up nor cancelled (the caller vanished) is forgotten eventually
    tx.maxTimer = setTimeout(() => {
      tx.maxTimer = undefined;
      this.stats.fail('max call duration');
      this.#clearTimers(tx);
      this.#byBranch.delete(tx.branch);
      this.#endDialog(tx);
    }, this.#o.maxCallMs);
    tx.last = this.#reply(msg, from, 100, undefined);
    if (this.media) {
      this.media.open(this.#o.rtp === 'echo').then(
        (s) => {
          if (tx.state !== 'proceeding') {
            this.media?.close(s.id);
            return;
          }
          tx.rtp = s;
          this.#ring(tx);
        },
        (err: Error) => {
          rateLimitedLog('uas-rtp', (n) => log.warn({ err: err.message, suppressed: n }, 'cannot open RTP socket'));
          this.stats.fail('local error: RTP port');
          this.#final(tx, 503);
        },
      );
    } else this.#ring(tx);
  }

  #ring(tx: InviteTx): void {
    tx.last = this.#reply(tx.req, tx.source, 180, tx.toTag, [['Contact', this.#contact()]]);
    if (this.#o.ringForever) return;
    if (this.#o.ringDelayMs > 0) tx.ringTimer = setTimeout(() => this.#answer(tx), this.#o.ringDelayMs);
    else this.#answer(tx);
  }

  #contact(): string {
    const l = this.#ep.local;
    return `<sip:uas@${hostPort(l.address, l.port)}${this.#o.transport === 'tcp' ? ';transport=tcp' : ''}>`;
  }

  #answer(tx: InviteTx): void {
    tx.ringTimer = undefined;
    if (tx.state !== 'proceeding') return;
    if (this.#o.answerStatus !== 200) {
      this.#final(tx, this.#o.answerStatus);
      return;
    }
    const extra: [string, string][] = [];
    // RFC 3261 §12.1.1: a 2xx copies the Record-Route values of the request
    for (const rr of tx.req.headers.all('record-route')) extra.push(['Record-Route', rr.value]);
    extra.push(['Contact', this.#contact()], ['Content-Type', 'application/sdp']);
    const pt = this.media?.payloadType ?? 0;
    const sdp = templateSdp(this.#ep.local.address, tx.rtp?.port ?? 9, pt, Math.floor(Math.random() * 1e9));
    tx.last = this.#reply(tx.req, tx.source, 200, tx.toTag, extra, sdp);
    tx.state = 'accepted';
    if (tx.rtp) {
      const remote = sdpAudioTarget(tx.req.body);
      if (this.#o.rtp === 'echo') this.media?.start(tx.rtp.id, 'echo');
      else if (remote) this.media?.start(tx.rtp.id, 'send', remote);
    }
    this.#armRetransmit(tx);
  }

  /** Final non-2xx: retransmitted per Timer G until the ACK, given up at Timer H (RFC 3261 §17.2.1). */
  #final(tx: InviteTx, status: number): void {
    if (tx.ringTimer) clearTimeout(tx.ringTimer);
    tx.ringTimer = undefined;
    if (status === 401) tx.last = this.#challenge(tx.req, tx.source, tx.toTag);
    else tx.last = this.#reply(tx.req, tx.source, status, tx.toTag);
    tx.state = 'completed';
    this.#byCallId.delete(tx.callId);
    if (tx.maxTimer) clearTimeout(tx.maxTimer);
    tx.maxTimer = undefined;
    if (tx.rtp) this.media?.close(tx.rtp.id);
    tx.rtp = undefined;
    this.#armRetransmit(tx);
  }

  /**
   * UDP only: 2xx retransmitted by the UAS core (RFC 3261 §13.3.1.4) and non-2xx by the server
   * transaction (Timer G), T1 doubling up to T2, until the ACK; given up after 64*T1.
   */
  #armRetransmit(tx: InviteTx): void {
    const reliable = this.#o.transport === 'tcp';
    if (!reliable) {
      const again = (): void => {
        if (tx.state !== 'accepted' && tx.state !== 'completed') return;
        if (tx.last) this.#ep.send(tx.last, this.#responsePeer(tx.req, tx.source));
        tx.intervalMs = Math.min(tx.intervalMs * 2, this.#o.t2Ms);
        tx.retransTimer = setTimeout(again, tx.intervalMs);
      };
      tx.retransTimer = setTimeout(again, tx.intervalMs);
    }
    tx.giveUpTimer = setTimeout(() => {
      if (tx.state === 'accepted') {
        this.stats.fail('ACK timeout');
        this.#endDialog(tx);
      }
      this.#terminate(tx);
    }, 64 * this.#o.t1Ms);
  }

  #clearTimers(tx: InviteTx): void {
    if (tx.ringTimer) clearTimeout(tx.ringTimer);
    if (tx.retransTimer) clearTimeout(tx.retransTimer);
    if (tx.giveUpTimer) clearTimeout(tx.giveUpTimer);
    tx.ringTimer = tx.retransTimer = tx.giveUpTimer = undefined;
  }

  #terminate(tx: InviteTx): void {
    this.#clearTimers(tx);
    if (tx.state !== 'confirmed') tx.state = 'terminated';
    this.#byBranch.delete(tx.branch);
  }

  #endDialog(tx: InviteTx): void {
    if (tx.maxTimer) clearTimeout(tx.maxTimer);
    tx.maxTimer = undefined;
    if (tx.rtp) this.media?.close(tx.rtp.id);
    tx.rtp = undefined;
    if (this.#byCallId.get(tx.callId) === tx) this.#byCallId.delete(tx.callId);
  }

  #onAck(msg: SipRequest, branch: string): void {
    // ACK for a non-2xx shares the INVITE's branch; ACK for a 2xx is matched by dialog
    const tx = this.#byBranch.get(branch);
    if (tx && tx.state === 'completed') {
      this.#terminate(tx);
      return;
    }
    const d = this.#byCallId.get(msg.callId);
    if (d && d.state === 'accepted') {
      d.state = 'confirmed';
      this.#clearTimers(d);
      this.#byBranch.delete(d.branch);
    }
  }

  #onCancel(msg: SipRequest, from: Peer, branch: string): void {
    const tx = this.#byBranch.get(branch);
    if (!tx) {
      this.#reply(msg, from, 481, undefined);
      return;
    }
    // RFC 3261 §9.2: 200 to the CANCEL; a still-pending INVITE gets 487
    this.#reply(msg, from, 200, tx.toTag);
    if (tx.state === 'proceeding') {
      this.stats.fail('cancelled');
      this.#final(tx, 487);
    }
  }

  #onNonInvite(msg: SipRequest, from: Peer, branch: string): void {
    const cached = this.#cache.get(branch) ?? this.#cacheOld.get(branch);
    if (cached) {
      this.#ep.send(cached, this.#responsePeer(msg, from));
      return;
    }
    let res: Buffer;
    const callId = msg.callId;
    switch (msg.method) {
      case 'BYE': {
        const d = this.#byCallId.get(callId);
        if (!d) {
          res = this.#reply(msg, from, 481, undefined);
          break;
        }
        if (d.state === 'accepted') {
          // BYE before the ACK: the 2xx evidently arrived
          this.#clearTimers(d);
          this.#byBranch.delete(d.branch);
        }
        this.#endDialog(d);
        this.stats.successful++;
        res = this.#reply(msg, from, 200, undefined);
        break;
      }
      case 'OPTIONS':
        res = this.#reply(msg, from, 200, newTag(), [
          ['Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER'],
          ['Accept', 'application/sdp'],
        ]);
        break;
      case 'REGISTER': {
        if (this.#needsAuth(msg)) {
          res = this.#challenge(msg, from, newTag());
          break;
        }
        const expires = msg.get('Expires') ?? '3600';
        const contacts: [string, string][] = [];
        for (const c of msg.contacts) {
          if (c === '*') continue;
          const value = formatNameAddr(c);
          contacts.push(['Contact', c.params.has('expires') ? value : `${value};expires=${expires}`]);
        }
        res = this.#reply(msg, from, 200, newTag(), [...contacts, ['Expires', expires]]);
        break;
      }
      default:
        res = this.#reply(msg, from, 501, newTag());
    }
    if (branch) this.#cache.set(branch, res);
  }
}

/** Starts a UAS (programmatic API for tests and benchmarks). */
export function startUas(opts: UasOptions): Promise<UasServer> {
  return UasServer.start(opts);
}

