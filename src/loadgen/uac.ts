import { performance } from 'node:perf_hooks';
import { buildAuthorization } from '../sip/auth/digest.js';
import { createLogger, escapeSnippet, rateLimitedLog } from '../util/logger.js';
import { RtpMedia, type RtpStream } from './rtp/rtp-media.js';
import type { G711Audio } from './rtp/wav.js';
import { newBranch, newCallId, newTag } from '../sip/message/builders.js';
import { parseMessage } from '../sip/message/parser.js';
import type { SipRequest, SipResponse } from '../sip/message/sip-message.js';
import { formatNameAddr, formatUri, type SipUri } from '../sip/uri/sip-uri.js';
import { bareRequest, garbledReason, hostPort, sdpAudioTarget, sniffBranch, templateMessage, templateResponse, templateSdp, uriTarget } from './sip/sip-templates.js';
import { SipEndpoint, type LoadTransport, type Peer } from './sip/sip-endpoint.js';
import { StatsCollector, droppedMessages, emptyRtp, type LoadSnapshot } from './stats.js';
import type { LoadUser } from './users.js';

const log = createLogger('loadgen-uac');

export type LoadScenario = 'call' | 'register' | 'options';

/** What one UAC engine (one thread) generates. Rates and counts are this engine's share. */
export interface UacEngineOptions {
  scenario: LoadScenario;
  target: Peer;
  transport: LoadTransport;
  /** Request-URI user (SIPp `-s`). @default 'service' */
  service?: string;
  /** Domain of REGISTER AORs. @default target address */
  domain?: string;
  localAddress: string;
  /** Several local addresses (a range): one SIP socket each per thread, calls take them in turn. */
  localAddresses?: string[];
  localPortMin?: number;
  localPortMax?: number;
  /** New calls per rate period. */
  rate: number;
  /** @default 1000 */
  ratePeriodMs?: number;
  /** Ramp: add this much rate every rateIntervalMs, up to rateMax. */
  rateIncrease?: number;
  rateIntervalMs?: number;
  rateMax?: number;
  /** Most calls in progress at once. @default Infinity */
  limit?: number;
  /** Calls to generate, then stop. @default Infinity (then stopAfterMs must bound the run) */
  calls?: number;
  /** Call hold (call) or time to the refresh (register). @default 0 */
  durationMs?: number;
  /** Per-transaction bound until a final response, ms. @default 64*T1 */
  timeoutMs?: number;
  /** Stop generating after this long; calls in hold are hung up. */
  stopAfterMs?: number;
  /** After stopping, calls still running this long are counted `aborted`. @default 5000 */
  graceMs?: number;
  rtp?: boolean;
  audio?: G711Audio;
  rtpPortMin?: number;
  rtpPortMax?: number;
  users?: LoadUser[];
  /** Register Expires. @default 3600 */
  expiresSec?: number;
  /** RFC 3261 T1/T2. @default 500 / 4000 */
  t1Ms?: number;
  t2Ms?: number;
}

type CallState = 'starting' | 'inviting' | 'holding' | 'byeing' | 'registering' | 'refreshing' | 'optioning' | 'done';

interface Call {
  ep: SipEndpoint;
  callId: string;
  fromTag: string;
  toTag?: string;
  toHeader?: string;
  cseq: number;
  user: LoadUser | undefined;
  state: CallState;
  startMs: number;
  responded: boolean;
  remoteTarget?: string;
  routeSet: string[];
  rtp?: RtpStream;
  holdTimer?: NodeJS.Timeout;
  ackFor2xx?: Buffer;
  ackPeer?: Peer;
  authTries: number;
  authNc: number;
  lastChallenge?: { header: string; value: string };
  inviteTx?: ClientTx;
  tx?: ClientTx;
}

interface ClientTx {
  call: Call;
  branch: string;
  method: string;
  cseq: number;
  uri: string;
  buf: Buffer;
  peer: Peer;
  sentAt: number;
  intervalMs: number;
  retransTimer?: NodeJS.Timeout;
  timerB?: NodeJS.Timeout;
  deadline?: NodeJS.Timeout;
  provisional: boolean;
  done: boolean;
  /** Headers needed to build a CANCEL / non-2xx ACK (RFC 3261 §9.1, §17.1.1.3) and in-dialog requests. */
  via: string;
  routes: string[];
  from: string;
  to: string;
}

