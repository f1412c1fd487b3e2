import type { SipRequest, SipResponse } from '../message/sip-message.js';
import { responseDestination } from '../transport/response-routing.js';
import type { Endpoint, Source } from '../transport/types.js';
import { TxEmitter } from './tx-emitter.js';
import type { ServerTransaction, ServerTransactionEvents, TransactionState, TxContext } from './types.js';

/**
 * A request answered without a server transaction, the way a stateless element answers
 * (RFC 3261 §8.2.7, §16.11): the response goes straight to the transport, nothing is kept, and a
 * retransmission of the request reaches the TU again as a new request. Only for requests whose
 * processing is idempotent, which the TU chooses through `TransactionUser.statelessFor`: REGISTER
 * to our registrar (§10.3: a binding saved twice is the same binding). A retransmitted REGISTER
 * whose digest nonce count was already used is challenged again (the client re-authenticates).
 */
export class StatelessServerTransaction extends TxEmitter<ServerTransactionEvents> implements ServerTransaction {
  readonly isInvite = false;
  readonly cancelled = false;
  state: TransactionState = 'Trying';
  #dest: Endpoint | undefined;

  constructor(
    readonly ctx: TxContext,
    readonly request: SipRequest,
    readonly source: Source,
  ) {
    super();
  }

  static #onSendError(err: Error, tx: StatelessServerTransaction): void {
    tx.ctx.diag('transport-error', tx);
    tx.emit('transportError', err);
  }

  respond(res: SipResponse): void {
    if (this.state === 'Terminated') return;
    this.#dest ??= responseDestination(this.request.topVia, this.source);
    const dest = this.#dest;
    this.state = res.status >= 200 ? 'Terminated' : 'Proceeding';
    if (dest === undefined) {
      const err = new Error(`SIP_ERR_NO_TRANSPORT: cannot send response over ${this.request.topVia.transport}`);
      queueMicrotask(() => StatelessServerTransaction.#onSendError(err, this));
      return;
    }
    const source = this.source;
    this.ctx.transport.transmit(res.toBuffer(), dest, StatelessServerTransaction.#onSendError, this, source.transport === dest.transport ? source : undefined);
  }
}
