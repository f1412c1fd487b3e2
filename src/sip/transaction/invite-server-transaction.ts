import type { TimerHandle } from '../../util/timer-wheel.js';
import { createResponse } from '../message/builders.js';
import { parseMessage } from '../message/parser.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import { responseDestination } from '../transport/response-routing.js';
import type { Endpoint, Source } from '../transport/types.js';
import { ownString, ownStringAs } from '../../util/string-calls.js';
import { TxEmitter } from './tx-emitter.js';
import type { ServerTransaction, ServerTransactionEvents, TransactionState, TxContext } from './types.js';
import { requestFromOwnBytes } from './request-builders.js';

/**
 * INVITE server transaction (RFC 3261 §17.2.1, figure 7, as updated by RFC 6026 §7.1).
 *
 * ```
 *  Proceeding --2xx from TU--> Accepted --Timer L--> Terminated
 *      |
 *      +--300-699 from TU--> Completed --ACK--> Confirmed --Timer I--> Terminated
 *                                |
 *                                +--Timer H (no ACK)--> Terminated
 * ```
 * "The server transaction MUST generate a 100 (Trying) response unless it knows that the TU
 * will generate a provisional or final response within 200 ms." A retransmitted INVITE in
 * Proceeding gets the last provisional again; in Completed the final again (and Timer G
 * retransmits it: T1 doubling to T2, UDP only); Timer H = 64*T1; Timer I = T4 (0 reliable).
 * RFC 6026: in Accepted, "Any retransmissions of the 2xx response passed from the TU to the
 * transaction while in the Accepted state MUST be passed to the transport layer", INVITE
 * retransmissions are absorbed, and an ACK is passed to the TU; Timer L = 64*T1.
 *
 * Memory: after the final response (the 64*T1 of Timer L or H, the longest-lived state) the
 * transaction keeps where responses go, its match data and the request's bytes, and for a
 * non-2xx (Completed: Timer G re-sends it) that response's bytes; the parsed request, the last
 * response object and the TU's `cancel` listeners are dropped (the request is re-parsed from its
 * bytes if `request` is read again; `lastResponse` is undefined in Accepted).
 */
export class InviteServerTransaction extends TxEmitter<ServerTransactionEvents> implements ServerTransaction {
  /** §17.2.3 match data: the creating request's method and top Via sent-by. */
  readonly method: string = 'INVITE';
  readonly viaHost: string;
  readonly viaPort: number | undefined;
  readonly isInvite = true;
  state: TransactionState = 'Proceeding';
  cancelled = false;
  /** The last response while Proceeding; after the final one only its bytes (`#last`) are kept. */
  #lastRes: SipResponse | undefined;
  #toTag: string | undefined;
  #responded = false;
  #last: Buffer | undefined;
  #interval: number;
  #retransmit: TimerHandle | undefined;
  #timeout: TimerHandle | undefined;
  #dest: Endpoint | undefined;
  readonly #reliable: boolean;
  #request: SipRequest | undefined;
  /** The request's wire form, kept instead of `#request` after the final response. */
  #requestBytes: Buffer | undefined;
  /** To tag of the request (RFC 2543 matching reads it). */
  readonly requestToTag: string | undefined;

  constructor(
    readonly ctx: TxContext,
    readonly key: string,
    request: SipRequest,
    readonly source: Source,
  ) {
    super();
    this.#request = request;
    const rt = request.toTag;
    this.requestToTag = rt === undefined ? undefined : ownString(rt);
    const via = request.topVia;
    this.viaHost = ownStringAs(via.host, source.address);
    this.viaPort = via.port;
    this.#reliable = source.transport !== 'udp';
    this.#interval = ctx.t1;
    const auto = ctx.opts.autoTryingMs;
    if (auto === 0) this.#trying();
    else if (auto > 0) this.#retransmit = ctx.wheel.schedule(auto, InviteServerTransaction.#onTrying, this);
    this.#timeout = ctx.wheel.schedule(ctx.opts.inviteServerTimeoutMs, InviteServerTransaction.#onTuTimeout, this);
  }

