import type { TimerHandle } from '../../util/timer-wheel.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import type { Endpoint } from '../transport/types.js';
import { buildNon2xxAck, requestFromOwnBytes } from './request-builders.js';
import type { ClientTransaction, ClientTransactionHandlers, TransactionState, TxContext } from './types.js';

/**
 * INVITE client transaction (RFC 3261 §17.1.1, figure 5, as updated by RFC 6026 §7.2).
 *
 * ```
 *  Calling --1xx--> Proceeding --300-699 (send ACK)--> Completed --Timer D--> Terminated
 *     |                 |
 *     +------2xx--------+--> Accepted --Timer M--> Terminated   (2xx go to the TU)
 *     +--Timer B / transport error--> Terminated (TU told)
 * ```
 * Timer A starts at T1 and doubles on each retransmission (UDP only); Timer B = 64*T1;
 * Timer D = 64*T1 (32 s, "at least 32 seconds", at the default T1) for UDP, 0 for reliable; Timer M = 64*T1. In Completed, a
 * retransmitted final response is answered with the same ACK and not passed up. RFC 6026: "A
 * 2xx response received while in the Accepted state MUST be passed to the TU".
 *
 * Memory: after the final response (Timer D or M, 64*T1) the transaction keeps its key, method,
 * the request's bytes and the ACK's; the parsed request is dropped (`request` re-parses the
 * bytes), and in Completed the TU's handlers too (only Accepted passes 2xx up).
 */
export class InviteClientTransaction implements ClientTransaction {
  readonly isInvite = true;
  readonly method = 'INVITE';
  state: TransactionState = 'Calling';
  /** A CANCEL waiting for the first provisional response (§9.1). */
  pendingCancel: (() => void) | undefined;
  #interval: number;
  #retransmit: TimerHandle | undefined;
  #timeout: TimerHandle | undefined;
  #ack: Buffer | undefined;
  /** The request's wire form: what Timer A retransmits and what `request` is re-parsed from. */
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
    this.#bytes = request.toBuffer();
    this.#reliable = target.transport !== 'udp';
    this.#interval = ctx.t1;
  }

  /** The request sent (re-parsed from its bytes once a final response came). */
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

  /**
   * Accepted only: the TU's handlers become `h`, a smaller record of what it still needs for
   * the further 2xx of Timer M (a proxy's whole response context would otherwise live 32 s per
   * call). False in any other state, where the handlers stay.
   */
  handOverAccepted(h: ClientTransactionHandlers): boolean {
    if (this.state !== 'Accepted') return false;
    this.#handlers = h;
    return true;
  }

  start(): void {
    // Timers first: a response may arrive before send() returns (in-process transports).
    const w = this.ctx.wheel;
    if (!this.#reliable) this.#retransmit = w.schedule(this.#interval, InviteClientTransaction.#onTimerA, this);
    this.#timeout = w.schedule(64 * this.ctx.t1, InviteClientTransaction.#onTimerB, this);
    this.#send(this.#bytes);
  }

  // Shared callbacks with the transaction as argument: no closure per timer or send.
  static #onTimerA(tx: InviteClientTransaction): void {
    tx.#timerA();
  }

  static #onTimerB(tx: InviteClientTransaction): void {
    tx.#timerB();
  }

  static #onGuard(tx: InviteClientTransaction): void {
    if (tx.state !== 'Proceeding' && tx.state !== 'Calling') return;
    tx.ctx.diag('timeout', tx);
    const h = tx.#handlers;
    tx.terminate();
    h.onTimeout?.();
  }

  static #onSendError(err: Error, tx: InviteClientTransaction): void {
    tx.#transportError(err);
  }

  #send(data: Buffer): void {
    this.ctx.transport.transmit(data, this.target, InviteClientTransaction.#onSendError, this);
  }

  #timerA(): void {
    if (this.state !== 'Calling') return;
    this.#send(this.#bytes);
    this.#interval *= 2;
    this.#retransmit = this.ctx.wheel.schedule(this.#interval, InviteClientTransaction.#onTimerA, this);
  }

  #timerB(): void {
    if (this.state !== 'Calling') return;
    this.ctx.diag('timeout', this);
    const h = this.#handlers;
    this.terminate();
    h.onTimeout?.();
  }

  #transportError(err: Error): void {
    if (this.state === 'Terminated' || this.state === 'Completed' || this.state === 'Accepted') return;
    this.ctx.diag('transport-error', this);
    const h = this.#handlers;
    this.terminate();
    h.onTransportError?.(err);
  }

  /** Proceeding guard (Timer C-like) and the §9.1 "64*T1 after CANCEL" rule end a stuck transaction. */
  armProceedingGuard(ms: number): void {
    if (this.state !== 'Proceeding') return;
    this.ctx.wheel.cancel(this.#timeout);
    this.#timeout = this.ctx.wheel.schedule(ms, InviteClientTransaction.#onGuard, this);
  }

  receiveResponse(res: SipResponse): void {
    const s = res.status;
    const w = this.ctx.wheel;
    if (s < 200) {
      if (this.state !== 'Calling' && this.state !== 'Proceeding') return;
      if (this.state === 'Calling') {
        w.cancel(this.#retransmit);
        this.#retransmit = undefined;
      }
      this.state = 'Proceeding';
      this.armProceedingGuard(this.ctx.opts.inviteProceedingTimeoutMs);
      const cancel = this.pendingCancel;
      this.pendingCancel = undefined;
      this.#handlers.onProvisional?.(res);
      cancel?.();
      return;
    }
    if (s < 300) {
      if (this.state === 'Accepted') {
        this.#handlers.onAdditional2xx?.(res);
        return;
      }
      if (this.state !== 'Calling' && this.state !== 'Proceeding') return;
      this.#stopTimers();
      this.state = 'Accepted';
      this.pendingCancel = undefined;
      this.ctx.endAfterLinger(this); // Timer M
      this.#request = undefined;
      this.#handlers.onFinal?.(res);
      return;
    }
    if (this.state === 'Completed') {
      if (this.#ack) this.#send(this.#ack); // retransmitted final: ACK again, absorb
      return;
    }
    if (this.state !== 'Calling' && this.state !== 'Proceeding') return;
    this.#stopTimers();
    this.state = 'Completed';
    this.pendingCancel = undefined;
    this.#ack = buildNon2xxAck(this.request, res).toBuffer();
    this.#send(this.#ack);
    const h = this.#handlers;
    // Timer D only answers retransmitted finals with the ACK's bytes.
    this.#handlers = NO_HANDLERS;
    this.#request = undefined;
    if (this.#reliable) this.terminate();
    else this.ctx.endAfterLinger(this); // Timer D: 32 s at the default T1
    h.onFinal?.(res);
  }

  #stopTimers(): void {
    this.ctx.wheel.cancel(this.#retransmit);
    this.ctx.wheel.cancel(this.#timeout);
    this.#retransmit = this.#timeout = undefined;
  }

  terminate(): void {
    if (this.state === 'Terminated') return;
    this.state = 'Terminated';
    this.#stopTimers();
    this.pendingCancel = undefined;
    this.#handlers = NO_HANDLERS;
    this.#request = undefined;
    this.ctx.removeClient(this.key, this);
  }
}

const NO_HANDLERS: ClientTransactionHandlers = Object.freeze({});
