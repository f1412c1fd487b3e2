/**
 * A small SIP user agent (RFC 3261 §8, §12-§15) on top of the transaction layer: send a
 * request, place a call (INVITE, ACK for 2xx, BYE, CANCEL), REGISTER, with digest auth on
 * 401/407; answer calls (ring, answer, reject) and in-dialog requests. Used by tests, the load
 * generator and the signalling tests; it keeps no media.
 */
import { buildAuthorization, parseChallenge } from '../auth/digest.js';
import type { TimerHandle } from '../../util/timer-wheel.js';
import { createRequest, createResponse, newBranch, newCallId, newTag } from '../message/builders.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import { TransactionLayer } from '../transaction/transaction-layer.js';
import type { ClientTransaction, ServerTransaction, TransactionOptions, TransactionUser } from '../transaction/types.js';
import { TransportLayer } from '../transport/transport-layer.js';
import type { Endpoint, ListenSpec, Source, TransportName, TransportOptions } from '../transport/types.js';
import { formatUri, parseNameAddr } from '../uri/sip-uri.js';
import { Dialog, dialogId, type DialogHost } from './dialog.js';
import { uriToEndpoint } from './target.js';

export { Dialog } from './dialog.js';

export interface DigestCredentialsInput {
  username: string;
  password: string;
}

export interface UserAgentOptions {
  /** Our address-of-record: From of requests, To/From of REGISTER. @default `sip:tandem@<sent-by host>` */
  aor?: string;
  displayName?: string;
  /** User part of our Contact. @default user of `aor`, else `tandem` */
  contactUser?: string;
  /** Answers 401/407 challenges (one retry per request). */
  credentials?: DigestCredentialsInput;
  /** Transport for URIs without `transport=`. @default 'udp' */
  transport?: TransportName;
  /** User-Agent header value. @default 'Tandem' */
  userAgent?: string;
}

export interface RequestOptions {
  method: string;
  /** Request-URI. */
  uri: string;
  /** To value. @default `<uri>` */
  to?: string;
  /** From value (a tag is added). @default our AOR */
  from?: string;
  /** Where to send. @default resolved from the Request-URI */
  target?: Endpoint;
  headers?: [string, string][];
  body?: Buffer | string;
  contentType?: string;
  callId?: string;
  cseq?: number;
}

export interface InviteOptions extends Omit<RequestOptions, 'method'> {
  /** SDP offer (Content-Type application/sdp). */
  sdp?: string | Buffer;
  onProvisional?(res: SipResponse): void;
}

export interface RegisterOptions {
  /** Registrar URI (`sip:example.com`). */
  registrar: string;
  /** AOR to register. @default the UA's AOR */
  aor?: string;
  /** @default 3600; 0 unregisters */
  expiresSec?: number;
  /** Contact to bind. @default the UA's Contact */
  contact?: string;
  target?: Endpoint;
  headers?: [string, string][];
}

/** A response made up locally (§8.1.3.1): 408 on Timer B/F, 503 on a transport error. */
export function isLocalResponse(res: SipResponse): boolean {
  return localResponses.has(res);
}
const localResponses = new WeakSet<SipResponse>();

function localResponse(req: SipRequest, status: number, reason: string): SipResponse {
  const res = createResponse(req, status, reason);
  localResponses.add(res);
  return res;
}

function toBuffer(b: Buffer | string | undefined): Buffer | undefined {
  return b === undefined ? undefined : typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
}

export class UserAgent implements TransactionUser, DialogHost {
  readonly layer: TransactionLayer;
  /** Set when made by `UserAgent.create` (closed by `close()`). */
  transportLayer: TransportLayer | undefined;
  readonly #opts: UserAgentOptions;
  readonly #dialogs = new Map<string, Dialog>();
  /** UAS calls answered, waiting for their ACK (by dialog id). */
  readonly #awaitingAck = new Map<string, IncomingCall>();
  /** ACKs we sent for 2xx, re-sent when the 2xx comes again (by dialog id). */
  readonly #acks = new Map<string, { req: SipRequest; target: Endpoint }>();
  readonly #registrations = new Map<string, { callId: string; cseq: number }>();
  #inviteHandler: ((call: IncomingCall) => void) | undefined;
  #requestHandler: ((req: SipRequest, tx: ServerTransaction, source: Source) => void) | undefined;

