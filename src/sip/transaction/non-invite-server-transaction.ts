import type { TimerHandle } from '../../util/timer-wheel.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import { responseDestination } from '../transport/response-routing.js';
import type { Endpoint, Source } from '../transport/types.js';
import { ownString, ownStringAs } from '../../util/string-calls.js';
import { TxEmitter } from './tx-emitter.js';
import type { ServerTransaction, ServerTransactionEvents, TransactionState, TxContext } from './types.js';
import { requestFromOwnBytes } from './request-builders.js';

/**
 * Non-INVITE server transaction (RFC 3261 §17.2.2, figure 8).
 *
 * ```
 *  Trying --1xx from TU--> Proceeding --200-699 from TU--> Completed --Timer J--> Terminated
 *     \_____________________200-699 from TU___________________/^
 * ```
 * "Once in the Trying state, any further request retransmissions are discarded." In Proceeding
 * a retransmission gets the last provisional response again; in Completed, the final response.
 * Timer J = 64*T1 for UDP, 0 for reliable transports. If the TU never answers, the transaction
 * is removed after 64*T1 (the client's Timer F has fired by then).
 *
 * Memory: in Completed (the 64*T1 of Timer J, the longest-lived state) the transaction keeps
 * only the bytes of its last response, where they go, and the request's bytes; the parsed
 * request is dropped and re-parsed from its bytes if `request` is read again.
 */
export class NonInviteServerTransaction extends TxEmitter<ServerTransactionEvents> implements ServerTransaction {
  /** §17.2.3 match data: the creating request's method and top Via sent-by. */
  readonly method: string;
  readonly viaHost: string;
  readonly viaPort: number | undefined;
  /** To tag of the request (RFC 2543 matching reads it). */
  readonly requestToTag: string | undefined;
  readonly isInvite = false;
  readonly cancelled = false;
  state: TransactionState = 'Trying';
  #request: SipRequest | undefined;
  /** The request's wire form, kept instead of `#request` once Completed. */
  #requestBytes: Buffer | undefined;
  #last: Buffer | undefined;
  /** Where responses go (§18.2.2, RFC 3581), computed once from the request's top Via. */
  #dest: Endpoint | undefined;
  #lastStatus: number | undefined;
  #timer: TimerHandle | undefined;

  constructor(
    readonly ctx: TxContext,
    readonly key: string,
    request: SipRequest,
    readonly source: Source,
  ) {
    super();
    this.#request = request;
    this.method = request.method;
    const rt = request.toTag;
    this.requestToTag = rt === undefined ? undefined : ownString(rt);
    const via = request.topVia;
    this.viaHost = ownStringAs(via.host, source.address);
    this.viaPort = via.port;
    this.#timer = ctx.wheel.schedule(64 * ctx.t1, NonInviteServerTransaction.#onTuTimeout, this);
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

  /** Status of the last response sent (undefined before the TU answered). */
  get lastStatus(): number | undefined {
    return this.#lastStatus;
  }

  static #onTuTimeout(tx: NonInviteServerTransaction): void {
    tx.#timer = undefined;
    if (tx.state === 'Trying' || tx.state === 'Proceeding') {
      tx.ctx.diag('tu-timeout', tx);
      tx.terminate();
      tx.emit('timeout');
    }
  }

  static #onSendError(err: Error, tx: NonInviteServerTransaction): void {
    if (tx.state === 'Terminated') return;
    tx.ctx.diag('transport-error', tx);
    tx.terminate();
    tx.emit('transportError', err);
  }

  respond(res: SipResponse): void {
    if (this.state === 'Completed' || this.state === 'Terminated') return;
    // Only the bytes and the destination are kept for retransmissions, not the response object.
    this.#last = res.toBuffer();
    // The response's Via list is the request's (§8.2.6), already parsed: route by it.
    this.#dest ??= responseDestination(this.request.topVia, this.source);
    this.#lastStatus = res.status;
    if (res.status < 200) {
      this.state = 'Proceeding';
      this.#send();
      return;
    }
    this.state = 'Completed';
    const w = this.ctx.wheel;
    w.cancel(this.#timer);
    this.#timer = undefined;
    if (this.source.transport === 'udp') {
      this.ctx.endAfterLinger(this); // Timer J
      const req = this.#request!;
      // Serializing has no side effect on the TU's object only when Content-Length is right.
      if (req.contentLength === req.body.length) {
        this.#requestBytes = req.toBuffer();
        this.#request = undefined;
      }
    }
    this.#send();
    if (this.source.transport !== 'udp') this.terminate();
  }

  #send(): void {
    const dest = this.#dest;
    if (dest === undefined) {
      const err = new Error(`SIP_ERR_NO_TRANSPORT: cannot send response over ${this.request.topVia.transport}`);
      queueMicrotask(() => NonInviteServerTransaction.#onSendError(err, this));
      return;
    }
    const source = this.source;
    this.ctx.transport.transmit(this.#last!, dest, NonInviteServerTransaction.#onSendError, this, source.transport === dest.transport ? source : undefined);
  }

  /** A retransmission of the request matched this transaction. */
  receiveRequest(_req: SipRequest): void {
    if ((this.state === 'Proceeding' || this.state === 'Completed') && this.#last) this.#send();
  }

  terminate(): void {
    if (this.state === 'Terminated') return;
    this.state = 'Terminated';
    this.ctx.wheel.cancel(this.#timer);
    this.#timer = undefined;
    this.#last = this.#dest = undefined;
    this.ctx.removeServer(this.key, this);
    this.emit('terminated');
  }
}
