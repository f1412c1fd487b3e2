import type { TimerHandle } from '../../util/timer-wheel.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import type { Endpoint } from '../transport/types.js';
import type { ClientTransaction, ClientTransactionHandlers, TransactionState, TxContext } from './types.js';
import { requestFromOwnBytes } from './request-builders.js';

/**
 * Non-INVITE client transaction (RFC 3261 §17.1.2, figure 6).
 *
 * ```
 *  Trying --1xx--> Proceeding --200-699--> Completed --Timer K--> Terminated
 *    |  \____________200-699______________/^
 *    +--Timer F / transport error--> Terminated (TU told)
 * ```
 * "Timer E ... fires ... reset with a value of MIN(2*T1, T2) ... If Timer E fires while in the
 * Proceeding state, the request MUST be passed to the transport layer for retransmission, and
 * Timer E MUST be reset with a value of T2 seconds." Timer F = 64*T1; Timer K = T4 (0 reliable).
 */
export class NonInviteClientTransaction implements ClientTransaction {
  readonly isInvite = false;
  readonly method: string;
  state: TransactionState = 'Trying';
  #interval: number;
  #retransmit: TimerHandle | undefined;
  #timeout: TimerHandle | undefined;
  /** The request's wire form: sent and retransmitted, and what `request` is re-parsed from. */
  readonly #bytes: Buffer;
  #request: SipRequest | undefined;
  #handlers: ClientTransactionHandlers;
  readonly #reliable: boolean;

  constructor(
    readonly ctx: TxContext,
    readonly key: string,
    request: SipRequest,
    readonly target: Endpoint,
    handlers: ClientTransactionHandlers,
  ) {
    this.#request = request;
    this.#handlers = handlers;
    this.method = request.method;
    this.#bytes = request.toBuffer();
    this.#reliable = target.transport !== 'udp';
    this.#interval = ctx.t1;
  }

  /** The request sent (re-parsed from its bytes once the transaction completed). */
  get request(): SipRequest {
    let r = this.#request;
    if (r === undefined) {
      r = requestFromOwnBytes(this.#bytes);
      this.#request = r;
    }
    return r;
  }

  get handlers(): ClientTransactionHandlers {
    return this.#handlers;
  }

  start(): void {
    // Timers first: a response may arrive before send() returns (in-process transports).
    const w = this.ctx.wheel;
    if (!this.#reliable) this.#retransmit = w.schedule(this.#interval, NonInviteClientTransaction.#onTimerE, this);
    this.#timeout = w.schedule(64 * this.ctx.t1, NonInviteClientTransaction.#onTimerF, this);
    this.#send();
  }

  // Timer and send-error callbacks are shared functions taking the transaction as argument:
  // no closure is allocated per transaction, per send or per retransmission.
  static #onTimerE(tx: NonInviteClientTransaction): void {
    tx.#timerE();
  }

  static #onTimerF(tx: NonInviteClientTransaction): void {
    tx.#timerF();
  }

  static #onTimerK(tx: NonInviteClientTransaction): void {
    tx.terminate();
  }

  static #onSendError(err: Error, tx: NonInviteClientTransaction): void {
    tx.#transportError(err);
  }

  #send(): void {
    this.ctx.transport.transmit(this.#bytes, this.target, NonInviteClientTransaction.#onSendError, this);
  }

  #timerE(): void {
    this.#retransmit = undefined;
    if (this.state !== 'Trying' && this.state !== 'Proceeding') return;
    this.#send();
    this.#interval = this.state === 'Trying' ? Math.min(2 * this.#interval, this.ctx.t2) : this.ctx.t2;
    this.#retransmit = this.ctx.wheel.schedule(this.#interval, NonInviteClientTransaction.#onTimerE, this);
  }

  #timerF(): void {
    this.#timeout = undefined;
    if (this.state !== 'Trying' && this.state !== 'Proceeding') return;
    this.ctx.diag('timeout', this);
    const h = this.#handlers;
    this.terminate();
    h.onTimeout?.();
  }

  #transportError(err: Error): void {
    if (this.state === 'Terminated') return;
    this.ctx.diag('transport-error', this);
    const h = this.#handlers;
    this.terminate();
    h.onTransportError?.(err);
  }

  receiveResponse(res: SipResponse): void {
    if (res.status < 200) {
      if (this.state === 'Trying' || this.state === 'Proceeding') {
        this.state = 'Proceeding';
        this.#handlers.onProvisional?.(res);
      }
      return;
    }
    if (this.state !== 'Trying' && this.state !== 'Proceeding') return; // retransmitted final: absorbed
    this.state = 'Completed';
    const w = this.ctx.wheel;
    w.cancel(this.#retransmit);
    w.cancel(this.#timeout);
    this.#retransmit = undefined;
    const h = this.#handlers;
    // Timer K only absorbs retransmitted finals: no parsed request, no TU state from here on.
    this.#handlers = NO_HANDLERS;
    this.#request = undefined;
    if (this.#reliable) this.terminate();
    else this.#timeout = w.schedule(this.ctx.t4, NonInviteClientTransaction.#onTimerK, this); // Timer K
    h.onFinal?.(res);
  }

  terminate(): void {
    if (this.state === 'Terminated') return;
    this.state = 'Terminated';
    this.ctx.wheel.cancel(this.#retransmit);
    this.ctx.wheel.cancel(this.#timeout);
    this.#retransmit = this.#timeout = undefined;
    this.#handlers = NO_HANDLERS;
    this.#request = undefined;
    this.ctx.removeClient(this.key, this);
  }
}

const NO_HANDLERS: ClientTransactionHandlers = Object.freeze({});