/**
 * One thread's UAC: paces new calls (rate, period, ramp, concurrency limit, count, stop time),
 * runs each scenario as its own small state machine, and retransmits requests per RFC 3261
 * §17.1 over UDP (Timer A/E doubling, E capped at T2, B/F = 64*T1; none over TCP).
 */
export class UacEngine {
  readonly stats = new StatsCollector();
  readonly media: RtpMedia | undefined;
  readonly #o: Required<Omit<UacEngineOptions, 'localAddresses' | 'rateIncrease' | 'rateIntervalMs' | 'rateMax' | 'stopAfterMs' | 'audio' | 'rtpPortMin' | 'rtpPortMax' | 'users' | 'localPortMin' | 'localPortMax' | 'domain'>> &
    UacEngineOptions;
  #eps: SipEndpoint[] = [];
  #epIdx = 0;
  #tx = new Map<string, ClientTx>();
  /**
   * Finished transactions, kept two generations (16-32 s) to absorb retransmitted finals: the
   * INVITE ones whole (to ACK again), others as a bare marker so memory stays small at high rates.
   */
  #doneTx = new Map<string, ClientTx | null>();
  #doneTxOld = new Map<string, ClientTx | null>();
  #calls = new Set<Call>();
  #byCallId = new Map<string, Call>();
  #pacer: NodeJS.Timeout | undefined;
  #rotator: NodeJS.Timeout | undefined;
  #startMs = 0;
  #lastPaceMs = 0;
  #credits = 0;
  #stopping = false;
  #userIdx = 0;
  #finish: (() => void) | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #stopTimer: NodeJS.Timeout | undefined;
  #currentRate: number;

