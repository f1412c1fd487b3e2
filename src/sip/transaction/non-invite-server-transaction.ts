import type { TimerHandle } from '../../util/timer-wheel.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import type { ViaLike } from '../transport/response-routing.js';
import type { Source } from '../transport/types.js';
import { TxEmitter } from './tx-emitter.js';
import type { ServerTransaction, ServerTransactionEvents, TransactionState, TxContext } from './types.js';

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
 */
export class NonInviteServerTransaction extends TxEmitter<ServerTransactionEvents> implements ServerTransaction {
  readonly isInvite = false;
  readonly cancelled = false;
  state: TransactionState = 'Trying';
  #last: Buffer | undefined;
  #via: ViaLike | undefined;
  #lastStatus: number | undefined;
  #timer: TimerHandle | undefined;

  constructor(
    readonly ctx: TxContext,
    readonly key: string,
    readonly request: SipRequest,
    readonly source: Source,
  ) {
    super();
    this.#timer = ctx.wheel.schedule(64 * ctx.t1, () => {
      if (this.state === 'Trying' || this.state === 'Proceeding') {
        this.ctx.diag('tu-timeout', this);
        this.terminate();
        this.emit('timeout');
      }
    });
  }

  /** Status of the last response sent (undefined before the TU answered). */
  get lastStatus(): number | undefined {
    return this.#lastStatus;
  }

  respond(res: SipResponse): void {
    if (this.state === 'Completed' || this.state === 'Terminated') return;
    // Only the bytes and the top Via are kept for retransmissions, not the response object.
    this.#last = res.toBuffer();
    // The response's Via list is the request's (§8.2.6), already parsed: route by it.
    this.#via = this.request.topVia;
    this.#lastStatus = res.status;
    if (res.status < 200) {
      this.state = 'Proceeding';
      this.#send();
      return;
    }
    this.state = 'Completed';
    this.ctx.wheel.cancel(this.#timer);
    this.#timer = undefined;
    if (this.source.transport === 'udp') this.#timer = this.ctx.wheel.schedule(64 * this.ctx.t1, () => this.terminate()); // Timer J
    this.#send();
    if (this.source.transport !== 'udp') this.terminate();
  }

  #send(): void {
    this.ctx.transport.sendResponseRaw(this.#last!, this.#via!, this.source).catch((err: Error) => {
      if (this.state === 'Terminated') return;
      this.ctx.diag('transport-error', this);
      this.terminate();
      this.emit('transportError', err);
    });
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
    this.#last = this.#via = undefined;
    this.ctx.removeServer(this.key);
    this.emit('terminated');
  }
}