  constructor(layer: TransactionLayer, opts: UserAgentOptions = {}) {
    this.layer = layer;
    this.#opts = opts;
    layer.setUser(this);
  }

  /** Transport + transaction layer + UA in one, listening on `listen` (port 0 allowed). */
  static async create(
    listen: ListenSpec[],
    opts: UserAgentOptions & { transportOptions?: TransportOptions; transactionOptions?: TransactionOptions } = {},
  ): Promise<UserAgent> {
    const transport = new TransportLayer(opts.transportOptions);
    try {
      for (const spec of listen) await transport.listen(spec);
    } catch (err) {
      await transport.close();
      throw err;
    }
    const ua = new UserAgent(new TransactionLayer(transport, opts.transactionOptions), {
      transport: listen[0]?.transport ?? 'udp',
      ...opts,
    });
    ua.transportLayer = transport;
    return ua;
  }

  /** Open dialogs. */
  get dialogCount(): number {
    return this.#dialogs.size;
  }

  /** Handler for new incoming INVITEs; without one they are answered 480. */
  onInvite(handler: (call: IncomingCall) => void): void {
    this.#inviteHandler = handler;
  }

  /** Handler for other out-of-dialog requests; without one OPTIONS gets 200 and the rest 405. */
  setRequestHandler(handler: (req: SipRequest, tx: ServerTransaction, source: Source) => void): void {
    this.#requestHandler = handler;
  }

  /** Our AOR for a request towards `target`. */
  aorFor(target: Endpoint): string {
    if (this.#opts.aor) return this.#opts.aor;
    const v = this.layer.transport.viaFor(target);
    return `sip:${this.#opts.contactUser ?? 'tandem'}@${v.host}`;
  }

  /** Our Contact value for requests to / dialogs over `target`. */
  contactFor(target: Endpoint): string {
    const v = this.layer.transport.viaFor(target);
    let user = this.#opts.contactUser;
    if (user === undefined && this.#opts.aor) {
      const na = parseNameAddr(this.#opts.aor);
      user = na.ok ? na.value.uri.user : undefined;
    }
    const t = target.transport === 'udp' ? '' : `;transport=${target.transport}`;
    return `<sip:${user ?? 'tandem'}@${v.host}:${v.port}${t}>`;
  }

  #from(target: Endpoint, from?: string): string {
    if (from) return from;
    const aor = this.aorFor(target);
    const uri = aor.startsWith('<') ? aor : `<${aor}>`;
    return this.#opts.displayName ? `"${this.#opts.displayName}" ${uri}` : uri;
  }

  #target(uri: string, target?: Endpoint): Endpoint {
    if (target) return target;
    const t = uriToEndpoint(uri, this.#opts.transport ?? 'udp');
    if (!t) throw new Error(`SIP_ERR_BAD_URI: cannot route to ${uri}`);
    return t;
  }

  #build(o: RequestOptions, target: Endpoint, extra: [string, string][] = []): SipRequest {
    const body = toBuffer(o.body);
    return createRequest({
      method: o.method,
      uri: o.uri,
      from: this.#from(target, o.from),
      to: o.to ?? `<${o.uri}>`,
      ...(o.callId ? { callId: o.callId } : {}),
      cseq: o.cseq ?? 1,
      headers: [...extra, ['User-Agent', this.#opts.userAgent ?? 'Tandem'], ...(o.headers ?? [])],
      ...(body ? { body } : {}),
      ...(o.contentType ? { contentType: o.contentType } : {}),
    });
  }

  // ---- UAC ------------------------------------------------------------------------------

  /**
   * Sends an out-of-dialog non-INVITE request and resolves with the final response; a 401/407
   * is answered once with credentials. Timeout and transport failure resolve with a local 408
   * or 503 (`isLocalResponse`), as §8.1.3.1 says to treat them.
   */
  async request(o: RequestOptions): Promise<SipResponse> {
    if (o.method === 'INVITE' || o.method === 'ACK') throw new Error('SIP_ERR_USE_INVITE: use invite() for INVITE');
    const target = this.#target(o.uri, o.target);
    const req = this.#build(o, target);
    return this.#sendWithAuth(req, target);
  }

  /** REGISTER (RFC 3261 §10.2), reusing Call-ID and incrementing CSeq per AOR. */
  async register(o: RegisterOptions): Promise<SipResponse> {
    const target = this.#target(o.registrar, o.target);
    const aor = o.aor ?? this.aorFor(target);
    const aorUri = aor.startsWith('<') ? aor : `<${aor}>`;
    let reg = this.#registrations.get(aor);
    if (!reg) {
      reg = { callId: newCallId(), cseq: 0 };
      this.#registrations.set(aor, reg);
    }
    reg.cseq++;
    const req = this.#build(
      { method: 'REGISTER', uri: o.registrar, to: aorUri, from: aorUri, callId: reg.callId, cseq: reg.cseq, target, ...(o.headers ? { headers: o.headers } : {}) },
      target,
      [
        ['Contact', o.contact ?? this.contactFor(target)],
        ['Expires', String(o.expiresSec ?? 3600)],
      ],
    );
    const res = await this.#sendWithAuth(req, target);
    reg.cseq = Math.max(reg.cseq, res.cseq.seq);
    return res;
  }

  /** Places a call. The returned handle collects provisional responses and resolves `final`. */
  invite(o: InviteOptions): OutgoingCall {
    const target = this.#target(o.uri, o.target);
    const sdp = toBuffer(o.sdp);
    const req = this.#build(
      {
        ...o,
        method: 'INVITE',
        ...(sdp ? { body: sdp, contentType: o.contentType ?? 'application/sdp' } : {}),
      },
      target,
      [['Contact', this.contactFor(target)]],
    );
    const call = new OutgoingCall(this, req, target, o.onProvisional);
    call.start();
    return call;
  }

