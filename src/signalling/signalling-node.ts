/**
 * The signalling node: SIP transports and transactions, registrar, digest authentication,
 * stateful proxy with a routing hook, dialog tracking and media anchoring over ng. `tandem start`
 * builds one of these from its config.
 */
import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { TransportLayer } from '../sip/transport/transport-layer.js';
import { reportTransportEvent } from '../sip/transport/bad-input.js';
import type { Endpoint, ListeningPoint, ListenSpec, Source, TransportOptions } from '../sip/transport/types.js';
import { countStatelessRequest, TransactionLayer } from '../sip/transaction/transaction-layer.js';
import type { ServerTransaction, TransactionUser } from '../sip/transaction/types.js';
import type { SipRequest, SipResponse } from '../sip/message/sip-message.js';
import { createRequest, createResponse, reasonPhrase } from '../sip/message/builders.js';
import { parseUri } from '../sip/uri/sip-uri.js';
import { parseMessage } from '../sip/message/parser.js';
import { AuthFailureTracker, DigestAuthenticator, provesWrongCredentials, randomSecret, type UserDirectory, type VerifyResult } from '../sip/auth/digest-server.js';
import { NetworkList } from '../util/network-list.js';
import { routeTokenKey } from './proxy/route-token.js';
import type { DigestAlgorithm } from '../sip/auth/digest.js';
import type { AuthFailureStore, DialogRecord, DialogStore, LocationStore, NonceCountStore } from '../state/store.js';
import { MemoryLocationStore } from '../state/memory/memory-location-store.js';
import { counter, gauge } from '../util/metrics.js';
import { startRuntimeMetrics } from '../util/runtime-metrics.js';
import { keepPrototypesFast } from '../util/fast-prototypes.js';
import { createLogger, rateLimitedLog } from '../util/logger.js';
import { RegisterFastPath } from './registrar/register-fast-path.js';
import { Registrar, registerFactsOf, type RegisterAnswer, type RegisterFacts } from './registrar/registrar.js';
import { childrenOf } from './metric-children.js';
import { aorKey } from './location/aor.js';
import { derivedBranch, inviteBodyDigest, methodLabel, ProxyCore } from './proxy/proxy-core.js';
import type { LocalInterface, ProxyClientTransaction, ProxyServerTransaction, ProxyStack } from './proxy/proxy-stack.js';
import type { ParallelRoute, RouteContext, RouteHook, RouteResult, Target, TargetSupplier } from './proxy/types.js';
import { DialogTracker } from './dialogs/dialog-tracker.js';
import { copyResponse } from './proxy/copy-message.js';
import type { RouteCheck } from './proxy/proxy-core.js';
import { decideTrust, type RequestFacts } from './request-trust.js';
import type { Accounting } from './accounting/accounting.js';
import type { MediaControl } from './media-control/media-control.js';

const log = createLogger('signalling');
const authCounter = counter('tandem_auth_results_total', 'Digest authentication outcomes', ['result']);
const droppedBlocked = counter('tandem_auth_blocked_requests_total', 'Requests dropped because their source is blocked after failed authentications');
const registerRetransmissions = counter('tandem_registrar_retransmissions_total', 'Retransmitted authenticated REGISTERs answered with the 200 their first copy got (no server transaction for REGISTER)');
const sourcesBlocked = counter('tandem_auth_sources_blocked_total', 'Sources blocked after repeated wrong credentials');
const requestsCounter = counter('tandem_signalling_requests_total', 'Requests received by the signalling node, by method', ['method']);
const requestsBy = childrenOf(requestsCounter);
const authResult = childrenOf(authCounter);
const takenOverResponses = counter('tandem_signalling_peer_invite_responses_total', 'Final responses to INVITEs forwarded by a peer that died, completed by this node');
const answeredInvitesAbsorbed = counter('tandem_signalling_answered_invites_absorbed_total', 'INVITEs repeating the one that set up an answered call (Call-ID, From-tag, CSeq), absorbed: the callee re-sends its 2xx');
const peerInvitesResumed = counter('tandem_signalling_peer_invites_resumed_total', 'Retransmitted INVITEs of a peer that died, sent on again by this node on the peer\'s branches');
const resumedRinging = counter('tandem_signalling_ringing_calls_resumed_total', 'Ringing calls of a node that died whose serial failover this node went on with');
const strayDropped = counter('tandem_signalling_stray_responses_dropped_total', 'Responses for no transaction, no dialog of ours and no recorded branch: dropped');
const takenOverCancels = counter('tandem_signalling_peer_invite_cancels_total', 'CANCELs of INVITEs forwarded by a peer that died, sent on by this node');
const untrustedInDialog = counter('tandem_signalling_untrusted_in_dialog_total', 'Requests with a To-tag but no authentic Route of ours, handled as out-of-dialog');
const untrustedAbsorbed = counter('tandem_signalling_untrusted_ack_total', 'ACKs with no authentic Route of ours, absorbed');

/** What a digest check decided (`SignallingNode.#checkCredentials`). */
type CredentialCheck =
  /** Proven (or auth off: `undefined`). */
  | { kind: 'user'; user: string | undefined }
  /**
   * Answered instead: a challenge, a refusal, or a retransmitted REGISTER's 200. `spent`: the
   * credentials were right but the cluster had already accepted them (a retransmission of a
   * request some node took, or a replay).
   */
  | { kind: 'answer'; answer: RegisterAnswer; spent?: boolean }
  /** Dropped without an answer: the source is blocked. */
  | { kind: 'drop' };

/**
 * `req` (an INVITE without To-tag) repeats the INVITE that set up `rec`, an answered call another
 * node (`self` is this one) set up: same Call-ID, From-tag and CSeq (records written before the
 * CSeq was kept: From-tag only). This node's own calls have their INVITE server transaction for
 * retransmissions; a copy of theirs that reaches the node with another branch is a new request.
 */
function repeatsPeersAnsweredInvite(req: SipRequest, rec: DialogRecord | undefined, self: string | undefined): boolean {
  return rec !== undefined && rec.state === 'confirmed' && rec.creator !== self && rec.fromTag === (req.fromTag ?? '') && (rec.cseq === undefined || rec.cseq === req.cseq.seq);
}

/** A value, or a promise of it where the work had to wait. */
type MaybePromise<T> = T | Promise<T>;

function onFastSendError(err: Error, dest: Endpoint): void {
  reportTransportEvent('send_error', `${dest.transport}:${dest.address}:${dest.port}`, err);
}

