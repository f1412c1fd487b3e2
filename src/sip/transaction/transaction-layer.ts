/**
 * SIP transaction layer (RFC 3261 §17, RFC 6026): creates, matches and retires client and
 * server transactions; every timer runs on one `TimerWheel`.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter, gauge } from '../../util/metrics.js';
import { sharedTimerWheel, type TimerWheel } from '../../util/timer-wheel.js';
import { createResponse, newBranch } from '../message/builders.js';
import { formatVia } from '../message/header-values.js';
import type { SipMessage, SipRequest, SipResponse } from '../message/sip-message.js';
import type { Endpoint, Source } from '../transport/types.js';
import { InviteClientTransaction } from './invite-client-transaction.js';
import { LingerQueue } from './linger-queue.js';
import { InviteServerTransaction } from './invite-server-transaction.js';
import { NonInviteClientTransaction } from './non-invite-client-transaction.js';
import { NonInviteServerTransaction } from './non-invite-server-transaction.js';
import { StatelessServerTransaction } from './stateless-server-transaction.js';
import { ownString } from '../../util/string-calls.js';
import { buildCancel } from './request-builders.js';
import type {
  ClientTransaction,
  ClientTransactionHandlers,
  ServerTransaction,
  TransactionOptions,
  TransactionTransport,
  TransactionUser,
  TxContext,
} from './types.js';

export { InviteClientTransaction, InviteServerTransaction, NonInviteClientTransaction, NonInviteServerTransaction, StatelessServerTransaction };

const log = createLogger('sip-transaction');
const MAGIC_COOKIE = 'z9hG4bK';

/** Events on `sip:transaction:timeout`, `sip:transaction:transport-error`, `sip:transaction:tu-timeout`. */
const channels = new Map<string, diagnostics_channel.Channel>();
function channel(event: string): diagnostics_channel.Channel {
  let c = channels.get(event);
  if (!c) {
    c = diagnostics_channel.channel(`sip:transaction:${event}`);
    channels.set(event, c);
  }
  return c;
}

const statelessRequests = counter('tandem_sip_stateless_requests_total', 'Requests answered without a server transaction (TransactionUser.statelessFor)');

/** Counts a request a layer above answered without a server transaction before it reached this layer (a fast path). */
export function countStatelessRequest(): void {
  statelessRequests.inc();
}

const txErrors = counter('tandem_sip_transaction_events_total', 'SIP transaction timeouts, transport errors, faults', ['event']);

/** Live layers, for the gauge below (removed by close()). */
const liveLayers = new Set<TransactionLayer>();
gauge('tandem_sip_transactions', 'Live SIP transactions', ['side'], function collect() {
  let client = 0;
  let server = 0;
  for (const l of liveLayers) {
    client += l.clientCount;
    server += l.serverCount;
  }
  this.set({ side: 'client' }, client);
  this.set({ side: 'server' }, server);
});

type ClientTx = InviteClientTransaction | NonInviteClientTransaction;
type ServerTx = InviteServerTransaction | NonInviteServerTransaction;

/**
 * Client transaction key (§17.1.3): "the branch parameter in the response is equal to the one
 * in the top Via header field of the request that created the transaction" and "the method
 * parameter in the CSeq header field matches the method of the request".
 */
export function clientKey(branch: string, method: string): string {
  return `${branch}\n${method}`;
}

/**
 * Server transaction key (§17.2.3). With the magic cookie: branch + sent-by + method, the ACK
 * matching the INVITE. Otherwise the RFC 2543 rule: Request-URI, From tag, Call-ID, CSeq
 * number and top Via (To tag is checked separately, see `#matchesLegacy`).
 */
export function serverKey(req: SipRequest, method?: string): string {
  const via = req.topVia;
  const m = method ?? (req.method === 'ACK' ? 'INVITE' : req.method);
  const branch = via.branch;
  if (branch !== undefined && branch.startsWith(MAGIC_COOKIE)) return `${branch}\n${via.host}:${via.port ?? ''}\n${m}`;
  return `2543\n${req.uri}\n${req.fromTag ?? ''}\n${req.callId}\n${req.cseq.seq}\n${via.transport} ${via.host}:${via.port ?? ''};${branch ?? ''}\n${m}`;
}

/**
 * Transactions are found by their branch alone in the common case (a cheap key, no string
 * building per message); the rest of the §17.1.3 / §17.2.3 rule (CSeq method; sent-by and
 * method) is compared on the transaction found. A transaction whose branch is already taken by
 * another one (a CANCEL shares its INVITE's branch), or an RFC 2543 request without the magic
 * cookie, is kept under the full key of `clientKey` / `serverKey` in a second map instead.
 * Full keys contain a newline, branches never do (token characters only).
 */