  constructor(opts: UacEngineOptions) {
    const t1 = opts.t1Ms ?? 500;
    this.#o = {
      service: 'service',
      ratePeriodMs: 1000,
      limit: Infinity,
      calls: Infinity,
      durationMs: 0,
      timeoutMs: 64 * t1,
      graceMs: 5000,
      rtp: false,
      expiresSec: 3600,
      t1Ms: t1,
      t2Ms: 4000,
      ...opts,
    };
    this.#currentRate = opts.rate;
    if (this.#o.rtp && opts.scenario === 'call') {
      this.media = new RtpMedia({
        address: opts.localAddress,
        ...(opts.audio ? { audio: opts.audio } : {}),
        ...(opts.rtpPortMin ? { portMin: opts.rtpPortMin } : {}),
        ...(opts.rtpPortMax ? { portMax: opts.rtpPortMax } : {}),
      });
    }
  }

  get local(): Peer | undefined {
    return this.#eps[0]?.local;
  }

  get currentRate(): number {
    return this.#currentRate;
  }

  snapshot(): LoadSnapshot {
    this.stats.active = this.#calls.size;
    return this.stats.snapshot(this.media ? this.media.snapshot() : emptyRtp());
  }

  /** Opens the SIP socket and generates until the call count or stop time is reached. */
  async run(): Promise<LoadSnapshot> {
    const o = this.#o;
    const addresses = o.localAddresses?.length ? o.localAddresses : [o.localAddress];
    try {
      for (const address of addresses) {
        const ep = await SipEndpoint.open({ transport: o.transport, address, port: o.localPortMin ?? 0, ...(o.localPortMax ? { portMax: o.localPortMax } : {}) });
        ep.onMessage = (buf, from) => this.#onMessage(buf, from, ep);
        ep.onPeerError = (peer, err) => this.#onPeerError(peer, err);
        this.#eps.push(ep);
      }
    } catch (err) {
      await Promise.all(this.#eps.map((e) => e.close()));
      this.media?.close();
      throw err;
    }
    this.#startMs = performance.now();
    this.#lastPaceMs = this.#startMs;
    this.#credits = 1; // the first call goes at once
    const done = new Promise<void>((resolve) => (this.#finish = resolve));
    // nothing to generate, or no rate and nothing else to end the run: end now rather than hang
    const noRate = o.rate <= 0 && !((o.rateIncrease ?? 0) > 0 && (o.rateIntervalMs ?? 0) > 0);
    if (o.calls <= 0 || (noRate && o.stopAfterMs === undefined)) {
      this.#stopping = true;
      this.#finish?.();
    }
    this.#pacer = setInterval(() => this.#pace(), 5);
    this.#rotator = setInterval(() => {
      this.#doneTxOld = this.#doneTx;
      this.#doneTx = new Map();
    }, 32 * o.t1Ms);
    if (o.stopAfterMs !== undefined) this.#stopTimer = setTimeout(() => this.stop(), o.stopAfterMs);
    this.#pace();
    await done;
    this.#teardown();
    await Promise.all(this.#eps.map((e) => e.close()));
    this.media?.close();
    return this.snapshot();
  }

  /**
   * Stops generating: calls in hold hang up now, ringing calls are cancelled (counted `aborted`),
   * whatever still runs after the grace period is aborted.
   */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const c of [...this.#calls]) {
      if (c.state === 'holding' && c.holdTimer) {
        clearTimeout(c.holdTimer);
        c.holdTimer = undefined;
        this.#hangUp(c);
      } else if (c.state === 'inviting' && c.tx && c.tx.method === 'INVITE' && c.tx.provisional && !c.tx.done) {
        // ringing: cancel now (RFC 3261 §9.1) rather than wait for an answer that may never come
        const tx = c.tx;
        this.#endTx(tx);
        this.#sendCancel(tx);
        this.#failCall(c, 'aborted');
      }
    }
    this.#graceTimer = setTimeout(() => {
      for (const c of [...this.#calls]) this.#failCall(c, 'aborted');
      this.#checkDone();
    }, this.#o.graceMs);
    this.#checkDone();
  }

  #teardown(): void {
    if (this.#pacer) clearInterval(this.#pacer);
    if (this.#rotator) clearInterval(this.#rotator);
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    if (this.#stopTimer) clearTimeout(this.#stopTimer);
    for (const tx of this.#tx.values()) this.#clearTxTimers(tx);
    this.#tx.clear();
  }

  #checkDone(): void {
    const o = this.#o;
    const noMore = this.#stopping || this.stats.generated >= o.calls;
    if (noMore && this.#calls.size === 0 && this.#finish) {
      const f = this.#finish;
      this.#finish = undefined;
      if (this.#pacer) clearInterval(this.#pacer);
      this.#pacer = undefined;
      f();
    }
  }

  #rateAt(elapsedMs: number): number {
    const o = this.#o;
    if (!o.rateIncrease || !o.rateIntervalMs) return o.rate;
    const steps = Math.floor(elapsedMs / o.rateIntervalMs);
    const r = o.rate + steps * o.rateIncrease;
    return o.rateMax !== undefined ? Math.min(r, o.rateMax) : r;
  }

  #pace(): void {
    const o = this.#o;
    if (this.#stopping || this.stats.generated >= o.calls) {
      this.#checkDone();
      return;
    }
    const now = performance.now();
    this.#currentRate = this.#rateAt(now - this.#startMs);
    const perMs = this.#currentRate / o.ratePeriodMs;
    this.#credits += perMs * (now - this.#lastPaceMs);
    this.#lastPaceMs = now;
    // no backlog beyond a few ticks when the concurrency limit holds calls back
    const cap = Math.max(1, perMs * 20);
    if (this.#credits > cap) this.#credits = cap;
    while (this.#credits >= 1 && this.#calls.size < o.limit && this.stats.generated < o.calls) {
      this.#credits--;
      this.#startCall();
    }
  }

  #nextUser(): LoadUser | undefined {
    const users = this.#o.users;
    if (!users || users.length === 0) return undefined;
    const u = users[this.#userIdx % users.length];
    this.#userIdx++;
    return u;
  }

  #startCall(): void {
    const o = this.#o;
    this.stats.generated++;
    const ep = this.#eps[this.#epIdx++ % this.#eps.length]!;
    const call: Call = {
      ep,
      callId: newCallId(ep.local.address),
      fromTag: newTag(),
      cseq: 1,
      user: this.#nextUser(),
      state: 'starting',
      startMs: performance.now(),
      responded: false,
      routeSet: [],
      authTries: 0,
      authNc: 0,
    };
    this.#calls.add(call);
    this.#byCallId.set(call.callId, call);
    if (o.scenario === 'call') {
      if (this.media) {
        this.media.open(ep.local.address).then(
          (s) => {
            if (call.state !== 'starting') {
              s.close();
              return;
            }
            call.rtp = s;
            this.#sendInvite(call);
          },
          (err: Error) => {
            rateLimitedLog('uac-rtp-open', (n) => log.warn({ err: err.message, suppressed: n }, 'cannot open RTP socket'));
            this.#failCall(call, 'local error: RTP port');
          },
        );
      } else this.#sendInvite(call);
    } else if (o.scenario === 'register') {
      call.state = 'registering';
      this.#sendRegister(call);
    } else {
      call.state = 'optioning';
      this.#sendOptions(call);
    }
  }

  // ---- request building ----

  get #viaTransport(): string {
    return this.#o.transport.toUpperCase();
  }

  #hostPort(p: Peer): string {
    return hostPort(p.address, p.port);
  }

  #via(branch: string, ep: SipEndpoint): string {
    const sentBy = this.#o.transport === 'tcp' ? this.#hostPort({ address: ep.local.address, port: 0 }) : this.#hostPort(ep.local);
    return `SIP/2.0/${this.#viaTransport} ${sentBy};branch=${branch};rport`;
  }

  #contact(user: string, ep: SipEndpoint): string {
    const t = this.#o.transport === 'tcp' ? ';transport=tcp' : '';
    return `<sip:${user}@${this.#hostPort(ep.local)}${t}>`;
  }

  get #targetUri(): string {
    return `sip:${this.#o.service}@${this.#o.domain ?? this.#hostPort(this.#o.target)}`;
  }

  #fromUser(call: Call): string {
    return call.user?.user ?? 'tandem';
  }

  #sendInvite(call: Call): void {
    const o = this.#o;
    call.state = 'inviting';
    const addr = call.ep.local.address;
    const sdp = templateSdp(addr, call.rtp?.port ?? 9, this.media?.audio.payloadType ?? 0, Math.floor(Math.random() * 1e9));
    const uri = this.#targetUri;
    const extra: [string, string][] = [
      ['Content-Type', 'application/sdp'],
    ];
    if (call.lastChallenge) {
      const a = this.#authorize(call, 'INVITE', uri);
      if (!a) return;
      extra.unshift(a);
    }
    this.#request(call, 'INVITE', uri, o.target, [
      ['From', `<sip:${this.#fromUser(call)}@${o.domain ?? this.#hostPort({ address: addr, port: 0 })}>;tag=${call.fromTag}`],
      ['To', `<${uri}>`],
      ['Call-ID', call.callId],
      ['Contact', this.#contact(this.#fromUser(call), call.ep)],
      ...extra,
    ], sdp);
  }

  #sendRegister(call: Call): void {
    const o = this.#o;
    const domain = o.domain ?? this.#hostPort(o.target);
    const uri = `sip:${domain}`;
    const user = this.#fromUser(call);
    const extra: [string, string][] = [];
    if (call.lastChallenge) {
      const a = this.#authorize(call, 'REGISTER', uri);
      if (!a) return;
      extra.push(a);
    }
    this.#request(call, 'REGISTER', uri, o.target, [
      ['From', `<sip:${user}@${domain}>;tag=${call.fromTag}`],
      ['To', `<sip:${user}@${domain}>`],
      ['Call-ID', call.callId],
      ['Contact', this.#contact(user, call.ep)],
      ['Expires', String(o.expiresSec)],
      ...extra,
    ]);
  }

  #sendOptions(call: Call): void {
    const uri = this.#targetUri;
    this.#request(call, 'OPTIONS', uri, this.#o.target, [
      ['From', `<sip:${this.#fromUser(call)}@${this.#hostPort({ address: call.ep.local.address, port: 0 })}>;tag=${call.fromTag}`],
      ['To', `<${uri}>`],
      ['Call-ID', call.callId],
      ['Accept', 'application/sdp'],
    ]);
  }

  /** Answers the last 401/407 challenge (RFC 3261 §22.2); nc counts up while the nonce is reused. */
  #authorize(call: Call, method: string, uri: string): [string, string] | undefined {
    const ch = call.lastChallenge!;
    if (!call.user) {
      this.#failCall(call, `status ${ch.header === 'Authorization' ? 401 : 407} (no credentials)`);
      return undefined;
    }
    call.authNc++;
    const r = buildAuthorization(ch.value, { username: call.user.user, password: call.user.password }, method, uri, call.authNc);
    if (!r.ok) {
      this.#failCall(call, `bad response: ${r.reason}`);
      return undefined;
    }
    return [ch.header, r.value];
  }

  /** Sends a new client transaction (RFC 3261 §17.1). */
  #request(call: Call, method: string, uri: string, peer: Peer, headers: [string, string][], body = '', cseq = call.cseq): void {
    const branch = newBranch();
    const via = this.#via(branch, call.ep);
    const routes = call.routeSet;
    const all: [string, string][] = [['Via', via], ['Max-Forwards', '70']];
    for (const r of routes) all.push(['Route', r]);
    all.push(...headers.slice(0, 3), ['CSeq', `${cseq} ${method}`], ...headers.slice(3), ['User-Agent', 'tandem-load']);
    const buf = templateMessage(`${method} ${uri} SIP/2.0`, all, body);
    const o = this.#o;
    const tx: ClientTx = {
      call,
      branch,
      method,
      cseq,
      uri,
      buf,
      peer,
      sentAt: performance.now(),
      intervalMs: o.t1Ms,
      provisional: false,
      done: false,
      via,
      routes,
      from: headers[0]![1],
      to: headers[1]![1],
    };
    call.tx = tx;
    if (method === 'INVITE') call.inviteTx = tx;
    this.#tx.set(branch, tx);
    this.#send(tx.buf, peer, call.ep, call);
    const udp = o.transport === 'udp';
    if (udp) tx.retransTimer = setTimeout(() => this.#retransmit(tx), tx.intervalMs);
    // Timer B / F: 64*T1 without a final (B stops at a provisional); the per-call timeout bounds the rest
    const bf = 64 * o.t1Ms;
    if (method === 'INVITE') {
      tx.timerB = setTimeout(() => this.#txTimeout(tx), bf);
      tx.deadline = setTimeout(() => this.#txTimeout(tx), o.timeoutMs);
    } else {
      tx.deadline = setTimeout(() => this.#txTimeout(tx), Math.min(bf, o.timeoutMs));
    }
  }

  #send(buf: Buffer, peer: Peer, ep: SipEndpoint, call?: Call): void {
    ep.send(buf, peer, (err) => {
      rateLimitedLog('uac-send', (n) => log.warn({ err: err.message, suppressed: n }, 'SIP send failed'));
      if (call && this.#calls.has(call)) this.#failCall(call, 'transport error');
    });
  }

  /**
   * RFC 3261 §17.1.1.2 Timer A: INVITE retransmits at T1, 2T1, 4T1, ... until a response.
   * §17.1.2.2 Timer E: non-INVITE at T1 doubling up to T2; after a provisional, every T2.
   */
  #retransmit(tx: ClientTx): void {
    tx.retransTimer = undefined;
    if (tx.done || !this.#calls.has(tx.call)) return;
    if (tx.method === 'INVITE' && tx.provisional) return;
    this.stats.retransmissions++;
    this.#send(tx.buf, tx.peer, tx.call.ep, tx.call);
    if (tx.method === 'INVITE') tx.intervalMs *= 2;
    else tx.intervalMs = tx.provisional ? this.#o.t2Ms : Math.min(tx.intervalMs * 2, this.#o.t2Ms);
    tx.retransTimer = setTimeout(() => this.#retransmit(tx), tx.intervalMs);
  }

  #clearTxTimers(tx: ClientTx): void {
    if (tx.retransTimer) clearTimeout(tx.retransTimer);
    if (tx.timerB) clearTimeout(tx.timerB);
    if (tx.deadline) clearTimeout(tx.deadline);
    tx.retransTimer = tx.timerB = tx.deadline = undefined;
  }

  #endTx(tx: ClientTx): void {
    tx.done = true;
    this.#clearTxTimers(tx);
    if (this.#tx.delete(tx.branch)) this.#doneTx.set(tx.branch, tx.method === 'INVITE' ? tx : null);
  }

  #txTimeout(tx: ClientTx): void {
    if (tx.done) return;
    const call = tx.call;
    this.#endTx(tx);
    if (!this.#calls.has(call)) return;
    // a ringing INVITE that timed out is cancelled so the far end stops too (RFC 3261 §9.1)
    if (tx.method === 'INVITE' && tx.provisional) this.#sendCancel(tx);
    this.#failCall(call, tx.method === 'BYE' ? 'BYE timeout' : 'timeout');
  }

  /** RFC 3261 §9.1: CANCEL copies the INVITE's Request-URI, Via (branch), Route, From, To, Call-ID and CSeq number. */
  #sendCancel(tx: ClientTx): void {
    this.#send(bareRequest('CANCEL', tx.uri, tx.via, tx.routes, tx.from, tx.to, tx.call.callId, tx.cseq), tx.peer, tx.call.ep);
  }

  /** RFC 3261 §17.1.1.3: the ACK for a non-2xx final reuses the INVITE's branch and Request-URI; To from the response. */
  #ackNon2xx(tx: ClientTx, res: SipResponse): void {
    const to = res.headers.first('to')?.value ?? tx.to;
    this.#send(bareRequest('ACK', tx.uri, tx.via, tx.routes, tx.from, to, tx.call.callId, tx.cseq), tx.peer, tx.call.ep);
  }

  // ---- responses ----

  #onMessage(buf: Buffer, from: Peer, ep: SipEndpoint): void {
    const parsed = parseMessage(buf);
    if (!parsed.ok) {
      // garbage: attribute it to a call through its Via branch if one can be read, else count it
      const sniffed = sniffBranch(buf);
      const tx = sniffed ? this.#tx.get(sniffed) : undefined;
      if (tx && this.#calls.has(tx.call)) {
        this.#endTx(tx);
        this.#failCall(tx.call, `bad response: garbled (${garbledReason(parsed.code, parsed.reason)})`);
      } else this.#stray(buf, from, `unparseable: ${parsed.reason}`);
      return;
    }
    const msg = parsed.value;
    if (msg.isRequest()) {
      this.#onRequest(msg, from, ep);
      return;
    }
    const branch = msg.topVia.branch;
    const tx = branch ? this.#tx.get(branch) : undefined;
    const cseq = msg.cseqOrUndefined;
    if (!tx) {
      const known = branch !== undefined && (this.#doneTx.has(branch) || this.#doneTxOld.has(branch));
      const old = branch ? (this.#doneTx.get(branch) ?? this.#doneTxOld.get(branch)) : undefined;
      if (old && cseq?.method === 'INVITE' && cseq.seq === old.cseq && msg.status >= 200) {
        // retransmitted final of a finished INVITE: ACK again (2xx through the dialog, others by the tx)
        if (msg.status < 300 && old.call.ackFor2xx && old.call.ackPeer) {
          this.stats.retransmissions++;
          this.#send(old.call.ackFor2xx, old.call.ackPeer, old.call.ep);
        } else if (msg.status >= 300) this.#ackNon2xx(old, msg);
        return;
      }
      if (known || cseq?.method === 'CANCEL') return; // late response of a finished transaction
      this.#stray(buf, from, 'response matches no transaction');
      return;
    }
    if (cseq?.method === 'CANCEL' && cseq.seq === tx.cseq) return; // response to our CANCEL
    const call = tx.call;
    if (!this.#calls.has(call)) return;
    if (!cseq || cseq.method !== tx.method || cseq.seq !== tx.cseq) {
      this.#endTx(tx);
      if (tx.method === 'INVITE' && msg.status >= 300 && cseq) this.#ackNon2xx(tx, msg);
      this.#failCall(call, 'bad response: wrong CSeq');
      return;
    }
    if (msg.callId !== call.callId) {
      this.#endTx(tx);
      this.#failCall(call, 'bad response: wrong Call-ID');
      return;
    }
    const now = performance.now();
    if (!call.responded) {
      call.responded = true;
      this.stats.responseTime.record(now - tx.sentAt);
    }
    if (msg.status < 200) {
      tx.provisional = true;
      if (tx.timerB) clearTimeout(tx.timerB);
      tx.timerB = undefined;
      if (tx.method !== 'INVITE' && tx.retransTimer) {
        clearTimeout(tx.retransTimer);
        tx.retransTimer = setTimeout(() => this.#retransmit(tx), this.#o.t2Ms);
      }
      return;
    }
    this.#endTx(tx);
    if (tx.method === 'INVITE') this.#onInviteFinal(call, tx, msg, now);
    else if (tx.method === 'BYE') {
      if (msg.status < 300) this.#succeed(call);
      else this.#failCall(call, `BYE status ${msg.status}`);
    } else if (tx.method === 'REGISTER') this.#onRegisterFinal(call, tx, msg, now);
    else if (tx.method === 'OPTIONS') {
      if (msg.status < 300) {
        this.stats.setupTime.record(now - call.startMs);
        this.#succeed(call);
      } else this.#failCall(call, `status ${msg.status}`);
    }
  }

  #challengeOf(call: Call, msg: SipResponse): boolean {
    const isProxy = msg.status === 407;
    const values = msg.getAll(isProxy ? 'Proxy-Authenticate' : 'WWW-Authenticate');
    const digest = values.find((v) => /^digest\s/i.test(v) && !/algorithm\s*=\s*"?sha-512/i.test(v) && /algorithm\s*=\s*"?md5"?(?:[,\s]|$)/i.test(v)) ?? values.find((v) => /^digest\s/i.test(v));
    if (!digest || !call.user || call.authTries >= 2) return false;
    call.authTries++;
    call.authNc = 0;
    call.lastChallenge = { header: isProxy ? 'Proxy-Authorization' : 'Authorization', value: digest };
    return true;
  }

  #onInviteFinal(call: Call, tx: ClientTx, msg: SipResponse, now: number): void {
    if (msg.status >= 300) {
      this.#ackNon2xx(tx, msg);
      if ((msg.status === 401 || msg.status === 407) && this.#challengeOf(call, msg)) {
        call.cseq++;
        this.#sendInvite(call);
        return;
      }
      this.#failCall(call, `status ${msg.status}`);
      return;
    }
    const toTag = msg.toTag;
    if (!toTag) {
      this.#failCall(call, 'bad response: 2xx without To tag');
      return;
    }
    this.stats.setupTime.record(now - call.startMs);
    call.toTag = toTag;
    call.toHeader = msg.headers.first('to')?.value ?? '';
    // RFC 3261 §12.1.2: route set = Record-Route in reverse order; remote target = Contact
    const recordRoutes = msg.recordRoutes;
    call.routeSet = recordRoutes.map(formatNameAddr).reverse();
    const contact = msg.contacts[0];
    call.remoteTarget = contact && contact !== '*' ? formatUri(contact.uri) : tx.uri;
    call.ackPeer = this.#nextHop(call, recordRoutes[recordRoutes.length - 1]?.uri);
    // §13.2.2.4: the ACK for a 2xx is its own transaction-less request with a new branch
    call.ackFor2xx = bareRequest('ACK', call.remoteTarget, this.#via(newBranch(), call.ep), call.routeSet, tx.from, call.toHeader, call.callId, tx.cseq);
    this.#send(call.ackFor2xx, call.ackPeer, call.ep, call);
    if (call.rtp) {
      const remote = sdpAudioTarget(msg.body);
      if (remote) call.rtp.start('send', remote);
    }
    call.state = 'holding';
    if (this.#stopping || this.#o.durationMs <= 0) this.#hangUp(call);
    else call.holdTimer = setTimeout(() => this.#hangUp(call), this.#o.durationMs);
  }

  /** Next hop of in-dialog requests: the first route if any (loose routing), else the remote target. */
  #nextHop(call: Call, firstRoute: SipUri | undefined): Peer {
    const t = firstRoute ? { host: firstRoute.host.replace(/^\[|\]$/g, ''), port: firstRoute.port } : uriTarget(call.remoteTarget ?? '');
    if (!t) return this.#o.target;
    return { address: t.host, port: t.port ?? 5060 };
  }

  #hangUp(call: Call): void {
    call.holdTimer = undefined;
    if (!this.#calls.has(call)) return;
    call.rtp?.stopSending();
    call.state = 'byeing';
    call.cseq++;
    const inv = call.inviteTx!;
    this.#request(call, 'BYE', call.remoteTarget ?? inv.uri, call.ackPeer ?? this.#o.target, [
      ['From', inv.from],
      ['To', call.toHeader ?? inv.to],
      ['Call-ID', call.callId],
    ]);
  }

  #onRegisterFinal(call: Call, _tx: ClientTx, msg: SipResponse, now: number): void {
    if ((msg.status === 401 || msg.status === 407) && this.#challengeOf(call, msg)) {
      call.cseq++;
      this.#sendRegister(call);
      return;
    }
    if (msg.status >= 300) {
      this.#failCall(call, `status ${msg.status}`);
      return;
    }
    if (call.state === 'registering') {
      this.stats.setupTime.record(now - call.startMs);
      if (this.#o.durationMs > 0 && !this.#stopping) {
        call.state = 'holding';
        call.holdTimer = setTimeout(() => {
          call.holdTimer = undefined;
          if (!this.#calls.has(call)) return;
          // refresh: same Call-ID, next CSeq, reusing the nonce with the next nc (RFC 3261 §10.2.4)
          call.state = 'refreshing';
          call.authTries = 0;
          call.cseq++;
          this.#sendRegister(call);
        }, this.#o.durationMs);
        return;
      }
    }
    this.#succeed(call);
  }

  /**
   * Requests toward the UAC: a BYE ends its call (answered 200, counted as `remote BYE`),
   * OPTIONS gets 200, an unknown dialog 481, anything else 501; ACK is never answered.
   */
  #onRequest(msg: SipRequest, from: Peer, ep: SipEndpoint): void {
    if (msg.method === 'ACK') return;
    const call = this.#byCallId.get(msg.callId);
    const via = msg.topVia;
    // RFC 3261 §18.2.2 / RFC 3581: source address; source port when rport was asked
    const to = this.#o.transport === 'udp' && via.rport === undefined ? { address: from.address, port: via.port ?? 5060 } : from;
    if (msg.method === 'BYE') {
      if (!call || call.state === 'done') {
        ep.send(templateResponse(msg, 481, undefined), to);
        return;
      }
      ep.send(templateResponse(msg, 200, undefined), to);
      if (call.holdTimer) clearTimeout(call.holdTimer);
      call.holdTimer = undefined;
      call.state = 'done';
      this.#failCall(call, 'remote BYE');
      return;
    }
    if (msg.method === 'OPTIONS') {
      ep.send(templateResponse(msg, 200, newTag()), to);
      return;
    }
    ep.send(templateResponse(msg, call ? 501 : 481, newTag()), to);
    this.#stray(Buffer.from(`${msg.method} ${msg.uri}`), from, 'unexpected request');
  }

  #onPeerError(peer: Peer, err: Error): void {
    rateLimitedLog('uac-peer', (n) => log.warn({ peer, err: err.message, suppressed: n }, 'SIP connection failed'));
    for (const c of [...this.#calls]) if (c.tx && !c.tx.done) this.#failCall(c, 'transport error');
  }

  #stray(buf: Buffer, from: Peer, why: string): void {
    this.stats.strayMessages++;
    droppedMessages.inc({ role: 'uac', reason: why.startsWith('unparseable') ? 'unparseable' : why });
    rateLimitedLog(`uac-stray-${why}`, (n) => log.debug({ from, why, snippet: escapeSnippet(buf), suppressed: n }, 'dropping SIP message'));
  }

  #succeed(call: Call): void {
    if (!this.#calls.delete(call)) return;
    this.stats.successful++;
    this.#cleanup(call);
  }

  #failCall(call: Call, reason: string): void {
    if (!this.#calls.delete(call)) return;
    this.stats.fail(reason);
    // a call failed after it was answered still needs its dialog torn down
    if (call.state === 'holding' && call.toTag) {
      const inv = call.inviteTx!;
      call.cseq++;
      const bye = bareRequest('BYE', call.remoteTarget ?? inv.uri, this.#via(newBranch(), call.ep), call.routeSet, inv.from, call.toHeader ?? inv.to, call.callId, call.cseq);
      this.#send(bye, call.ackPeer ?? this.#o.target, call.ep);
    }
    this.#cleanup(call);
  }

  #cleanup(call: Call): void {
    call.state = 'done';
    this.#byCallId.delete(call.callId);
    if (call.holdTimer) clearTimeout(call.holdTimer);
    if (call.tx && !call.tx.done) this.#endTx(call.tx);
    call.rtp?.close();
    call.rtp = undefined;
    this.#checkDone();
    // a freed slot under the concurrency limit is refilled by the next pacer tick
  }
}