export interface SignallingNodeOptions {
  listen: ListenSpec[];
  /** Domains served (registrar + local users). The listening addresses are always served too. */
  domains: string[];
  auth: {
    enabled: boolean;
    realm?: string;
    secret?: string;
    nonceLifetimeSec?: number;
    algorithms?: DigestAlgorithm[];
    maxFailures?: number;
    failureWindowSec?: number;
    blockSec?: number;
    /** Accept credentials without qop (each nonce then serves one request). @default false */
    allowNoQop?: boolean;
    /** Bind nonces to the IP address they are sent to. @default true */
    bindNonceToSource?: boolean;
    /** Networks (CIDR) whose sources are never blocked after failed authentications. @default [] */
    trustedNetworks?: string[];
  };
  /** Further sources never blocked (the dispatcher's PBXs, cluster peers); asked only on a failure. */
  isTrustedSource?: (address: string) => boolean;
  users?: UserDirectory;
  registrar?: { minExpiresSec?: number; maxExpiresSec?: number; defaultExpiresSec?: number; maxContactsPerAor?: number };
  /**
   * REGISTER to our own registrar is answered without a server transaction (as Kamailio's
   * registrar does with sl_send_reply): nothing is kept for Timer J, a retransmission is
   * processed again (RFC 3261 §10.3 processing is idempotent; a reused digest nonce count is
   * challenged again). @default true
   */
  statelessRegister?: boolean;
  /**
   * Plain REGISTERs over UDP to our registrar are answered from the datagram's text, without
   * building a message object (registrar/register-fast-path.ts); the rest take the generic path.
   * Only with `statelessRegister`. @default true
   */
  fastRegister?: boolean;
  proxy?: { recordRoute?: boolean; timerCMs?: number; earlyDurableWaitMs?: number };
  transaction?: { t1Ms?: number; t2Ms?: number; t4Ms?: number; lingerMs?: number };
  routeHook?: RouteHook;
  media?: MediaControl;
  locationStore?: LocationStore;
  /**
   * The cluster's shared addresses (VIPs): always our own for loose routing and local domains,
   * whichever node holds them now.
   */
  clusterAddresses?: string[];
  /**
   * Nonce-count replay state shared by the cluster: a request replayed to another node is refused
   * too. @default this node's own memory only
   */
  nonceCounts?: NonceCountStore;
  /** Failed-authentication counts and blocks shared by the cluster. @default this node's own memory */
  authFailures?: AuthFailureStore;
  /** One record per call, written by the node that sees it end (`accounting/accounting.ts`). */
  accounting?: Accounting;
  /** Dialog store shared by the cluster (Redis): records written when dialogs change. */
  dialogStore?: DialogStore;
  /** Share early dialogs too, so calls still ringing survive this node (needs `dialogStore`). @default false */
  shareEarlyDialogs?: boolean;
  /** Services visible to route hooks as `context.services` (the dispatcher registers itself here). */
  services?: Record<string, unknown>;
  nodeName?: string;
  /** Transport options (the hooks `tandem start --workers N` steers messages between processes with). */
  transport?: TransportOptions;
}

export class SignallingNode implements TransactionUser {
  readonly transport: TransportLayer;
  readonly transactions: TransactionLayer;
  readonly location: LocationStore;
  readonly registrar: Registrar;
  readonly dialogs: DialogTracker;
  readonly proxy: ProxyCore;
  readonly services: Record<string, unknown>;
  readonly stack: ProxyStack;
  #opts: SignallingNodeOptions;
  #auth: DigestAuthenticator | undefined;
  #failures: AuthFailureStore;
  #peerWindowUntil = 0;
  #isTrusted: (address: string) => boolean;
  #nonceCounts: NonceCountStore | undefined;
  #bindNonce = true;
  #domains: Set<string>;
  #ownHosts = new Set<string>();
  #clusterHosts = new Set<string>();
  #draining = false;
  #routeHook: RouteHook | undefined;