  /** @internal Sends one client transaction; resolves with its final (or local 408/503) response. */
  sendOnce(req: SipRequest, target: Endpoint, h: { onProvisional?(r: SipResponse): void } = {}): Promise<SipResponse> {
    return new Promise((resolve) => {
      try {
        this.layer.sendRequest(req, target, {
          ...(h.onProvisional ? { onProvisional: h.onProvisional } : {}),
          onFinal: resolve,
          onTimeout: () => resolve(localResponse(req, 408, 'Request Timeout')),
          onTransportError: () => resolve(localResponse(req, 503, 'Service Unavailable')),
        });
      } catch {
        resolve(localResponse(req, 503, 'Service Unavailable'));
      }
    });
  }

  async #sendWithAuth(req: SipRequest, target: Endpoint): Promise<SipResponse> {
    const res = await this.sendOnce(req, target);
    const retry = this.authorize(req, res);
    return retry ? this.sendOnce(retry, target) : res;
  }

  /**
   * @internal For a 401/407, a copy of `req` with credentials for the challenge and the next
   * CSeq (RFC 3261 §22.2); undefined when there is nothing to answer with.
   */
  authorize(req: SipRequest, res: SipResponse): SipRequest | undefined {
    const creds = this.#opts.credentials;
    if (!creds || (res.status !== 401 && res.status !== 407)) return undefined;
    const proxy = res.status === 407;
    const challenges = res.getAll(proxy ? 'Proxy-Authenticate' : 'WWW-Authenticate');
    for (const value of challenges) {
      const ch = parseChallenge(value);
      if (!ch.ok) continue;
      const auth = buildAuthorization(ch.value, creds, req.method, req.uri);
      if (!auth.ok) continue;
      const next = req.clone();
      next.remove('Via');
      next.set('CSeq', `${req.cseq.seq + 1} ${req.method}`);
      next.remove(proxy ? 'Proxy-Authorization' : 'Authorization');
      next.append(proxy ? 'Proxy-Authorization' : 'Authorization', auth.value);
      return next;
    }
    return undefined;
  }

  // ---- DialogHost -----------------------------------------------------------------------

  /** @internal */
  sendRequest(req: SipRequest, target: Endpoint): Promise<SipResponse> {
    return this.#sendWithAuth(req, target);
  }

  /** @internal */
  sendStateless(req: SipRequest, target: Endpoint): Promise<void> {
    if (!req.has('Via')) req.prepend('Via', this.layer.transport.viaValue(target, newBranch()));
    return this.layer.sendStateless(req, target);
  }

  /** @internal */
  removeDialog(d: Dialog): void {
    this.#dialogs.delete(d.id);
    this.#acks.delete(d.id);
    this.#awaitingAck.get(d.id)?.dialogEnded();
    this.#awaitingAck.delete(d.id);
  }

  /** @internal UAC dialog from a 2xx to our INVITE (RFC 3261 §12.1.2). */
  createUacDialog(invite: SipRequest, res: SipResponse, target: Endpoint): Dialog {
    const contact = res.contacts[0];
    const d = new Dialog(this, {
      callId: invite.callId,
      localTag: invite.fromTag ?? '',
      remoteTag: res.toTag ?? '',
      local: invite.get('From')!,
      remote: res.get('To')!,
      localSeq: invite.cseq.seq,
      remoteSeq: undefined,
      remoteTarget: contact && contact !== '*' ? formatUri(contact.uri) : invite.uri,
      routeSet: res.getAll('Record-Route').reverse(),
      contact: invite.get('Contact') ?? this.contactFor(target),
      transport: target.transport,
      isUac: true,
    });
    this.#dialogs.set(d.id, d);
    return d;
  }

  /** @internal */
  rememberAck(d: Dialog, ack: { req: SipRequest; target: Endpoint }): void {
    this.#acks.set(d.id, ack);
  }

  /** @internal Re-sends the ACK for a retransmitted 2xx; true when the dialog is known. */
  resendAck(res: SipResponse): boolean {
    const ack = this.#acks.get(dialogId(res.callId, res.fromTag ?? '', res.toTag ?? ''));
    if (!ack) return false;
    this.layer.sendStateless(ack.req, ack.target).catch(() => {});
    return true;
  }

  // ---- TransactionUser ------------------------------------------------------------------

  /** @internal */
  onStrayResponse(res: SipResponse): void {
    // A 2xx retransmitted after Timer M: the ACK is lost, send it again (§13.2.2.4).
    if (res.status >= 200 && res.status < 300 && res.cseq.method === 'INVITE') this.resendAck(res);
  }

  /** @internal */
  onRequest(req: SipRequest, tx: ServerTransaction | undefined, source: Source): void {
    const toTag = req.toTag;
    if (toTag !== undefined) {
      const id = dialogId(req.callId, toTag, req.fromTag ?? '');
      if (req.method === 'ACK') {
        const call = this.#awaitingAck.get(id);
        if (call) {
          this.#awaitingAck.delete(id);
          call.acked(req);
        }
        return;
      }
      const d = this.#dialogs.get(id);
      if (d) d.receive(req, tx);
      else tx?.respond(createResponse(req, 481, 'Call/Transaction Does Not Exist'));
      return;
    }
    if (!tx) return; // stray ACK
    if (req.method === 'INVITE') {
      const call = new IncomingCall(this, req, tx, source);
      if (!this.#inviteHandler) return call.reject(480);
      try {
        this.#inviteHandler(call);
      } catch (err) {
        call.reject(500, 'Server Internal Error');
        throw err;
      }
      return;
    }
    if (this.#requestHandler) {
      try {
        this.#requestHandler(req, tx, source);
      } catch (err) {
        if (tx.state === 'Trying') tx.respond(createResponse(req, 500, 'Server Internal Error'));
        throw err;
      }
      return;
    }
    const allow: [string, string][] = [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS']];
    tx.respond(createResponse(req, req.method === 'OPTIONS' ? 200 : 405, undefined, { headers: allow }));
  }

  /** @internal UAS dialog from the 2xx we send (RFC 3261 §12.1.1). */
  createUasDialog(invite: SipRequest, localTag: string, contact: string, transport: TransportName): Dialog {
    const c = invite.contacts[0];
    const d = new Dialog(this, {
      callId: invite.callId,
      localTag,
      remoteTag: invite.fromTag ?? '',
      local: `${invite.get('To')!};tag=${localTag}`,
      remote: invite.get('From')!,
      localSeq: 0,
      remoteSeq: invite.cseq.seq,
      remoteTarget: c && c !== '*' ? formatUri(c.uri) : '',
      routeSet: invite.getAll('Record-Route'),
      contact,
      transport,
      isUac: false,
    });
    this.#dialogs.set(d.id, d);
    return d;
  }

  /** @internal */
  awaitAck(d: Dialog, call: IncomingCall): void {
    this.#awaitingAck.set(d.id, call);
  }

  /** Forgets every dialog (no BYE) and closes the transport if `create` made it. */
  async close(): Promise<void> {
    for (const d of [...this.#dialogs.values()]) d.terminateLocally();
    this.layer.close();
    await this.transportLayer?.close();
  }
}

/**
 * An outgoing INVITE: `provisionals` collects 1xx, `final` resolves with the final response
 * (local 408/503 on timeout/transport error). On 2xx the dialog is created and ACKed
 * (§13.2.2.4: route set from Record-Route reversed, remote target from Contact).
 */
export class OutgoingCall {
  readonly provisionals: SipResponse[] = [];
  readonly final: Promise<SipResponse>;
  dialog: Dialog | undefined;
  request: SipRequest;
  #resolve!: (r: SipResponse) => void;
  #tx: ClientTransaction | undefined;
  #authTried = false;
  #cancelRequested = false;

  constructor(
    readonly ua: UserAgent,
    request: SipRequest,
    readonly target: Endpoint,
    readonly onProvisional?: (res: SipResponse) => void,
  ) {
    this.request = request;
    this.final = new Promise((r) => (this.#resolve = r));
  }

  /** @internal */
  start(): void {
    const req = this.request;
    try {
      this.#tx = this.ua.layer.sendRequest(req, this.target, {
        onProvisional: (r) => {
          this.provisionals.push(r);
          this.onProvisional?.(r);
        },
        onFinal: (r) => this.#onFinal(r),
        onAdditional2xx: (r) => this.#onAnother2xx(r),
        onTimeout: () => this.#resolve(localResponse(req, 408, 'Request Timeout')),
        onTransportError: () => this.#resolve(localResponse(req, 503, 'Service Unavailable')),
      });
    } catch {
      this.#resolve(localResponse(req, 503, 'Service Unavailable'));
    }
  }

  #onFinal(res: SipResponse): void {
    if ((res.status === 401 || res.status === 407) && !this.#authTried && !this.#cancelRequested) {
      const next = this.ua.authorize(this.request, res);
      if (next) {
        this.#authTried = true;
        this.request = next;
        this.start();
        return;
      }
    }
    if (res.status >= 200 && res.status < 300) {
      try {
        const d = this.ua.createUacDialog(this.request, res, this.target);
        this.dialog = d;
        this.ua.rememberAck(d, d.sendAck(this.request.cseq.seq));
        // §15: a 2xx that crossed our CANCEL still makes a dialog; end it at once.
        if (this.#cancelRequested) d.bye().catch(() => {});
      } catch {
        // A 2xx whose Contact/Record-Route cannot be routed: the caller still gets the response.
      }
    }
    this.#resolve(res);
  }

  #onAnother2xx(res: SipResponse): void {
    if (this.ua.resendAck(res)) return;
    // A 2xx from another fork (§13.2.2.4): ACK it, then end that dialog with BYE.
    try {
      const d = this.ua.createUacDialog(this.request, res, this.target);
      d.sendAck(this.request.cseq.seq);
      d.bye().catch(() => {});
    } catch {
      // unroutable fork: nothing to ACK it with
    }
  }

  /** CANCELs the INVITE (sent once a provisional response has arrived, §9.1). */
  cancel(): void {
    this.#cancelRequested = true;
    if (this.#tx) this.ua.layer.cancel(this.#tx);
  }

  /** Ends the established call with BYE. */
  bye(): Promise<SipResponse> {
    if (!this.dialog) return Promise.reject(new Error('SIP_ERR_NO_DIALOG: call not established'));
    return this.dialog.bye();
  }
}

/**
 * An incoming INVITE: `ring()`, `answer(sdp)` (resolves when the ACK arrives; the 2xx is
 * retransmitted until then, §13.3.1.4), `reject(status)`. A CANCEL is answered 487 here and
 * reported through `onCancel`.
 */
export class IncomingCall {
  readonly localTag = newTag();
  state: 'offered' | 'answered' | 'confirmed' | 'rejected' | 'cancelled' | 'ended' = 'offered';
  dialog: Dialog | undefined;
  #cancelHandler: ((cancel: SipRequest) => void) | undefined;
  #ackWait: { resolve: (d: Dialog) => void; reject: (e: Error) => void } | undefined;
  #retransmit: TimerHandle | undefined;
  #giveUp: TimerHandle | undefined;
  readonly #contact: string;

  constructor(
    readonly ua: UserAgent,
    readonly request: SipRequest,
    readonly tx: ServerTransaction,
    readonly source: Source,
  ) {
    this.#contact = ua.contactFor(source);
    tx.on('cancel', (cancel) => {
      if (this.state !== 'offered') return;
      this.state = 'cancelled';
      tx.respond(createResponse(request, 487, 'Request Terminated', { toTag: this.localTag }));
      this.#cancelHandler?.(cancel);
    });
  }

  /** The SDP offer, if any. */
  get sdp(): string | undefined {
    return this.request.body.length ? this.request.body.toString('utf8') : undefined;
  }

  onCancel(handler: (cancel: SipRequest) => void): void {
    this.#cancelHandler = handler;
  }

  /** Sends a provisional response (default 180 Ringing). */
  ring(status = 180, sdp?: string | Buffer): void {
    if (this.state !== 'offered') return;
    const body = toBuffer(sdp);
    this.tx.respond(
      createResponse(this.request, status, undefined, {
        toTag: this.localTag,
        headers: [['Contact', this.#contact]],
        ...(body ? { body, contentType: 'application/sdp' } : {}),
      }),
    );
  }

  /** Sends 200 OK; resolves with the dialog when the ACK arrives, rejects if none within 64*T1 (then sends BYE). */
  answer(sdp?: string | Buffer, contentType = 'application/sdp'): Promise<Dialog> {
    if (this.state !== 'offered') return Promise.reject(new Error(`SIP_ERR_CALL_STATE: call is ${this.state}`));
    this.state = 'answered';
    const body = toBuffer(sdp);
    const res = createResponse(this.request, 200, 'OK', {
      toTag: this.localTag,
      headers: [
        ['Contact', this.#contact],
        ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS'],
      ],
      ...(body ? { body, contentType } : {}),
    });
    const d = this.ua.createUasDialog(this.request, this.localTag, this.#contact, this.source.transport);
    this.dialog = d;
    this.ua.awaitAck(d, this);
    const promise = new Promise<Dialog>((resolve, reject) => (this.#ackWait = { resolve, reject }));
    this.tx.respond(res);
    // §13.3.1.4: the UAS core retransmits the 2xx (T1 doubling to T2) until the ACK arrives,
    // and gives up (ending the dialog with BYE) after 64*T1.
    const wheel = this.ua.layer.wheel;
    const t1 = this.ua.layer.t1Ms;
    if (this.source.transport === 'udp') {
      let interval = t1;
      const again = (): void => {
        if (this.state !== 'answered') return;
        this.tx.respond(res);
        interval = Math.min(2 * interval, this.ua.layer.t2Ms);
        this.#retransmit = wheel.schedule(interval, again);
      };
      this.#retransmit = wheel.schedule(interval, again);
    }
    this.#giveUp = wheel.schedule(64 * t1, () => {
      if (this.state !== 'answered') return;
      this.state = 'ended';
      wheel.cancel(this.#retransmit);
      this.#ackWait?.reject(new Error('SIP_ERR_NO_ACK: no ACK for 2xx'));
      d.bye().catch(() => {});
    });
    return promise;
  }

  /** Sends a final non-2xx response (default 486 Busy Here). */
  reject(status = 486, reason?: string): void {
    if (this.state !== 'offered') return;
    this.state = 'rejected';
    this.tx.respond(createResponse(this.request, status, reason, { toTag: this.localTag }));
  }

  /** @internal The ACK for our 2xx arrived. */
  acked(_ack: SipRequest): void {
    if (this.state !== 'answered') return;
    this.state = 'confirmed';
    const wheel = this.ua.layer.wheel;
    wheel.cancel(this.#retransmit);
    wheel.cancel(this.#giveUp);
    this.#ackWait?.resolve(this.dialog!);
  }

  /** @internal The dialog ended before the ACK (BYE crossed it). */
  dialogEnded(): void {
    const wheel = this.ua.layer.wheel;
    wheel.cancel(this.#retransmit);
    wheel.cancel(this.#giveUp);
    if (this.state === 'answered') {
      this.state = 'ended';
      this.#ackWait?.reject(new Error('SIP_ERR_DIALOG_TERMINATED: dialog ended before ACK'));
    }
  }
}