function isFullKey(key: string): boolean {
  return key.indexOf('\n') !== -1;
}

export class TransactionLayer {
  /** Client transactions by branch. */
  readonly #client = new Map<string, ClientTx>();
  /** Client transactions whose branch was taken, by `clientKey`. */
  readonly #clientFull = new Map<string, ClientTx>();
  /** Server transactions by branch (magic cookie). */
  readonly #server = new Map<string, ServerTx>();
  /** Server transactions whose branch was taken, and RFC 2543 ones, by `serverKey`. */
  readonly #serverFull = new Map<string, ServerTx>();
  readonly #ctx: TxContext;
  /** Finished transactions waiting out Timers J, L, M and D. */
  readonly #lingering: LingerQueue;
  readonly #transport: TransactionTransport;
  readonly #onMessage = (msg: SipMessage, source: Source): void => this.receive(msg, source);
  #tu: TransactionUser | undefined;

  constructor(transport: TransactionTransport, opts: TransactionOptions = {}) {
    this.#transport = transport;
    const wheel: TimerWheel = opts.wheel ?? sharedTimerWheel();
    const linger = opts.lingerMs ?? 64 * (opts.t1Ms ?? 500);
    const lingering = (this.#lingering = new LingerQueue(wheel, linger, (err) => {
      txErrors.inc({ event: 'fault' });
      rateLimitedLog('sip-transaction:linger', (suppressed) => log.error({ err, suppressed }, 'ending a finished transaction threw'));
    }));
    this.#ctx = {
      wheel,
      t1: opts.t1Ms ?? 500,
      t2: opts.t2Ms ?? 4000,
      t4: opts.t4Ms ?? 5000,
      linger,
      endAfterLinger: (tx) => lingering.add(tx),
      transport,
      opts: {
        autoTryingMs: opts.autoTryingMs ?? 200,
        inviteProceedingTimeoutMs: opts.inviteProceedingTimeoutMs ?? 180_000,
        inviteServerTimeoutMs: opts.inviteServerTimeoutMs ?? 300_000,
        udpMaxRequestBytes: opts.udpMaxRequestBytes ?? 0,
      },
      removeClient: (key, tx) => {
        const map = isFullKey(key) ? this.#clientFull : this.#client;
        if (map.get(key) === tx) map.delete(key);
      },
      removeServer: (key, tx) => {
        const map = isFullKey(key) ? this.#serverFull : this.#server;
        if (map.get(key) === tx) map.delete(key);
      },
      diag: (event, tx) => {
        txErrors.inc({ event });
        const c = channel(event);
        if (c.hasSubscribers) c.publish({ tx });
      },
    };
    transport.on('message', this.#onMessage);
    liveLayers.add(this);
  }

  get t1Ms(): number {
    return this.#ctx.t1;
  }

  get t2Ms(): number {
    return this.#ctx.t2;
  }

  get wheel(): TimerWheel {
    return this.#ctx.wheel;
  }

  get transport(): TransactionTransport {
    return this.#transport;
  }

  setUser(tu: TransactionUser): void {
    this.#tu = tu;
  }

  /** Live transactions (client + server). */
  get size(): number {
    return this.clientCount + this.serverCount;
  }

  get clientCount(): number {
    return this.#client.size + this.#clientFull.size;
  }

  get serverCount(): number {
    return this.#server.size + this.#serverFull.size;
  }

  /**
   * Starts a client transaction. A request without Via gets one (sent-by from the transport,
   * new branch, `rport`); a top Via without an RFC 3261 branch gets a new branch.
   */
  sendRequest(req: SipRequest, target: Endpoint, h: ClientTransactionHandlers = {}): ClientTransaction {
    if (req.method === 'ACK') throw new Error('SIP_ERR_ACK_NOT_A_TRANSACTION: send ACK with sendStateless()');
    const limit = this.#ctx.opts.udpMaxRequestBytes;
    if (limit > 0 && target.transport === 'udp' && req.toBuffer().length + (req.has('Via') ? 0 : 80) > limit) {
      return this.#sendOverTcp(req, target, h);
    }
    if (!req.has('Via')) {
      req.prepend('Via', this.#transport.viaValue(target, newBranch()));
    } else {
      const top = req.topVia;
      if (top.branch === undefined || !top.branch.startsWith(MAGIC_COOKIE)) {
        const params = new Map(top.params);
        params.set('branch', newBranch());
        req.removeFirst('Via');
        req.prepend('Via', formatVia({ ...top, params }));
      }
    }
    return this.#send(req, target, h);
  }

  /**
   * RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if it is larger than
   * 1300 bytes and the path MTU is unknown, the request MUST be sent using an RFC 2914 congestion
   * controlled transport protocol, such as TCP. If this causes a change in the transport protocol
   * from the one indicated in the top Via, the value in the top Via MUST be changed." and "If
   * ... the connection attempt fails, the client SHOULD retry the request, using UDP".
   * The retry is a new transaction; the handle returned is the TCP one.
   */
  #sendOverTcp(req: SipRequest, udpTarget: Endpoint, h: ClientTransactionHandlers): ClientTransaction {
    const tcpTarget: Endpoint = { transport: 'tcp', address: udpTarget.address, port: udpTarget.port };
    const setViaTransport = (transport: 'TCP' | 'UDP'): void => {
      if (!req.has('Via')) {
        req.prepend('Via', this.#transport.viaValue(transport === 'TCP' ? tcpTarget : udpTarget, newBranch()));
        return;
      }
      const top = req.topVia;
      const params = new Map(top.params);
      if (top.branch === undefined || !top.branch.startsWith(MAGIC_COOKIE)) params.set('branch', newBranch());
      req.removeFirst('Via');
      req.prepend('Via', formatVia({ ...top, transport, params }));
    };
    setViaTransport('TCP');
    const retry: ClientTransactionHandlers = {
      ...h,
      onTransportError: () => {
        // A new branch: the failed transaction is gone, the retry is a new one.
        const top = req.topVia;
        const params = new Map(top.params);
        params.set('branch', newBranch());
        req.removeFirst('Via');
        req.prepend('Via', formatVia({ ...top, transport: 'UDP', params }));
        this.#send(req, udpTarget, h);
      },
    };
    return this.#send(req, tcpTarget, retry);
  }

  #send(req: SipRequest, target: Endpoint, h: ClientTransactionHandlers): ClientTransaction {
    // Its own copy: a slice of the Via would keep the whole header text for Timer D/K/M.
    const branch = ownString(req.topVia.branch!);
    const method = req.method;
    const taken = this.#client.get(branch);
    let key = branch;
    if (taken !== undefined) {
      if (taken.method === method) throw new Error('SIP_ERR_DUPLICATE_TRANSACTION: branch already in use');
      key = clientKey(branch, method);
    }
    if (this.#clientFull.size !== 0 && this.#clientFull.has(key === branch ? clientKey(branch, method) : key)) {
      throw new Error('SIP_ERR_DUPLICATE_TRANSACTION: branch already in use');
    }
    const tx =
      method === 'INVITE'
        ? new InviteClientTransaction(this.#ctx, key, req, target, h)
        : new NonInviteClientTransaction(this.#ctx, key, req, target, h);
    if (key === branch) this.#client.set(key, tx);
    else this.#clientFull.set(key, tx);
    tx.start();
    return tx;
  }

  /** Sends a request outside any transaction (the ACK to a 2xx, §13.2.2.4). Rejects on transport failure. */
  sendStateless(msg: SipMessage, target: Endpoint): Promise<void> {
    return this.#transport.sendRaw(msg.toBuffer(), target);
  }

  /**
   * Cancels an INVITE client transaction (RFC 3261 §9.1). "If no provisional response has been
   * received, the CANCEL request MUST NOT be sent; rather, the client MUST wait for the arrival
   * of a provisional response before sending the request." Without a final response 64*T1
   * after the CANCEL, the INVITE transaction ends with onTimeout.
   * Returns false when there is nothing to cancel (not an INVITE, or already final).
   */
  cancel(tx: ClientTransaction, h: ClientTransactionHandlers = {}, reason?: string): boolean {
    if (!(tx instanceof InviteClientTransaction)) return false;
    if (tx.state !== 'Calling' && tx.state !== 'Proceeding') return false;
    const send = (): void => {
      if (tx.state !== 'Proceeding') return;
      this.sendRequest(buildCancel(tx.request, reason), tx.target, h);
      tx.armProceedingGuard(64 * this.#ctx.t1);
    };
    if (tx.state === 'Calling') tx.pendingCancel = send;
    else send();
    return true;
  }

  /** Entry point for every received message (wired to the transport's `message` event). */
  receive(msg: SipMessage, source: Source): void {
    try {
      if (msg.isRequest()) this.#onRequest(msg, source);
      else this.#onResponse(msg as SipResponse, source);
    } catch (err) {
      txErrors.inc({ event: 'fault' });
      rateLimitedLog('sip-transaction:fault', (suppressed) =>
        log.error({ err, from: `${source.transport}:${source.address}:${source.port}`, suppressed }, 'transaction layer fault'),
      );
    }
  }

  #onResponse(res: SipResponse, source: Source): void {
    const branch = res.topVia.branch;
    let tx: ClientTx | undefined;
    if (branch !== undefined) {
      const method = res.cseq.method;
      tx = this.#client.get(branch);
      if (tx !== undefined && tx.method !== method) tx = undefined;
      if (tx === undefined && this.#clientFull.size !== 0) tx = this.#clientFull.get(clientKey(branch, method));
    }
    if (tx) tx.receiveResponse(res);
    else this.#tu?.onStrayResponse?.(res, source);
  }

  /** §17.2.3 lookup; `method` is the transaction's method (INVITE for an ACK). */
  #findServer(req: SipRequest, method: string, magic: boolean): ServerTx | undefined {
    if (magic) {
      const via = req.topVia;
      const tx = this.#server.get(via.branch!);
      if (tx !== undefined && tx.method === method && tx.viaHost === via.host && tx.viaPort === via.port) return tx;
      if (this.#serverFull.size === 0) return undefined;
    }
    return this.#serverFull.get(serverKey(req, method));
  }

  /** Key for a new server transaction: its branch when free, else the full key. */
  #newServerKey(req: SipRequest, method: string, magic: boolean): string {
    const branch = req.topVia.branch;
    if (magic && !this.#server.has(branch!)) return ownString(branch!);
    return serverKey(req, method);
  }

  #addServer(key: string, tx: ServerTx): void {
    if (isFullKey(key)) this.#serverFull.set(key, tx);
    else this.#server.set(key, tx);
  }

  #onRequest(req: SipRequest, source: Source): void {
    const method = req.method;
    const branch = req.topVia.branch;
    const magic = branch !== undefined && branch.startsWith(MAGIC_COOKIE);
    const legacy = !magic;
    if (method === 'ACK') {
      const tx = this.#findServer(req, 'INVITE', magic);
      if (tx instanceof InviteServerTransaction && (!legacy || this.#legacyAckMatches(tx, req)) && tx.receiveAck(req)) return;
      this.#tu?.onRequest(req, undefined, source);
      return;
    }
    const existing = this.#findServer(req, method, magic);
    if (existing && (!legacy || existing.requestToTag === req.toTag)) {
      existing.receiveRequest(req);
      return;
    }
    const tu = this.#tu;
    if (method !== 'INVITE' && method !== 'CANCEL' && tu?.statelessFor !== undefined && tu.statelessFor(req, source)) {
      statelessRequests.inc();
      tu.onRequest(req, new StatelessServerTransaction(this.#ctx, req, source), source);
      return;
    }
    const key = this.#newServerKey(req, method, magic);
    if (method === 'CANCEL') {
      this.#onCancel(req, key, source, magic);
      return;
    }
    const tx =
      method === 'INVITE'
        ? new InviteServerTransaction(this.#ctx, key, req, source)
        : new NonInviteServerTransaction(this.#ctx, key, req, source);
    this.#addServer(key, tx);
    if (this.#tu) this.#tu.onRequest(req, tx, source);
    else tx.respond(createResponse(req, 503, 'No Transaction User'));
  }

  /** RFC 2543 ACK: "the To tag of the ACK matches the To tag of the response sent by the server transaction". */
  #legacyAckMatches(tx: InviteServerTransaction, ack: SipRequest): boolean {
    const sent = tx.toTag;
    return sent === undefined || sent === ack.toTag;
  }

  /**
   * RFC 3261 §9.2: the CANCEL gets its own non-INVITE server transaction; "If the UAS did not
   * find a matching transaction for the CANCEL according to the procedure above, it SHOULD
   * respond to the CANCEL with a 481 ... as long as the CANCEL matched an existing transaction,
   * the UAS answers the CANCEL request itself with a 200 (OK) response." The INVITE
   * transaction's TU learns of it through the `cancel` event and answers the INVITE (487).
   */
  #onCancel(req: SipRequest, key: string, source: Source, magic: boolean): void {
    const tx = new NonInviteServerTransaction(this.#ctx, key, req, source);
    this.#addServer(key, tx);
    const inv = this.#findServer(req, 'INVITE', magic);
    if (!(inv instanceof InviteServerTransaction)) {
      if (this.#tu?.onUnmatchedCancel) this.#tu.onUnmatchedCancel(req, tx, source);
      else tx.respond(createResponse(req, 481, 'Call/Transaction Does Not Exist'));
      return;
    }
    const toTag = inv.toTag;
    tx.respond(createResponse(req, 200, 'OK', toTag !== undefined ? { toTag } : undefined));
    inv.receiveCancel(req);
  }

  /** Ends every transaction (no callbacks) and detaches from the transport. */
  close(): void {
    liveLayers.delete(this);
    this.#transport.off('message', this.#onMessage);
    for (const tx of [...this.#client.values(), ...this.#clientFull.values()]) tx.terminate();
    for (const tx of [...this.#server.values(), ...this.#serverFull.values()]) tx.terminate();
    this.#lingering.clear();
  }
}