  constructor(opts: SignallingNodeOptions) {
    this.#opts = opts;
    startRuntimeMetrics(); // event-loop delay, GC pauses, heap: per process, started once
    keepPrototypesFast(); // after every module this node loads (util/fast-prototypes)
    this.services = opts.services ?? {};
    this.#domains = new Set(opts.domains.map((d) => d.toLowerCase()));
    this.transport = new TransportLayer(opts.transport ?? {});
    this.transactions = new TransactionLayer(this.transport, { ...(opts.transaction ?? {}), autoTryingMs: -1 });
    this.transactions.setUser(this);
    this.location = opts.locationStore ?? new MemoryLocationStore();
    const isLocal = (h: string) => this.isLocalDomain(h);
    this.registrar = new Registrar({ store: this.location, isLocalDomain: isLocal, ...(opts.registrar ?? {}), ...(opts.nodeName ? { nodeName: opts.nodeName } : {}) });
    const media = opts.media;
    this.dialogs = new DialogTracker({
      ...(media?.isActive ? { isAlive: (rec: DialogRecord) => media.isActive!(rec.callId) } : {}),
      ...(opts.dialogStore ? { store: opts.dialogStore, stillOwner: (rec: DialogRecord) => stillOwner(opts.dialogStore!, rec, opts.nodeName) } : {}),
      ...(opts.nodeName ? { nodeId: opts.nodeName } : {}),
      shareEarly: opts.shareEarlyDialogs ?? false,
    });
    for (const a of opts.clusterAddresses ?? []) {
      this.#ownHosts.add(a.toLowerCase());
      this.#clusterHosts.add(a.toLowerCase());
    }
    this.stack = this.#makeStack();
    this.proxy = new ProxyCore({
      stack: this.stack,
      isLocalDomain: isLocal,
      dialogs: this.dialogs,
      ...(opts.media ? { media: opts.media } : {}),
      ...(opts.proxy?.recordRoute !== undefined ? { recordRoute: opts.proxy.recordRoute } : {}),
      ...(opts.proxy?.timerCMs !== undefined ? { timerCMs: opts.proxy.timerCMs } : {}),
      ...(opts.proxy?.earlyDurableWaitMs !== undefined ? { earlyDurableWaitMs: opts.proxy.earlyDurableWaitMs } : {}),
      // Record-Route names the cluster's shared address: in-dialog requests reach whoever holds it.
      ...(opts.clusterAddresses?.length ? { recordRouteHost: opts.clusterAddresses[0]! } : {}),
      // Nodes sharing the secret also accept each other's flow tokens and route tokens.
      ...(opts.auth.secret ? { flowTokenKey: createHmac('sha256', opts.auth.secret).update('tandem flow token').digest(), routeTokenKey: routeTokenKey(opts.auth.secret) } : {}),
    });
    if (opts.auth.enabled) {
      this.#auth = new DigestAuthenticator({
        realm: opts.auth.realm ?? opts.domains[0] ?? 'tandem',
        secret: opts.auth.secret ?? randomSecret(),
        ...(opts.auth.allowNoQop !== undefined ? { allowNoQop: opts.auth.allowNoQop } : {}),
        users: opts.users ?? { lookup: () => undefined },
        ...(opts.auth.nonceLifetimeSec !== undefined ? { nonceLifetimeSec: opts.auth.nonceLifetimeSec } : {}),
        ...(opts.auth.algorithms ? { algorithms: opts.auth.algorithms } : {}),
      });
    }
    this.#bindNonce = opts.auth.bindNonceToSource ?? true;
    const trustedNets = NetworkList.create(opts.auth.trustedNetworks ?? []);
    if (!trustedNets.ok) throw new Error(`auth.trustedNetworks: ${trustedNets.reason}`);
    const isTrustedSource = opts.isTrustedSource;
    this.#isTrusted = (a) => trustedNets.value.has(a) || (isTrustedSource?.(a) ?? false);
    this.#nonceCounts = opts.nonceCounts;
    this.#failures =
      opts.authFailures ??
      new AuthFailureTracker({
        ...(opts.auth.maxFailures !== undefined ? { maxFailures: opts.auth.maxFailures } : {}),
        ...(opts.auth.failureWindowSec !== undefined ? { windowSec: opts.auth.failureWindowSec } : {}),
        ...(opts.auth.blockSec !== undefined ? { blockSec: opts.auth.blockSec } : {}),
      });
    this.#routeHook = opts.routeHook;
    if (opts.statelessRegister !== false && opts.fastRegister !== false) this.transport.setPreParse(this.#fastRegisterPath());
    const self = this;
    gauge('tandem_location_bindings', 'Registered contacts in the location store', [], function () {
      this.set(self.location.size());
    });
    gauge('tandem_sip_transactions', 'Live SIP transactions', [], function () {
      this.set(self.transactions.size);
    });
    const accounting = opts.accounting;
    if (accounting) this.dialogs.onEnded((rec, reason) => void accounting.callEnded(rec, reason));
    // A dialog that times out or fails also releases its media session.
    this.dialogs.onEnded((rec, reason) => {
      if (reason === 'timeout') void this.#opts.media?.delete(rec.callId);
    });
  }

  /** Binds every listening point; returns them. */
  async start(): Promise<ListeningPoint[]> {
    for (const spec of this.#opts.listen) await this.transport.listen(spec);
    for (const lp of this.transport.listeningPoints) {
      this.#ownHosts.add(lp.host.toLowerCase());
      this.#ownHosts.add(lp.address.toLowerCase());
      if (lp.address === '0.0.0.0' || lp.address === '::') {
        for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) this.#ownHosts.add(i.address.toLowerCase());
      }
    }
    return this.transport.listeningPoints;
  }

  isLocalDomain(host: string): boolean {
    // The common case first: the host as configured (lower-case, no brackets).
    if (this.#domains.has(host) || this.#ownHosts.has(host)) return true;
    const h = host.toLowerCase().replace(/^\[|\]$/g, '');
    return this.#domains.has(h) || this.#ownHosts.has(h);
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** SIGTERM: refuse new calls (503), let live transactions finish, then close (bounded by graceMs). */
  async shutdown(graceMs = 3000): Promise<void> {
    this.#draining = true;
    const until = Date.now() + graceMs;
    while (this.transactions.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    this.dialogs.close();
    await this.location.close();
    await this.transport.close();
    await this.#opts.media?.close();
  }

  // -------------------------------------------------------------------------------------------
  // TransactionUser

  onRequest(req: SipRequest, tx: ServerTransaction | undefined, source: Source): void {
    requestsBy(methodLabel(req.method)).inc();
    void this.#onRequestGuarded(req, tx, source);
  }

  /** Runs the request handling; a throw is logged and answered with 500 (no closure per request). */
  async #onRequestGuarded(req: SipRequest, tx: ServerTransaction | undefined, source: Source): Promise<void> {
    try {
      await this.#onRequest(req, tx, source);
    } catch (err) {
      rateLimitedLog('signalling-request-error', (s) => log.error({ err, suppressed: s, method: req.method }, 'request handling failed'));
      if (tx && req.method !== 'ACK') {
        try {
          tx.respond(createResponse(req, 500, 'Server Internal Error'));
        } catch {
          /* transaction already answered */
        }
      }
    }
  }

  /** The registrar's fast path (registrar/register-fast-path.ts) as the transport's pre-parse hook. */
  #fastRegisterPath(): (data: Buffer, source: Source) => boolean {
    const fast = new RegisterFastPath({
      isLocalDomain: (host) => this.isLocalDomain(host),
      authEnabled: this.#auth !== undefined,
      admit: (source) => {
        if (this.#draining) return 'generic';
        requestsBy('REGISTER').inc();
        countStatelessRequest();
        if (this.#failures.isBlocked(source.address)) {
          droppedBlocked.inc();
          return 'drop';
        }
        return 'go';
      },
      answer: (facts, authorization, receivedUri, source) => this.answerRegister(facts, authorization, receivedUri, source),
      send: (data, dest, source) => this.transport.transmit(data, dest, onFastSendError, dest, source),
      fault: (err) => rateLimitedLog('signalling-request-error', (s) => log.error({ err, suppressed: s, method: 'REGISTER' }, 'request handling failed')),
    });
    return (data, source) => fast.take(data, source);
  }

  statelessFor(req: SipRequest): boolean {
    if (req.method !== 'REGISTER' || this.#opts.statelessRegister === false) return false;
    // The same test as the trust decision's `forOurRegistrar`: a REGISTER we relay keeps its transaction.
    const ruri = req.requestUriOrUndefined;
    return ruri !== undefined && ruri.scheme !== 'tel' && !req.has('Route') && this.isLocalDomain(ruri.host);
  }

  onUnmatchedCancel(req: SipRequest, tx: ServerTransaction): void {
    // Perhaps for an INVITE a peer forwarded before it died.
    void this.#cancelForPeer(req).then(
      (sent) => tx.respond(sent ? createResponse(req, 200, 'OK') : createResponse(req, 481, 'Call/Transaction Does Not Exist')),
      () => tx.respond(createResponse(req, 481, 'Call/Transaction Does Not Exist')),
    );
  }

  onStrayResponse(res: SipResponse): void {
    // A response for no transaction of ours: a 2xx retransmission after the client transaction
    // ended, or the callee's answer to an INVITE a peer forwarded before it died. Relayed
    // statelessly upstream (§16.7: our Via on top is removed, the next one says where to go), but
    // only for a dialog of ours or a branch the cluster recorded: anything else would let anyone
    // send a "response" through us to the address its second Via names.
    const top = res.topVia;
    if (!top.branch?.includes('.tdm.') || !this.stack.isOwnAddress(top.host, top.port, top.transport)) return;
    const local = this.dialogs.get(res.callId);
    if (local && local.fromTag === res.fromTag) {
      this.#relayStray(res);
      return;
    }
    if (res.cseq.method === 'INVITE' && res.status > 100 && this.#opts.dialogStore) {
      void this.#continueInvite(res).then((known) => (known ? this.#relayStray(res) : strayDropped.inc()));
      return;
    }
    strayDropped.inc();
  }

  #relayStray(res: SipResponse): void {
    const c = copyResponse(res);
    c.removeFirst('Via');
    if (c.vias.length === 0) return;
    this.stack.sendResponseStateless(c);
  }

  /**
   * A response to an INVITE with no transaction here, for a call a peer set up and died with: its
   * SDP goes through the media node that took the offer, and the dialog is confirmed here (a 2xx)
   * or ended, with the hop-by-hop ACK the dead node owed the callee (a failure, §17.1.1.3).
   */
  async #continueInvite(res: SipResponse): Promise<boolean> {
    try {
      // Only a response on a branch the cluster recorded for this call acts on it: its Via branch
      // (derived from the caller's INVITE) is the proof, a Call-ID alone is not.
      const rec = await this.#opts.dialogStore?.get(res.callId).catch(() => undefined);
      if (!rec?.invite?.branches.some((b) => b.branch === res.topVia.branch)) return false;
      const media = this.#opts.media;
      if (media && rec.mediaNode && isSdpMessage(res) && res.status < 300) {
        const r = await media.answer({ callId: res.callId, fromTag: res.fromTag ?? '', toTag: res.toTag ?? '', sdp: res.body, node: rec.mediaNode });
        if (r.ok) res.body = r.value;
      }
      if (rec.state !== 'early') return true;
      takenOverResponses.inc();
      if (res.status >= 200 && res.status < 300) {
        // Confirmed here: this node owns the dialog from now on (counts, timeouts, accounting).
        const confirmed: DialogRecord = { ...rec, state: 'confirmed', toTag: res.toTag ?? '', answeredAtMs: Date.now(), updatedAtMs: Date.now(), owner: this.#opts.nodeName ?? rec.owner ?? '', epoch: (rec.epoch ?? 0) + 1 };
        delete confirmed.invite;
        this.dialogs.adopt(confirmed);
        void this.#opts.dialogStore?.put(confirmed).catch(() => undefined);
      } else if (res.status >= 300) {
        this.#ackFailure(rec, res);
        void this.#opts.dialogStore?.delete(rec.id).catch(() => undefined);
        if (rec.mediaNode) void this.#opts.media?.delete(rec.callId, undefined, rec.mediaNode);
        void this.#opts.accounting?.callEnded(rec, res.status === 487 ? 'cancel' : 'failure');
      }
      return true;
    } catch (err) {
      rateLimitedLog('continue-invite', (s) => log.warn({ err, suppressed: s }, 'continuing a peer\'s INVITE failed'));
      return false;
    }
  }

  /** The ACK for a non-2xx final, hop by hop to the branch that answered (§17.1.1.3). */
  #ackFailure(rec: DialogRecord, res: SipResponse): void {
    const b = rec.invite?.branches.find((x) => x.branch === res.topVia.branch);
    const hop = b ? parseHop(b.hop) : undefined;
    if (!rec.invite || !b || !hop) return;
    const ack = createRequest({
      method: 'ACK',
      uri: b.uri,
      via: res.get('Via')!,
      from: rec.invite.from,
      to: res.get('To') ?? rec.invite.to,
      callId: rec.callId,
      cseq: rec.invite.cseq,
      headers: (b.route ?? []).map((r) => ['Route', r] as [string, string]),
    });
    this.stack.sendStateless(ack, hop);
  }

  /**
   * A CANCEL with no INVITE transaction here: the INVITE may have been forwarded by a peer that
   * died. The CANCEL is proven to name that very INVITE when the branch derived from it (its Via,
   * Call-ID, CSeq: the INVITE's own, §9.1) is the one the peer used; then every branch is
   * CANCELled downstream and the caller gets 200 (the callee's 487 follows statelessly).
   */
  async #cancelForPeer(req: SipRequest): Promise<boolean> {
    const store = this.#opts.dialogStore;
    if (!store) return false;
    // A read that failed (Redis slow or reconnecting) is tried once more before answering 481,
    // which would be final for the caller.
    let rec = await store.get(req.callId).catch(() => undefined);
    if (!rec) {
      await new Promise((r) => setTimeout(r, 200));
      rec = await store.get(req.callId).catch(() => undefined);
    }
    if (!rec?.invite || rec.state !== 'early') return false;
    let sent = 0;
    rec.invite.branches.forEach((b) => {
      const hop = parseHop(b.hop);
      if (!hop || !b.branch.includes(`.${derivedBranch(req, b.index)}.`)) return;
      const iface = this.stack.interfaceFor(hop);
      const host = iface.host.includes(':') ? `[${iface.host}]` : iface.host;
      const cancel = createRequest({
        method: 'CANCEL',
        uri: b.uri,
        via: `SIP/2.0/${iface.transport.toUpperCase()} ${host}:${iface.port};branch=${b.branch};rport`,
        from: rec.invite!.from,
        to: rec.invite!.to,
        callId: rec.callId,
        cseq: rec.invite!.cseq,
        headers: (b.route ?? []).map((r) => ['Route', r] as [string, string]),
      });
      this.stack.sendStateless(cancel, hop);
      sent++;
    });
    if (sent) takenOverCancels.inc();
    return sent > 0;
  }

  async #onRequest(req: SipRequest, tx: ServerTransaction | undefined, source: Source): Promise<void> {
    const method = req.method;
    if (!tx) {
      // ACK to a 2xx: end to end, no transaction (§16.11 / RFC 6026). Forwarded only along a
      // route set we issued; any other is absorbed (an ACK is never answered).
      if (method !== 'ACK') return;
      if (this.proxy.validate(req)) return;
      const check = this.proxy.preprocessRoutes(req);
      if (decideTrust(this.#facts(req, check)).step !== 'in-dialog') {
        untrustedAbsorbed.inc();
        return;
      }
      this.proxy.forwardAck(req, source);
      return;
    }
    if (method === 'CANCEL') {
      // A CANCEL that matched an INVITE transaction was answered by the transaction layer.
      tx.respond(createResponse(req, 481, 'Call/Transaction Does Not Exist'));
      return;
    }
    if (method === 'ACK') return;
    if (this.#failures.isBlocked(source.address)) {
      droppedBlocked.inc();
      return;
    }
    const ruri = req.requestUriOrUndefined;
    const toSelf = ruri !== undefined && ruri.scheme !== 'tel' && !ruri.user && this.isLocalDomain(ruri.host) && req.getAll('Route').length === 0;
    // §16.3 step 3: OPTIONS with Max-Forwards 0 may be answered by the proxy; and OPTIONS to
    // the proxy itself is answered locally (health checks).
    if (method === 'OPTIONS' && (toSelf || req.maxForwards === 0)) {
      tx.respond(
        createResponse(req, 200, 'OK', {
          headers: [
            ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE'],
            ['Accept', 'application/sdp'],
            ['Supported', 'path'],
          ],
        }),
      );
      return;
    }
    const invalid = this.proxy.validate(req);
    if (invalid) {
      tx.respond(createResponse(req, invalid.status, invalid.reason));
      return;
    }
    // The digest `uri` is compared with the Request-URI as received (before §16.4 rewrites it).
    const receivedUri = req.uri;
    const check = this.proxy.preprocessRoutes(req);
    const ruri2 = req.requestUriOrUndefined;
    if (!ruri2) {
      tx.respond(createResponse(req, 416, 'Unsupported URI Scheme'));
      return;
    }
    if (method === 'INVITE' && req.toTag === undefined && this.#peerWindowUntil > Date.now()) {
      // Shortly after a peer died: is this the retransmission of an INVITE it forwarded? Then the
      // same branches go out again (the callee sees a retransmission, not a second call) and this
      // node carries the transaction on. Proven by the branches derived from the request itself;
      // its credentials were checked by the peer (and their nonce count is spent).
      if (await this.#continuePeerInvite(req, tx, source)) return;
    }
    if (method === 'INVITE' && req.toTag === undefined) {
      // A call a peer set up and this node adopted, whose INVITE comes again: the caller did not
      // hear the 2xx yet (it went through the peer, or was lost), and the callee re-sends it
      // until the ACK; not a new request to challenge.
      if (repeatsPeersAnsweredInvite(req, this.dialogs.get(req.callId), this.#opts.nodeName)) {
        answeredInvitesAbsorbed.inc();
        return;
      }
    }
    const trust = decideTrust(this.#facts(req, check));
    const inDialog = trust.step === 'in-dialog';
    if (req.toTag !== undefined && !inDialog) untrustedInDialog.inc();
    if (this.#draining && !inDialog) {
      tx.respond(createResponse(req, 503, 'Service Unavailable (Shutting Down)', { headers: [['Retry-After', '5']] }));
      return;
    }

    let authUser: string | undefined;
    switch (trust.step) {
      case 'absorb':
        return;
      case 'registrar': {
        const answer = await this.answerRegister(registerFactsOf(req), trust.authenticate ? req.getAll('Authorization') : undefined, receivedUri, source);
        if (answer) tx.respond(createResponse(req, answer.status, answer.reason, { headers: answer.headers }));
        return;
      }
      case 'authenticate': {
        const check = await this.#checkCredentials(req.getAll('Proxy-Authorization'), method, source, 'proxy', receivedUri, undefined);
        if (check.kind !== 'user') {
          // Credentials a node of the cluster already took, on an INVITE: a retransmission of an
          // INVITE a peer forwarded (the address moved before the peer's death was noticed, or
          // the peer answered it) is carried on or absorbed, not challenged again (a caller that
          // gets a 407 for it re-sends a new INVITE for a call that is already set up).
          if (check.kind === 'answer' && check.spent && method === 'INVITE' && req.toTag === undefined && (await this.#continuePeerInvite(req, tx, source))) return;
          if (check.kind === 'answer') tx.respond(createResponse(req, check.answer.status, check.answer.reason, { headers: check.answer.headers }));
          return;
        }
        const user = check.user;
        authUser = user;
        const fromUser = req.from.uri.user;
        if (user !== undefined && fromUser !== undefined && decodeURIComponentSafe(fromUser) !== user) {
          tx.respond(createResponse(req, 403, 'Forbidden (From Does Not Match User)'));
          return;
        }
        // RFC 3261 §22.3: credentials for this proxy's realm are consumed.
        req.remove('Proxy-Authorization');
        break;
      }
      case 'in-dialog':
        // Only a request that follows a route set we issued acts on the dialog.
        this.dialogs.touch(req.callId);
        if (method === 'BYE') void this.#endDialog(req.callId);
        break;
      case 'out-of-dialog':
        break;
    }
    if (!inDialog && method === 'INVITE' && this.dialogs.get(req.callId)?.state === 'confirmed') {
      // A new INVITE reusing the Call-ID of an established call (and perhaps its From-tag) would
      // reach that call's media session as a re-offer: refused.
      tx.respond(createResponse(req, 403, 'Call-ID In Use'));
      return;
    }

    let route: RouteResult = { kind: 'default' };
    if (this.#routeHook) {
      try {
        route = await this.#routeHook(req, this.#routeContext(source, authUser, inDialog));
      } catch (err) {
        rateLimitedLog('route-hook-error', (s) => log.error({ err, suppressed: s }, 'route hook threw'));
        tx.respond(createResponse(req, 500, 'Routing Error'));
        return;
      }
    }
    if (route.kind === 'default') route = await this.defaultRoute(req, inDialog, source, authUser);
    await this.proxy.forward(req, wrapServerTx(tx), source, route);
  }

  /**
   * A trusted BYE: the dialog ends and its media is deleted, also for a call a peer set up (its
   * shared record names the media node).
   */
  async #endDialog(callId: string): Promise<void> {
    const local = this.dialogs.get(callId);
    const shared = local ? undefined : await this.#opts.dialogStore?.get(callId).catch(() => undefined);
    const mediaNode = local?.mediaNode ?? shared?.mediaNode;
    this.dialogs.end(callId, 'bye');
    // A peer's call: its record is written here (the tracker accounts for its own calls).
    if (shared) void this.#opts.accounting?.callEnded(shared, 'bye');
    await this.#opts.media?.delete(callId, undefined, mediaNode);
  }

  /**
   * A peer died (its VIP reached this node, or its heartbeat lapsed): for the next 64*T1 (the
   * longest a caller retransmits an INVITE) new INVITEs are checked against the peer's ringing
   * calls before being routed.
   */
  notePeerTakeover(): void {
    this.#peerWindowUntil = Date.now() + 64 * (this.#opts.transaction?.t1Ms ?? 500);
  }

  /**
   * `req` repeats an INVITE a peer forwarded: while the call rings it goes out again on the
   * peer's branches and this node carries the transaction on; once answered it is absorbed.
   * false when the cluster knows no such INVITE.
   */
  async #continuePeerInvite(req: SipRequest, tx: ServerTransaction, source: Source): Promise<boolean> {
    const rec = await this.#opts.dialogStore?.get(req.callId).catch(() => undefined);
    if (!rec) return false;
    if (repeatsPeersAnsweredInvite(req, rec, this.#opts.nodeName)) {
      answeredInvitesAbsorbed.inc();
      return true;
    }
    const again = this.#peerInviteRoute(req, rec);
    if (!again) return false;
    peerInvitesResumed.inc();
    await this.proxy.forward(req, wrapServerTx(tx), source, again);
    return true;
  }

  /** The route that re-sends a dead peer's INVITE exactly as it did, when `req` is its retransmission. */
  #peerInviteRoute(req: SipRequest, rec: DialogRecord): ParallelRoute | undefined {
    if (!rec.invite || rec.state !== 'early' || rec.owner === this.#opts.nodeName) return undefined;
    // The branches prove the transaction, not the body: a copy with another SDP would re-point the
    // call's media (records of nodes that did not keep the digest: branches only).
    if (rec.invite.body !== undefined && rec.invite.body !== inviteBodyDigest(req)) return undefined;
    let matches = rec.invite.branches.map((b) => ({ b, i: b.index })).filter(({ b, i }) => b.branch.includes(`.${derivedBranch(req, i)}.`));
    // Serial forking: only the branch still running (the earlier ones failed).
    if (rec.invite.serial) matches = matches.slice(-1);
    const targets: Target[] = [];
    for (const { b, i } of matches) {
      const hop = parseHop(b.hop);
      if (hop) targets.push({ uri: b.uri, nextHop: hop, branchIndex: i, ...(b.route?.length ? { route: b.route } : {}) });
    }
    if (targets.length === 0) return undefined;
    return { kind: 'parallel', targets, ...(rec.mediaNode ? { mediaNode: rec.mediaNode } : {}) };
  }

  /**
   * A call still ringing whose node died, claimed by this node: its INVITE is forwarded again on
   * the branch that was running (the callee answers a retransmission with its last response, so
   * fr_inv_timer applies if it rang), and when that branch fails the failover goes on over the
   * destinations the dead node had not tried. Responses go back to the caller statelessly, by Via.
   */
  async resumeRinging(rec: DialogRecord): Promise<void> {
    const inv = rec.invite;
    const current = inv?.branches[inv.branches.length - 1];
    const hop = current ? parseHop(current.hop) : undefined;
    if (!inv?.serial || !inv.request || !current || !hop) return;
    const parsed = parseMessage(Buffer.from(inv.request, 'base64'));
    if (!parsed.ok || !parsed.value.isRequest()) return;
    const req = parsed.value as SipRequest;
    const tried = inv.branches.flatMap((b) => (b.destination ? [b.destination] : []));
    const ds = this.services['dispatcher'] as { dispatch?: (set: string, r: SipRequest, o: Record<string, unknown>) => RouteResult } | undefined;
    const rest = inv.serial.set && ds?.dispatch ? ds.dispatch(inv.serial.set, req, { exclude: tried, ...inv.serial }) : undefined;
    const more = rest?.kind === 'serial' && typeof rest.targets === 'function' ? (rest.targets as TargetSupplier) : undefined;
    const first: Target = { uri: current.uri, nextHop: hop, branchIndex: current.index, ...(current.destination ? { destinationKey: current.destination } : {}), ...(current.route?.length ? { route: current.route } : {}) };
    const route: RouteResult = {
      ...(rest?.kind === 'serial' ? rest : { exhaustedStatus: 503 }),
      kind: 'serial',
      targets: (attempt, soFar) => {
        if (attempt === 0) return first;
        const t = more?.(attempt - 1, soFar.slice(1));
        return t && { ...t, branchIndex: current.index + attempt };
      },
      ...(inv.serial.frTimerMs !== undefined ? { frTimerMs: inv.serial.frTimerMs } : {}),
      ...(inv.serial.frInvTimerMs !== undefined ? { frInvTimerMs: inv.serial.frInvTimerMs } : {}),
      ...(inv.serial.set ? { dispatchSet: inv.serial.set } : {}),
      ...(rec.mediaNode ? { mediaNode: rec.mediaNode } : {}),
    };
    const v = req.topVia;
    const source: Source = { transport: v.transport.toLowerCase() as Source['transport'], address: v.params.get('received') ?? v.host, port: Number(v.params.get('rport')) || v.port || 5060, localAddress: '', localPort: 0 };
    resumedRinging.inc();
    log.info({ callId: rec.callId, from: rec.creator, tried: tried.length }, 'going on with a ringing call of a node that died');
    await this.proxy.forward(req, new DetachedServerTx(req, this.stack), source, route as Exclude<RouteResult, { kind: 'default' }>);
  }

  /** The facts the trust decision reads (request-trust.ts). */
  #facts(req: SipRequest, check: RouteCheck): RequestFacts {
    const ruri = req.requestUriOrUndefined;
    const hasToTag = req.toTag !== undefined;
    const authEnabled = this.#auth !== undefined;
    const forOurRegistrar = req.method === 'REGISTER' && ruri !== undefined && req.getAll('Route').length === 0 && ruri.scheme !== 'tel' && this.isLocalDomain(ruri.host);
    // The From URI is parsed only where the decision reads it (auth on, not in-dialog, not ACK).
    const readsFrom = authEnabled && !forOurRegistrar && req.method !== 'ACK' && !(hasToTag && check.authentic);
    return { method: req.method, hasToTag, routeAuthentic: check.authentic, forOurRegistrar, fromLocalUser: readsFrom && this.#fromLocalUser(req), authEnabled };
  }

  /**
   * The built-in route: in-dialog and foreign requests go to the Request-URI (or Route);
   * dispatcher prefix routes; requests for local users go to their registered contacts
   * (parallel fork by q), 404 for unknown users, 480 for users with no binding.
   *
   * Relay rules for out-of-dialog requests: a request to a foreign domain is relayed only for one
   * of our users (authenticated when auth is on); calls to the back-end PBXs (dispatcher prefix
   * routes) only for an authenticated user when auth is on. Anyone may reach our users.
   */
  async defaultRoute(req: SipRequest, inDialog: boolean, source?: Source, authUser?: string): Promise<Exclude<RouteResult, { kind: 'default' }>> {
    const ruri = req.requestUri;
    if (inDialog || req.getAll('Route').length > 0 || ruri.scheme === 'tel' || !this.isLocalDomain(ruri.host)) {
      if (!inDialog && !this.#mayRelay(req, authUser)) return { kind: 'reply', status: 403, reason: 'Not Relaying' };
      const flow = inDialog && source ? this.proxy.flowNextHop(req, source) : undefined;
      return { kind: 'parallel', targets: [{ uri: req.uri, ...(flow ? { nextHop: flow } : {}) }] };
    }
    const ds = this.services['dispatcher'] as { routeByPrefix?: (r: SipRequest) => RouteResult | undefined } | undefined;
    if (!inDialog && req.method === 'INVITE' && ds?.routeByPrefix) {
      const r = ds.routeByPrefix(req);
      if (r && r.kind !== 'default') {
        if (!this.#mayRelay(req, authUser)) return { kind: 'reply', status: 403, reason: 'Not Relaying' };
        return r;
      }
    }
    if (!ruri.user) return { kind: 'reply', status: 404, reason: 'Not Found' };
    const aor = aorKey(ruri);
    const targets = await this.lookup(aor);
    if (targets.length === 0) {
      const user = decodeURIComponentSafe(ruri.user);
      const known = this.#opts.users?.lookup(user) !== undefined;
      return known ? { kind: 'reply', status: 480, reason: 'Temporarily Unavailable' } : { kind: 'reply', status: 404, reason: 'Not Found' };
    }
    return { kind: 'parallel', targets };
  }

  /** Out-of-dialog request beyond our users (foreign domain, PBX): from one of our users, proven when auth is on. */
  #mayRelay(req: SipRequest, authUser: string | undefined): boolean {
    if (this.#auth) return authUser !== undefined;
    return this.#fromLocalUser(req);
  }

  /** Registered contacts of an AOR as targets: to the NAT flow the REGISTER came from, with Path. */
  async lookup(aor: string): Promise<Target[]> {
    const bindings = await this.location.getBindings(aor);
    const targets: Target[] = [];
    for (const b of bindings) {
      const t: Target = { uri: b.contact, q: b.q };
      if (b.path?.length) t.route = b.path;
      else if (b.received && useFlow(b.contact, b.received)) {
        t.nextHop = {
          transport: b.received.transport,
          address: b.received.address,
          port: b.received.port,
          ...(b.received.connectionId !== undefined ? { connectionId: b.received.connectionId } : {}),
        };
        t.viaFlow = true;
      }
      targets.push(t);
    }
    if (targets.length > 1) targets.sort(byQ);
    return targets;
  }

  #routeContext(source: Source, authUser: string | undefined, inDialog: boolean): RouteContext {
    return {
      source,
      authUser,
      inDialog,
      isLocalDomain: (h) => this.isLocalDomain(h),
      lookup: (aor) => this.lookup(aor),
      bindings: (aor) => this.location.getBindings(aor),
      services: this.services,
    };
  }

  #fromLocalUser(req: SipRequest): boolean {
    const from = req.fromOrUndefined;
    return from !== undefined && from.uri.scheme !== 'tel' && this.isLocalDomain(from.uri.host);
  }

  /**
   * A REGISTER for our registrar, from the generic path or the fast path: the digest check when
   * `authorization` is given (auth on), then the registrar. Undefined when nothing is to be sent
   * (a blocked source). The caller has already checked the source is not blocked and the node
   * is not draining. The answer comes without a promise when nothing has to wait (no cluster
   * nonce count, a location store in this process): the usual case of a single node.
   */
  answerRegister(facts: RegisterFacts, authorization: string[] | undefined, receivedUri: string, source: Source): MaybePromise<RegisterAnswer | undefined> {
    if (authorization === undefined || !this.#auth) return this.#register(facts, source, undefined);
    const check = this.#checkCredentials(authorization, 'REGISTER', source, 'registrar', receivedUri, facts);
    return check instanceof Promise ? check.then((c) => this.#registerChecked(c, facts, source)) : this.#registerChecked(check, facts, source);
  }

  #registerChecked(check: CredentialCheck, facts: RegisterFacts, source: Source): MaybePromise<RegisterAnswer | undefined> {
    if (check.kind === 'answer') return check.answer;
    if (check.kind === 'drop') return undefined;
    return this.#register(facts, source, check.user);
  }

  #register(facts: RegisterFacts, source: Source, user: string | undefined): MaybePromise<RegisterAnswer> {
    return this.registrar.decideNow(facts, source, user) ?? this.registrar.decide(facts, source, user);
  }

  /**
   * Digest check of the Authorization (registrar) or Proxy-Authorization (proxy) values. Says
   * who the user is, or the answer to send instead (challenge, refusal, or for a retransmitted
   * REGISTER the 200 its first copy got), or that the request is dropped. Only failures that
   * prove wrong credentials, made with a nonce issued to this very source, count toward
   * blocking it. A promise only where the check waits: the cluster's nonce counts, the
   * registrar's bindings for a retransmission.
   */
  #checkCredentials(values: string[], method: string, source: Source, role: 'registrar' | 'proxy', receivedUri: string, register: RegisterFacts | undefined): MaybePromise<CredentialCheck> {
    const auth = this.#auth;
    if (!auth) return { kind: 'user', user: undefined };
    const bound = this.#bindNonce ? source.address : undefined;
    const r = auth.verify(values, method, { requestUri: receivedUri, ...(bound ? { source: bound } : {}) });
    if (r.ok && this.#nonceCounts) {
      // This node's own check passed; the cluster's tells a replay to another node (without qop a
      // nonce serves one request: its count is "infinity").
      const c = r.credentials;
      const nc = c.qop && c.nc ? parseInt(c.nc, 16) : Number.MAX_SAFE_INTEGER;
      return this.#nonceCounts.accept(c.nonce, nc, auth.nonceLifetimeSec).then(async (accepted): Promise<CredentialCheck> => {
        if (accepted) return this.#credentialOutcome(r, source, role, bound, register);
        const out = await this.#credentialOutcome({ ok: false, failure: c.qop ? 'replay' : 'stale', username: r.username }, source, role, bound, register);
        return out.kind === 'answer' ? { ...out, spent: true } : out;
      });
    }
    return this.#credentialOutcome(r, source, role, bound, register);
  }

  #credentialOutcome(r: VerifyResult, source: Source, role: 'registrar' | 'proxy', bound: string | undefined, register: RegisterFacts | undefined): MaybePromise<CredentialCheck> {
    if (r.ok) {
      authResult('ok').inc();
      this.#failures.recordSuccess(source.address);
      return { kind: 'user', user: r.username };
    }
    authResult(r.failure).inc();
    if (r.failure === 'replay' && r.sameCount && register && r.username !== undefined) {
      // The REGISTER is answered without a transaction: a retransmission of one already accepted
      // reaches us again with the count it used. It gets the 200 the first copy got (nothing
      // changes: the registrar only answers, see answerRetransmission); any other reuse is refused.
      return this.registrar.answerRetransmission(register, r.username).then((again): CredentialCheck => {
        if (again) {
          registerRetransmissions.inc();
          return { kind: 'answer', answer: again };
        }
        return this.#refusal(r, source, role, bound);
      });
    }
    return this.#refusal(r, source, role, bound);
  }

  /** A failed check's answer: 400 for a wrong digest URI, else a fresh challenge; or a drop once the source is blocked. */
  #refusal(r: VerifyResult & { ok: false }, source: Source, role: 'registrar' | 'proxy', bound: string | undefined): CredentialCheck {
    const auth = this.#auth!;
    if (r.failure === 'uri-mismatch') return { kind: 'answer', answer: { status: 400, reason: 'Digest URI Does Not Match Request-URI', headers: [] } };
    if (provesWrongCredentials(r.failure) && !this.#isTrusted(source.address)) {
      if (this.#failures.recordFailure(source.address)) {
        sourcesBlocked.inc();
        log.warn({ source: source.address, blockSec: this.#opts.auth.blockSec ?? 300 }, 'source blocked after repeated wrong credentials');
      }
      if (this.#failures.isBlocked(source.address)) {
        droppedBlocked.inc();
        return { kind: 'drop' };
      }
    }
    const status = role === 'registrar' ? 401 : 407;
    const chHeader = role === 'registrar' ? 'WWW-Authenticate' : 'Proxy-Authenticate';
    const headers: [string, string][] = auth.challenges(r.failure === 'stale', bound).map((c) => [chHeader, c]);
    return { kind: 'answer', answer: { status, reason: reasonPhrase(status), headers } };
  }

  #makeStack(): ProxyStack {
    const tl = this.transactions;
    const tp = this.transport;
    // One LocalInterface per listening point, built once (asked for on every forwarded request).
    const ifaces = new WeakMap<ListeningPoint, LocalInterface>();
    const toIface = (lp: ListeningPoint): LocalInterface => {
      let i = ifaces.get(lp);
      if (!i) {
        i = { transport: lp.transport, host: lp.host, port: lp.sentByPort, boundAddress: lp.address, boundPort: lp.port };
        ifaces.set(lp, i);
      }
      return i;
    };
    const sendErrors = counter('tandem_proxy_send_errors_total', 'Stateless sends that failed');
    const onSendError = (): void => sendErrors.inc();
    return {
      sendRequest: (req, target, h) => tl.sendRequest(req, target, h) as ProxyClientTransaction,
      cancel: (tx) => tl.cancel(tx as never),
      sendStateless: (req, target: Endpoint) => {
        tp.send(req, target).catch(onSendError);
      },
      sendResponseStateless: (res) => {
        tp.sendResponse(res).catch(onSendError);
      },
      interfaceFor: (target) => toIface(tp.listeningPointFor(target.transport, target.address)),
      interfaceOf: (source) => {
        for (const p of tp.listeningPoints) {
          if (p.transport === source.transport && p.port === source.localPort && (p.address === source.localAddress || p.address === '0.0.0.0' || p.address === '::')) return toIface(p);
        }
        return toIface(tp.listeningPointFor(source.transport, source.address));
      },
      isOwnAddress: (host, port, transport) => {
        const h = (host.charCodeAt(0) === 91 ? host.replace(/^\[|\]$/g, '') : host).toLowerCase();
        const t = transport?.toLowerCase();
        for (const lp of tp.listeningPoints) {
          const p = port ?? (lp.transport === 'tls' ? 5061 : 5060);
          if (p !== lp.sentByPort && p !== lp.port) continue;
          if (t && t !== lp.transport && !(t === 'udp' && lp.transport !== 'udp' && port !== undefined)) {
            // Transport mismatch on the same port still names us when another LP shares it.
            if (!tp.listeningPoints.some((o) => o.transport === t && (o.port === p || o.sentByPort === p))) continue;
          }
          if (h === lp.host.toLowerCase() || h === lp.address || ((lp.address === '0.0.0.0' || lp.address === '::') && this.#ownHosts.has(h))) return true;
          if (isIP(h) === 0 && this.#domains.has(h)) return true;
          // A cluster address names us whichever node holds it now (loose routing after takeover).
          if (this.#clusterHosts.has(h)) return true;
        }
        return false;
      },
    };
  }
}

function wrapServerTx(tx: ServerTransaction): ProxyServerTransaction {
  return new ServerTxAdapter(tx);
}

/**
 * The server side of a request received by a node that died: responses go upstream statelessly,
 * by the request's Via (the caller's retransmissions and CANCEL reach whoever holds the VIP).
 */
class DetachedServerTx implements ProxyServerTransaction {
  readonly request: SipRequest;
  readonly #stack: ProxyStack;
  constructor(request: SipRequest, stack: ProxyStack) {
    this.request = request;
    this.#stack = stack;
  }
  respond(res: SipResponse): void {
    this.#stack.sendResponseStateless(res);
  }
  onCancel(): void {
    /* a CANCEL is sent on from the shared record (SignallingNode.onUnmatchedCancel) */
  }
}

/** The server transaction as the proxy sees it (a class: no closures per request). */
class ServerTxAdapter implements ProxyServerTransaction {
  readonly #tx: ServerTransaction;
  constructor(tx: ServerTransaction) {
    this.#tx = tx;
  }
  get request(): SipRequest {
    return this.#tx.request;
  }
  respond(res: SipResponse): void {
    this.#tx.respond(res);
  }
  onCancel(fn: () => void): void {
    if (this.#tx.cancelled) queueMicrotask(fn);
    else this.#tx.on('cancel', fn);
  }
}

/**
 * Whether to reach a contact through the flow its REGISTER came from rather than its Contact
 * URI: always for TCP/TLS (a UA does not listen on its ephemeral port; the connection is reused,
 * RFC 5626 style), and for UDP when the Contact's IP is not the address the REGISTER came from
 * (the UA is behind NAT: send to received/rport). A Contact with the source IP but another port
 * is a third-party registration or a separate listening port and is used as written.
 */
function useFlow(contact: string, flow: { transport: string; address: string; port: number }): boolean {
  if (flow.transport !== 'udp') return true;
  const u = parseUri(contact);
  if (!u.ok) return true;
  const host = u.value.host.replace(/^\[|\]$/g, '');
  return host.toLowerCase() !== flow.address.toLowerCase();
}

/**
 * Whether this node still owns a dialog it holds: no peer claimed it (owner and epoch unchanged).
 * A record Redis cannot give counts as still ours (acting twice is idempotent; not acting loses
 * the duty).
 */
async function stillOwner(store: DialogStore, rec: DialogRecord, nodeId: string | undefined): Promise<boolean> {
  const cur = await store.get(rec.id).catch(() => undefined);
  if (!cur) return true;
  return cur.owner === (nodeId ?? rec.owner) && (cur.epoch ?? 0) === (rec.epoch ?? 0);
}

function isSdpMessage(m: SipResponse): boolean {
  return m.body.length > 0 && (m.contentType ?? '').toLowerCase().startsWith('application/sdp');
}

/** `udp:198.51.100.7:5060` -> endpoint. */
function parseHop(text: string): Endpoint | undefined {
  const i = text.indexOf(':');
  const j = text.lastIndexOf(':');
  const transport = text.slice(0, i);
  const port = Number(text.slice(j + 1));
  if ((transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') || !(port > 0 && port < 65536)) return undefined;
  return { transport, address: text.slice(i + 1, j), port };
}

/** Decreasing q (RFC 3261 §16.6: contacts tried in order of q). */
function byQ(a: Target, b: Target): number {
  return (b.q ?? 1) - (a.q ?? 1);
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
