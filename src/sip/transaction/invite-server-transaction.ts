import type { TimerHandle } from '../../util/timer-wheel.js';
import { createResponse } from '../message/builders.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import type { Source } from '../transport/types.js';
import { TxEmitter } from './tx-emitter.js';
import type { ServerTransaction, ServerTransactionEvents, TransactionState, TxContext } from './types.js';

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
 */
export class InviteServerTransaction extends TxEmitter<ServerTransactionEvents> implements ServerTransaction {
  readonly isInvite = true;
  state: TransactionState = 'Proceeding';
  cancelled = false;
  #lastRes: SipResponse | undefined;
  #last: Buffer | undefined;
  #interval: number;
  #retransmit: TimerHandle | undefined;
  #timeout: TimerHandle | undefined;
  readonly #reliable: boolean;

  constructor(
    readonly ctx: TxContext,
    readonly key: string,
    readonly request: SipRequest,
    readonly source: Source,
  ) {
    super();
    this.#reliable = source.transport !== 'udp';
    this.#interval = ctx.t1;
    const auto = ctx.opts.autoTryingMs;
    if (auto === 0) this.#trying();
    else if (auto > 0) this.#retransmit = ctx.wheel.schedule(auto, () => this.#trying());
    this.#timeout = ctx.wheel.schedule(ctx.opts.inviteServerTimeoutMs, () => {
      if (this.state !== 'Proceeding') return;
      this.ctx.diag('tu-timeout', this);
      this.terminate();
      this.emit('timeout');
    });
  }

  /** The last response sent (undefined before any). */
  get lastResponse(): SipResponse | undefined {
    return this.#lastRes;
  }

  /** To tag of the last response carrying one (the CANCEL's 200 reuses it, §9.2). */
  get toTag(): string | undefined {
    return this.#lastRes?.toTag;
  }

  #trying(): void {
    this.#retransmit = undefined;
    if (this.state === 'Proceeding' && this.#lastRes === undefined) this.respond(createResponse(this.request, 100));
  }

  respond(res: SipResponse): void {
    const s = res.status;
    if (this.state === 'Accepted') {
      if (s >= 200 && s < 300) this.#send(res, res.toBuffer());
      return;
    }
    if (this.state !== 'Proceeding') return;
    const w = this.ctx.wheel;
    this.#lastRes = res;
    const data = (this.#last = res.toBuffer());
    if (s >= 200) {
      // State first, then send: the ACK may come back before send() returns.
      w.cancel(this.#retransmit);
      w.cancel(this.#timeout);
      this.#retransmit = undefined;
      if (s < 300) {
        this.state = 'Accepted';
        this.#timeout = w.schedule(64 * this.ctx.t1, () => this.terminate()); // Timer L
      } else {
        this.state = 'Completed';
        if (!this.#reliable) this.#retransmit = w.schedule(this.#interval, () => this.#timerG());
        this.#timeout = w.schedule(64 * this.ctx.t1, () => this.#timerH());
      }
    }
    this.#send(res, data);
  }

  #send(res: SipResponse, data: Buffer): void {
    // The response's Via list is the request's (§8.2.6), already parsed: route by it.
    this.ctx.transport.sendResponseRaw(data, this.request.topVia, this.source).catch((err: Error) => {
      if (this.state === 'Terminated') return;
      this.ctx.diag('transport-error', this);
      if (this.state === 'Accepted') {
        // Accepted only ends with Timer L; the TU learns of the failed 2xx and may end the dialog.
        this.emit('transportError', err);
        return;
      }
      this.terminate();
      this.emit('transportError', err);
    });
  }

  #timerG(): void {
    if (this.state !== 'Completed') return;
    this.#send(this.#lastRes!, this.#last!);
    this.#interval = Math.min(2 * this.#interval, this.ctx.t2);
    this.#retransmit = this.ctx.wheel.schedule(this.#interval, () => this.#timerG());
  }

  #timerH(): void {
    if (this.state !== 'Completed') return;
    this.ctx.diag('timeout', this);
    this.terminate();
    this.emit('timeout');
  }

  /** A retransmitted INVITE matched. */
  receiveRequest(_req: SipRequest): void {
    if ((this.state === 'Proceeding' || this.state === 'Completed') && this.#lastRes) {
      this.#send(this.#lastRes, this.#last!);
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
      else this.#timeout = w.schedule(this.ctx.t4, () => this.terminate()); // Timer I
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
    this.ctx.removeServer(this.key);
    this.emit('terminated');
  }
}