  // Shared callbacks with the transaction as argument: no closure per timer or send.
  static #onTrying(tx: InviteServerTransaction): void {
    tx.#trying();
  }

  static #onTuTimeout(tx: InviteServerTransaction): void {
    if (tx.state !== 'Proceeding') return;
    tx.ctx.diag('tu-timeout', tx);
    tx.terminate();
    tx.emit('timeout');
  }

  static #onTimerG(tx: InviteServerTransaction): void {
    tx.#timerG();
  }

  static #onTimerH(tx: InviteServerTransaction): void {
    tx.#timerH();
  }

  static #onTerminate(tx: InviteServerTransaction): void {
    tx.terminate();
  }

  static #onSendError(err: Error, tx: InviteServerTransaction): void {
    if (tx.state === 'Terminated') return;
    tx.ctx.diag('transport-error', tx);
    if (tx.state === 'Accepted') {
      // Accepted only ends with Timer L; the TU learns of the failed 2xx and may end the dialog.
      tx.emit('transportError', err);
      return;
    }
    tx.terminate();
    tx.emit('transportError', err);
  }

  /** The request that created the transaction (re-parsed from its bytes when read after it was dropped). */
  get request(): SipRequest {
    let r = this.#request;
    if (r === undefined) {
      r = requestFromOwnBytes(this.#requestBytes!);
      this.#request = r;
    }
    return r;
  }

  /** The last response sent (undefined before any, and in Accepted, which keeps no bytes of its 2xx). */
  get lastResponse(): SipResponse | undefined {
    if (this.#lastRes === undefined && this.#last !== undefined) {
      // Dropped after the final response (memory during Timer L/H/I): re-parse its bytes once.
      const p = parseMessage(this.#last);
      if (p.ok) this.#lastRes = p.value as SipResponse;
    }
    return this.#lastRes;
  }

  /** To tag of the last response carrying one (the CANCEL's 200 reuses it, §9.2). */
  get toTag(): string | undefined {
    return this.#toTag;
  }

  #trying(): void {
    this.#retransmit = undefined;
    if (this.state === 'Proceeding' && !this.#responded) this.respond(createResponse(this.request, 100));
  }

  respond(res: SipResponse): void {
    const s = res.status;
    if (this.state === 'Accepted') {
      if (s >= 200 && s < 300) this.#send(res.toBuffer());
      return;
    }
    if (this.state !== 'Proceeding') return;
    const w = this.ctx.wheel;
    this.#lastRes = res;
    this.#responded = true;
    const tag = res.toTag;
    this.#toTag = tag === undefined ? undefined : ownString(tag);
    const data = (this.#last = res.toBuffer());
    if (s >= 200) {
      // State first, then send: the ACK may come back before send() returns.
      w.cancel(this.#retransmit);
      w.cancel(this.#timeout);
      this.#retransmit = this.#timeout = undefined;
      if (s < 300) {
        this.state = 'Accepted';
        this.ctx.endAfterLinger(this); // Timer L
      } else {
        this.state = 'Completed';
        if (!this.#reliable) this.#retransmit = w.schedule(this.#interval, InviteServerTransaction.#onTimerG, this);
        this.#timeout = w.schedule(64 * this.ctx.t1, InviteServerTransaction.#onTimerH, this);
      }
      this.#lastRes = undefined; // Timer L/H: only the bytes are needed from here on
      this.#send(data);
      // Accepted never sends it again by itself (RFC 6026: the TU retransmits its 2xx, and
      // INVITE retransmissions are absorbed), so its bytes are not kept for Timer L either.
      if (s < 300) this.#last = undefined;
      this.#release();
      return;
    }
    this.#send(data);
  }

  /** After the final response: keep bytes and keys, not parsed objects nor the TU's closures. */
  #release(): void {
    this.removeAllListeners('cancel');
    const req = this.#request;
    if (req === undefined || this.#dest === undefined) return;
    // Serializing has no side effect on the TU's object only when Content-Length is right.
    if (req.contentLength === req.body.length) {
      this.#requestBytes = req.toBuffer();
      this.#request = undefined;
    }
  }

  #send(data: Buffer): void {
    // The response's Via list is the request's (§8.2.6), already parsed: route by it, once.
    let dest = this.#dest;
    if (dest === undefined) {
      dest = this.#dest = responseDestination(this.request.topVia, this.source);
      if (dest === undefined) {
        const err = new Error(`SIP_ERR_NO_TRANSPORT: cannot send response over ${this.request.topVia.transport}`);
        queueMicrotask(() => InviteServerTransaction.#onSendError(err, this));
        return;
      }
    }
    const source = this.source;
    this.ctx.transport.transmit(data, dest, InviteServerTransaction.#onSendError, this, source.transport === dest.transport ? source : undefined);
  }

  #timerG(): void {
    if (this.state !== 'Completed') return;
    this.#send(this.#last!);
    this.#interval = Math.min(2 * this.#interval, this.ctx.t2);
    this.#retransmit = this.ctx.wheel.schedule(this.#interval, InviteServerTransaction.#onTimerG, this);
  }

  #timerH(): void {
    if (this.state !== 'Completed') return;
    this.ctx.diag('timeout', this);
    this.terminate();
    this.emit('timeout');
  }

  /** A retransmitted INVITE matched. */
  receiveRequest(_req: SipRequest): void {
    if ((this.state === 'Proceeding' || this.state === 'Completed') && this.#last !== undefined) {
      this.#send(this.#last!);
    }
  }

  /**
   * An ACK matched. Returns true when it was absorbed here (ACK to a non-2xx), false when it
   * must go to the TU (RFC 6026 Accepted state: the ACK to a 2xx).
   */
  receiveAck(_ack: SipRequest): boolean {
    if (this.state === 'Accepted') return false;
    if (this.state === 'Completed') {
      const w = this.ctx.wheel;
      w.cancel(this.#retransmit);
      w.cancel(this.#timeout);
      this.#retransmit = undefined;
      this.state = 'Confirmed';
      if (this.#reliable) this.terminate();
      else this.#timeout = w.schedule(this.ctx.t4, InviteServerTransaction.#onTerminate, this); // Timer I
    }
    return true;
  }

  /** A CANCEL matched (the layer answers the CANCEL itself). */
  receiveCancel(cancel: SipRequest): void {
    if (this.state !== 'Proceeding' || this.cancelled) return;
    this.cancelled = true;
    this.emit('cancel', cancel);
  }

  terminate(): void {
    if (this.state === 'Terminated') return;
    this.state = 'Terminated';
    this.ctx.wheel.cancel(this.#retransmit);
    this.ctx.wheel.cancel(this.#timeout);
    this.#retransmit = this.#timeout = undefined;
    this.ctx.removeServer(this.key, this);
    this.emit('terminated');
  }
}
