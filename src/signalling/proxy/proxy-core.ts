/**
 * Stateful proxy (RFC 3261 §16): request validation and preprocessing, forwarding to one target,
 * parallel forking or serial failover, response processing and best-response aggregation,
 * CANCEL propagation, and media anchoring over ng.
 *
 * Per INVITE the proxy keeps a `ProxyContext` (the "response context" of §16.2) holding the
 * server transaction and one `Branch` per client transaction.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { base36 } from '../../util/base36.js';
import { HmacSha256 } from '../../util/hmac-sha256.js';
import { SipRequest as SipRequestClass, type SipRequest, type SipResponse } from '../../sip/message/sip-message.js';
import { md5Hex } from '../../util/md5.js';
import { ownString } from '../../util/string-calls.js';
import { createResponse } from '../../sip/message/builders.js';
import { isKnownMethod } from '../../sip/message/methods.js';
import { formatUri, parseNameAddr, parseUri, type SipUri } from '../../sip/uri/sip-uri.js';
import type { Endpoint, Source, TransportName } from '../../sip/transport/types.js';
import { counter } from '../../util/metrics.js';
import { childrenOf, type BatchedChild } from '../metric-children.js';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { sharedTimerWheel, type TimerHandle, type TimerWheel } from '../../util/timer-wheel.js';
import type { DialogTracker } from '../dialogs/dialog-tracker.js';
import type { MediaControl } from '../media-control/media-control.js';
import type { ProxyClientHandlers, ProxyClientTransaction, ProxyServerTransaction, ProxyStack, LocalInterface } from './proxy-stack.js';
import { copyRequest, copyResponse } from './copy-message.js';
import type { BranchFailureReason, RouteResult, SerialRoute, Target, TargetSupplier } from './types.js';
import { ROUTE_TOKEN_PARAM, RouteToken } from './route-token.js';

const log = createLogger('proxy');
const forwardedCounter = counter('tandem_proxy_forwarded_requests_total', 'Requests forwarded by the proxy, by method', ['method']);
const finalCounter = counter('tandem_proxy_final_responses_total', 'Final responses sent upstream by the proxy, by status class', ['class']);
const failoverCounter = counter('tandem_proxy_failovers_total', 'Serial branches abandoned, by reason', ['reason']);
const mediaErrors = counter('tandem_proxy_media_errors_total', 'Media node (ng) failures seen by the proxy', ['op']);
// Labelled children bound once: `inc({ label })` hashes the label object on every call.
const failoverBy = childrenOf(failoverCounter);
const failoverTimeout = failoverBy('timeout');
const failoverNoAnswer = failoverBy('no-answer');
const failoverStatus = failoverBy('status');
const mediaErrorsBy = childrenOf(mediaErrors);
const mediaOfferErrors = mediaErrorsBy('offer');
const mediaAnswerErrors = mediaErrorsBy('answer');

/** Metric label for a method: a known one by name, anything else (peer-chosen) as `other`. */
export function methodLabel(method: string): string {
  return isKnownMethod(method) ? method : 'other';
}

const forwardedBy = childrenOf(forwardedCounter);
function forwardedChild(method: string): BatchedChild {
  return forwardedBy(methodLabel(method));
}

/** Methods whose forwarded requests get a Record-Route (they may create a dialog). */
const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER', 'NOTIFY']);
const BRANCH_MAGIC = 'z9hG4bK';
const LOOP_TAG = 'tdm';
const LOOP_MARK = `.${LOOP_TAG}.`;

/** Whether a Via value may carry a branch of ours (`validate` then runs the §16.3 loop check). */
export function mayCarryOurBranch(viaValue: string): boolean {
  return viaValue.includes(LOOP_MARK);
}

export interface ProxyCoreOptions {
  stack: ProxyStack;
  isLocalDomain: (host: string) => boolean;
  /**
   * Insert Record-Route on dialog-creating requests (double when the interface changes).
   * @default true
   */
  recordRoute?: boolean;
  /**
   * Timer C (§16.6 step 11): a ringing parallel branch with no final response for this long is
   * CANCELled; the caller then gets 480.
   * @default 180000
   */
  timerCMs?: number;
  /**
   * With early dialogs shared: longest time provisional responses to an INVITE wait for its record
   * to reach Redis (then they go anyway: a slow Redis must not slow calls). @default 100
   */
  earlyDurableWaitMs?: number;
  dialogs?: DialogTracker;
  media?: MediaControl;
  /**
   * Key for flow tokens (RFC 5626 §5.3 style): the Record-Route facing a UA behind NAT or on a
   * TCP/TLS connection carries its flow, integrity-protected, so in-dialog requests towards that
   * UA go back over the same flow. Share it across a cluster. @default random per process
   */
  flowTokenKey?: Buffer;
  /**
   * Key for route tokens (see route-token.ts): our Record-Route proves, for in-dialog requests,
   * that the route set is one we issued. Share it across a cluster. @default random per process
   */
  routeTokenKey?: Buffer;
  /**
   * Host written into our Record-Route instead of the interface's: the cluster's shared address,
   * so that in-dialog requests reach whichever node holds it. Via keeps the address the request
   * leaves from (a response must come back to the node holding the transaction).
   */
  recordRouteHost?: string;
  /** Timer wheel for fr_timer, fr_inv_timer and Timer C. @default the process-wide shared wheel */
  wheel?: TimerWheel;
}

export interface ResolvedRoute {
  route: Exclude<RouteResult, { kind: 'default' }>;
}

/** One client transaction of a context; it is also the transaction's handler object. */
interface Branch extends ProxyClientHandlers {
  readonly ctx: ProxyContext;
  target: Target;
  tx: ProxyClientTransaction | undefined;
  /** Provisional (101-199) received. */
  provisional: boolean;
  /** Anything at all received (incl. 100). */
  anyResponse: boolean;
  /** Status of the first final response received (0: none yet). */
  final: number;
  /** That response, kept only until the context's own final response is sent (§16.7 aggregation). */
  finalResponse: SipResponse | undefined;
  /** Abandoned by us (timer, cancel); later responses are ignored except to CANCEL. */
  abandoned: boolean;
  cancelSent: boolean;
  timer: TimerHandle | undefined;
  /** Status to count this branch as when it was abandoned by a timer. */
  synthetic?: number;
}

/** Parses a Via sent-by/URI host:port:transport into an endpoint. */
export function endpointOfUri(uri: SipUri): Endpoint | undefined {
  if (uri.scheme === 'tel' || !uri.host) return undefined;
  const t = uri.params.get('transport');
  let transport: TransportName = uri.scheme === 'sips' ? 'tls' : 'udp';
  if (t) {
    const l = t.toLowerCase();
    if (l === 'tcp' || l === 'tls' || l === 'udp') transport = l;
    else return undefined;
  }
  const maddr = uri.params.get('maddr');
  const host = (maddr || uri.host).replace(/^\[|\]$/g, '');
  return { transport, address: host, port: uri.port ?? (transport === 'tls' ? 5061 : 5060) };
}

function isFailoverStatus(status: number, list: SerialRoute['failoverStatuses']): boolean {
  const l = list ?? ['5xx', 408, 503];
  for (const s of l) {
    if (typeof s === 'number' && s === status) return true;
    if (s === '5xx' && status >= 500 && status < 600) return true;
    if (s === '4xx' && status >= 400 && status < 500) return true;
    if (s === '6xx' && status >= 600) return true;
  }
  return false;
}

function isSdp(msg: SipRequest | SipResponse): boolean {
  return msg.body.length > 0 && (msg.contentType ?? '').toLowerCase().startsWith('application/sdp');
}

/**
 * Non-cryptographic 52-bit string hash (two FNV-1a lanes with different primes, folded), as
 * base36. The loop-detection value only has to tell a request that came back unchanged from one
 * that spiralled (RFC 3261 §16.6 step 8 asks for "a value", not a digest); this costs a few
 * multiplications per character instead of an MD5 per request.
 */
class LoopHasher {
  a = 0x811c9dc5;
  b = 0x2b992ddf;
  add(s: string): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    // Field separator, so that ("ab","c") and ("a","bc") differ.
    this.a = Math.imul(a ^ 0xff, 0x01000193);
    this.b = Math.imul(b ^ 0xff, 0x5bd1e995);
    return this;
  }
  digest(): string {
    // 32 bits of lane a and the top 20 bits of lane b: 52 bits, exact in a double.
    return base36((this.a >>> 0) * 0x100000 + ((this.b >>> 12) & 0xfffff));
  }
}

/** Hash of the fields RFC 3261 §16.6 step 8 lists for loop detection. */
function loopHash(req: SipRequest): string {
  const h = new LoopHasher();
  h.add(req.uri).add(req.fromTag ?? '').add(req.toTag ?? '').add(req.callId).add(String(req.cseq.seq));
  for (const r of req.getAll('Route')) h.add(r);
  for (const r of req.getAll('Proxy-Require')) h.add(r);
  return h.digest();
}

export class ProxyCore {
  readonly stack: ProxyStack;
  #isLocal: (host: string) => boolean;
  #recordRoute: boolean;
  #timerCMs: number;
  readonly earlyDurableWaitMs: number;
  #dialogs: DialogTracker | undefined;
  #media: MediaControl | undefined;
  /** MACs of flow tokens (key shared by the cluster when it has a secret). */
  #flowMac: HmacSha256;
  readonly routeToken: RouteToken;
  readonly wheel: TimerWheel;
  #branchSeq = 0;
  #branchPrefix = randomBytes(4).toString('hex');
  #rrHost: string | undefined;
  /** Flow named by our Route's flow token, per request being routed (set by preprocessRoutes). */
  #flows = new WeakMap<SipRequest, Endpoint[]>();

  constructor(opts: ProxyCoreOptions) {
    this.stack = opts.stack;
    this.#isLocal = opts.isLocalDomain;
    this.#recordRoute = opts.recordRoute ?? true;
    this.#timerCMs = opts.timerCMs ?? 180_000;
    this.earlyDurableWaitMs = opts.earlyDurableWaitMs ?? 100;
    this.#dialogs = opts.dialogs;
    this.#media = opts.media;
    this.#flowMac = new HmacSha256(opts.flowTokenKey ?? randomBytes(16));
    this.routeToken = new RouteToken(opts.routeTokenKey ?? randomBytes(32));
    this.#rrHost = opts.recordRouteHost;
    this.wheel = opts.wheel ?? sharedTimerWheel();
  }

  /** Flow token for a flow: base64url(transport|address|port|connectionId|mac); carried as `;ft=` (caller) / `;ftc=` (callee) Record-Route parameters. */
  flowToken(source: Endpoint): string {
    const body = `${source.transport}|${source.address}|${source.port}|${source.connectionId ?? ''}`;
    const mac = this.#flowMac.start().add(body).digest().subarray(0, 8).toString('base64url');
    return Buffer.from(`${body}|${mac}`, 'utf8').toString('base64url');
  }

  /** Decodes and checks a flow token; undefined when it is not one of ours. */
  parseFlowToken(token: string): Endpoint | undefined {
    if (token.length > 200) return undefined;
    const text = Buffer.from(token, 'base64url').toString('utf8');
    const parts = text.split('|');
    if (parts.length !== 5) return undefined;
    const [transport, address, portText, conn, mac] = parts as [string, string, string, string, string];
    const body = `${transport}|${address}|${portText}|${conn}`;
    const expect = this.#flowMac.start().add(body).digest().subarray(0, 8).toString('base64url');
    if (!safeEqualText(mac, expect)) return undefined;
    if (transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') return undefined;
    const port = Number(portText);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
    return { transport, address, port, ...(conn ? { connectionId: Number(conn) } : {}) };
  }


  get dialogs(): DialogTracker | undefined {
    return this.#dialogs;
  }

  /**
   * §16.3 validation steps the node does before routing: Max-Forwards (483) and loop
   * detection (482). Returns a status to answer with, or undefined.
   */
  validate(req: SipRequest): { status: number; reason: string } | undefined {
    const mf = req.maxForwards;
    if (mf !== undefined && mf <= 0) return { status: 483, reason: 'Too Many Hops' };
    // §16.3 step 4: a Via with our sent-by whose branch carries the hash of this very request
    // means the request came back unchanged: a loop (a spiral changes the Request-URI).
    // Most requests carry no Via of ours at all: their Via text is scanned before any is parsed.
    let candidate = false;
    for (const e of req.headers.all('via')) {
      if (mayCarryOurBranch(e.value)) {
        candidate = true;
        break;
      }
    }
    if (!candidate) return undefined;
    let ours = false;
    for (const v of req.vias) {
      if (v.branch && v.branch.includes(`.${LOOP_TAG}.`) && this.stack.isOwnAddress(v.host, v.port, v.transport)) {
        ours = true;
        break;
      }
    }
    if (ours) {
      const h = loopHash(req);
      for (const v of req.vias) {
        if (v.branch?.includes(`.${LOOP_TAG}.${h}.`) && this.stack.isOwnAddress(v.host, v.port, v.transport)) {
          return { status: 482, reason: 'Loop Detected' };
        }
      }
    }
    return undefined;
  }

  /**
   * §16.4 route information preprocessing. Mutates `req`: strict-router compatibility (our
   * address in the Request-URI) and removal of our own Route values. Says whether a value of
   * ours was removed (`routed`) and whether it carried a route token valid for this request's
   * Call-ID and tags (`authentic`): only then are the flow tokens beside it used.
   */
  preprocessRoutes(req: SipRequest): RouteCheck {
    const check: RouteCheck = { routed: false, authentic: false };
    // "If the Request-URI of the request contains a value this proxy previously placed into a
    // Record-Route header field, the proxy MUST replace the Request-URI in the request with the
    // last value from the Route header field, and remove that value from the Route header field."
    const ruri = req.requestUriOrUndefined;
    if (ruri && !ruri.user && this.#isOwnUri(ruri)) {
      const routes = req.getAll('Route');
      if (routes.length) {
        const last = routes[routes.length - 1]!;
        const na = parseNameAddr(last);
        if (na.ok) {
          this.#checkOwnRoute(req, ruri, check);
          req.remove('Route');
          for (const r of routes.slice(0, -1)) req.append('Route', r);
          req.setUri(formatUri(na.value.uri));
        }
      }
    }
    // "If the first value in the Route header field indicates this proxy, the proxy MUST remove
    // that value from the request." Both values of a double Record-Route are ours.
    for (let i = 0; i < 2; i++) {
      const top = req.getAll('Route')[0];
      if (top === undefined) break;
      const na = parseNameAddr(top);
      if (!na.ok || !this.#isOwnUri(na.value.uri)) break;
      req.removeFirst('Route');
      this.#checkOwnRoute(req, na.value.uri, check);
    }
    return check;
  }

  /** A value of ours in the route: checks its token; a valid one also yields its flow tokens. */
  #checkOwnRoute(req: SipRequest, uri: SipUri, check: RouteCheck): void {
    check.routed = true;
    const token = uri.params.get(ROUTE_TOKEN_PARAM);
    const ft = uri.params.get('ft') ?? undefined;
    const ftc = uri.params.get('ftc') ?? undefined;
    if (!token || !this.routeToken.verify(token, req.callId, req.fromTag, req.toTag, flowParamsText(ft, ftc))) return;
    check.authentic = true;
    for (const tok of [ft, ftc]) {
      const flow = tok ? this.parseFlowToken(tok) : undefined;
      if (flow) {
        const list = this.#flows.get(req) ?? [];
        list.push(flow);
        this.#flows.set(req, list);
      }
    }
  }

  /**
   * Next hop from a flow token, for a request with no Route left: only when the request does
   * not itself come from that flow (then it travels the other way, RFC 5626 §5.3).
   */
  flowNextHop(req: SipRequest, source: Source): Endpoint | undefined {
    const flows = this.#flows.get(req);
    if (!flows || req.getAll('Route').length > 0) return undefined;
    const same = (f: Endpoint) => f.transport === source.transport && f.address === source.address && (f.port === source.port || (f.connectionId !== undefined && f.connectionId === source.connectionId));
    // The caller's and the callee's flows may both be recorded: the request goes to the one it
    // did not come from. With a single recorded flow, only a request from elsewhere uses it.
    const other = flows.filter((f) => !same(f));
    if (other.length !== 1) return undefined;
    if (flows.length === 2 && !flows.some(same)) return undefined;
    return other[0];
  }

  #isOwnUri(uri: SipUri): boolean {
    if (uri.scheme === 'tel') return false;
    return this.stack.isOwnAddress(uri.host.replace(/^\[|\]$/g, ''), uri.port, uri.params.get('transport') ?? undefined);
  }

  /** ACK for a 2xx (no transaction): forwarded end to end, statelessly (§16.11 / §13.2.2.4). */
  forwardAck(req: SipRequest, source: Source): void {
    const flow = this.flowNextHop(req, source);
    const target: Target = { uri: req.uri, ...(flow ? { nextHop: flow } : {}) };
    const prepared = this.#prepare(req, target, source, false);
    if (!prepared) return;
    this.stack.sendStateless(prepared.request, prepared.nextHop);
  }

  /**
   * Forwards a request statefully according to `route` (after validation, preprocessing and
   * authentication). Sends 100 Trying for INVITE first.
   */
  async forward(req: SipRequest, stx: ProxyServerTransaction, source: Source, route: Exclude<RouteResult, { kind: 'default' }>): Promise<void> {
    if (route.kind === 'reply') {
      const res = createResponse(req, route.status, route.reason, route.headers ? { headers: route.headers } : {});
      stx.respond(res);
      return;
    }
    const ctx = new ProxyContext(this, req, stx, source, route);
    await ctx.start();
  }

  /** @internal */
  prepareBranch(req: SipRequest, target: Target, source: Source, loopKey: string, branchIndex = 0): { request: SipRequest; nextHop: Endpoint } | undefined {
    return this.#prepare(req, target, source, true, loopKey, branchIndex);
  }

  /**
   * §16.6 steps 1-8: copy, Request-URI, Max-Forwards, Record-Route, Route (Path), strict-route
   * compatibility, next hop, Via.
   */
  #prepare(orig: SipRequest, target: Target, source: Source, stateful: boolean, loopKey?: string, branchIndex = 0): { request: SipRequest; nextHop: Endpoint } | undefined {
    const req = copyRequest(orig);
    req.setUri(target.uri);
    const mf = req.maxForwards;
    req.set('Max-Forwards', String(mf === undefined ? 70 : Math.max(0, mf - 1)));
    if (target.route?.length) {
      for (let i = target.route.length - 1; i >= 0; i--) req.prepend('Route', target.route[i]!);
    }
    // §16.6 step 6 (strict routing compatibility): the next hop is a strict router.
    const routes = req.getAll('Route');
    let hopUri: SipUri | undefined;
    if (routes.length) {
      const na = parseNameAddr(routes[0]!);
      if (!na.ok) return undefined;
      hopUri = na.value.uri;
      if (!na.value.uri.params.has('lr')) {
        req.remove('Route');
        for (const r of routes.slice(1)) req.append('Route', r);
        req.append('Route', `<${req.uri}>`);
        req.setUri(formatUri(na.value.uri));
      }
    }
    let nextHop = target.nextHop;
    if (!nextHop) {
      const u = hopUri ?? req.requestUriOrUndefined;
      nextHop = u ? endpointOfUri(u) : undefined;
    }
    if (!nextHop) return undefined;
    const out = this.stack.interfaceFor(nextHop);
    if (stateful && this.#recordRoute && DIALOG_CREATING.has(req.method) && !req.toTag) {
      const inbound = this.stack.interfaceOf(source);
      // §16.6 step 4 + RFC 5658: when the request leaves on another transport or interface, put
      // one Record-Route per interface so each side reaches us on the interface facing it.
      // The value facing a UA behind NAT or on a connection carries its flow token.
      const via = orig.topVia;
      const natted = source.transport !== 'udp' || via.host.replace(/^\[|\]$/g, '') !== source.address || (via.port ?? 5060) !== source.port;
      const callerFt = natted ? this.flowToken(source) : undefined;
      const calleeFt = target.viaFlow && target.nextHop ? this.flowToken(target.nextHop) : undefined;
      const callerTag = orig.fromTag ?? '';
      const rrIn = this.#rrHost ? { ...inbound, host: this.#rrHost } : inbound;
      const rrOut = this.#rrHost ? { ...out, host: this.#rrHost } : out;
      if (rrIn.transport !== rrOut.transport || rrIn.host !== rrOut.host || rrIn.port !== rrOut.port) {
        req.prepend('Record-Route', rrValue(rrIn, this.#rrParams(orig.callId, callerTag, callerFt, undefined)));
        req.prepend('Record-Route', rrValue(rrOut, this.#rrParams(orig.callId, callerTag, undefined, calleeFt)));
      } else {
        req.prepend('Record-Route', rrValue(rrIn, this.#rrParams(orig.callId, callerTag, callerFt, calleeFt)));
      }
    }
    // §16.6 step 8: our Via with a branch that also carries the loop-detection hash.
    // INVITE branches are derived (a peer must name them for CANCEL and retransmissions); other
    // requests take a counter, which costs no Via parse nor hash.
    const id = orig.method === 'INVITE' ? derivedBranch(orig, branchIndex) : `${this.#branchPrefix}${base36(++this.#branchSeq)}`;
    const branch = `${BRANCH_MAGIC}.${id}.${LOOP_TAG}.${loopKey ?? 'x'}.`;
    const hostText = out.host.includes(':') ? `[${out.host}]` : out.host;
    req.prepend('Via', `SIP/2.0/${out.transport.toUpperCase()} ${hostText}:${out.port};branch=${stateful ? branch : ackBranch(orig)};rport`);
    forwardedChild(req.method).inc();
    return { request: req, nextHop };
  }

  /** `;ft=..;ftc=..;tk=..` for one Record-Route value: its flow tokens and the route token binding them to the call. */
  #rrParams(callId: string, callerTag: string, ft: string | undefined, ftc: string | undefined): string {
    const flows = `${ft ? `;ft=${ft}` : ''}${ftc ? `;ftc=${ftc}` : ''}`;
    return `${flows};${ROUTE_TOKEN_PARAM}=${this.routeToken.sign(callId, callerTag, flowParamsText(ft, ftc))}`;
  }

  get media(): MediaControl | undefined {
    return this.#media;
  }

  get timerCMs(): number {
    return this.#timerCMs;
  }

  /** Loop key for a received request (computed before it is modified). */
  loopKeyOf(req: SipRequest): string {
    return loopHash(req);
  }
}

/** What a shared early dialog records of an INVITE's body (`DialogRecord.invite.body`). */
export function inviteBodyDigest(req: SipRequest): string {
  return md5Hex(req.body.toString('latin1'));
}

/**
 * The branch of the request we forward, derived from the request we received (its top Via
 * branch and sent-by, Call-ID, CSeq) and the branch's index: any node of the cluster derives the
 * same one, so a CANCEL or a hop-by-hop ACK for an INVITE forwarded by a node that died matches
 * the callee's transaction (RFC 3261 §9.1: a CANCEL carries the branch of the request it
 * cancels), and a retransmitted INVITE forwarded again is a retransmission to the callee, not a
 * second call. A 52-bit hash of fields that are unique per upstream transaction (collisions only
 * matter between live transactions: ~1e-6 with 100,000 of them).
 */
export function derivedBranch(req: SipRequest, branchIndex: number): string {
  const v = req.topVia;
  const up = v.branch && v.branch.startsWith(BRANCH_MAGIC) ? v.branch : `${req.callId}|${req.fromTag ?? ''}`;
  const sentBy = `${v.host}:${v.port ?? ''}`;
  const seq = String(req.cseq.seq);
  const idx = String(branchIndex);
  return new LoopHasher().add(up).add(sentBy).add(req.callId).add(seq).add(idx).digest();
}

/**
 * ACKs for 2xx are stateless; RFC 3261 §16.11 "a stateless proxy ... the branch is computed so
 * that retransmissions get the same one": derive it from the upstream branch.
 */
function ackBranch(req: SipRequest): string {
  const up = req.topVia.branch ?? req.callId;
  return `${BRANCH_MAGIC}.ack.${new LoopHasher().add(up).digest()}`;
}

/** What of the flow tokens a route token covers (so a token cannot be moved next to another flow). */
function flowParamsText(ft: string | undefined, ftc: string | undefined): string {
  return `${ft ?? ''}|${ftc ?? ''}`;
}

/** What §16.4 preprocessing found in the route of a request. */
export interface RouteCheck {
  /** A Route value (or Request-URI) of ours was consumed. */
  routed: boolean;
  /** ... and it carried a route token valid for this request's Call-ID and tags. */
  authentic: boolean;
}

function rrValue(i: LocalInterface, params = ''): string {
  const host = i.host.includes(':') ? `[${i.host}]` : i.host;
  return `<sip:${host}:${i.port}${i.transport === 'udp' ? '' : `;transport=${i.transport}`};lr${params}>`;
}

function safeEqualText(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/**
 * What a context's request becomes after its final response was sent: every path that reads it
 * then is guarded by `#finalSent`; a shared empty request keeps the type and holds nothing.
 */
const RELEASED_REQUEST = new SipRequestClass('ACK', 'sip:released.invalid');

/** The response context of one forwarded request (§16.2). */
class ProxyContext {
  #proxy: ProxyCore;
  #req: SipRequest;
  #stx: ProxyServerTransaction;
  #source: Source;
  #route: Exclude<RouteResult, { kind: 'default' | 'reply' }>;
  #branches: Branch[] = [];
  #finalSent = false;
  #cancelled = false;
  #isInvite: boolean;
  #loopKey: string;
  /** Call-ID and From tag of the request (what is still read after `#release`). */
  readonly #callId: string;
  readonly #fromTag: string;
  /** Serial state. */
  #tried: Target[] = [];
  #attempt = 0;
  #bestFinal: SipResponse | undefined;
  /** Upstream responses are relayed in order even when media rewriting is async. */
  #chain: Promise<void> | undefined;
  #queued = 0;
  #mediaUsed = false;
  #answered = false;
  /** The request as received, before the media offer rewrote its SDP. */
  #received: SipRequest;
  /** `inviteBodyDigest` of the INVITE as received, once per INVITE (written with its branches). */
  #bodyDigest: string | undefined;
  /**
   * Provisional responses (our 100 Trying included) held until the INVITE's shared record is in
   * Redis, so that a caller who heard ringing can count on a peer to finish the call: were the
   * node to die between telling the caller "ringing" and the record landing, the caller would stop
   * retransmitting and the survivor, with no record of the branch, could not relay the answer.
   * Held, the caller retransmits into the takeover and the survivor forwards the INVITE again
   * (same derived branch: the callee sees a retransmission). Undefined when not holding.
   */
  #held: Array<[SipResponse, Branch]> | undefined;
  #holdTimer: TimerHandle | undefined;
  /**
   * The hold ran out before the INVITE left (a slow media offer or location lookup). The 100 then
   * waits for the first branch: a caller quenched by a 100 for an INVITE that no node has sent on
   * would wait in silence if this node died, where without it the caller retransmits and a peer
   * forwards the call.
   */
  #holdExpiredUnsent = false;
  #sentOnce = false;

  constructor(proxy: ProxyCore, req: SipRequest, stx: ProxyServerTransaction, source: Source, route: Exclude<RouteResult, { kind: 'default' | 'reply' }>) {
    this.#proxy = proxy;
    this.#req = req;
    this.#received = req;
    this.#stx = stx;
    this.#source = source;
    this.#route = route;
    this.#isInvite = req.method === 'INVITE';
    this.#loopKey = proxy.loopKeyOf(req);
    this.#callId = ownString(req.callId);
    this.#fromTag = ownString(req.fromTag ?? '');
  }

  async start(): Promise<void> {
    if (this.#isInvite) {
      if (this.#proxy.dialogs?.sharesEarly && this.#req.toTag === undefined) {
        // §16.2 asks for a 100 (Trying) within 200 ms: the hold is capped well below that.
        this.#held = [];
        this.#holdTimer = this.#proxy.wheel.schedule(this.#proxy.earlyDurableWaitMs, ProxyContext.#holdExpired, this);
      } else {
        // §16.2: "the proxy MUST ... send a 100 (Trying)" when it will not answer within 200 ms.
        this.#stx.respond(createResponse(this.#req, 100, 'Trying'));
      }
      this.#stx.onCancel(this.#onCancel.bind(this));
    }
    const media = this.#proxy.media;
    if (media && this.#req.method === 'INVITE' && isSdp(this.#req)) {
      const r = await media.offer({
        callId: this.#req.callId,
        fromTag: this.#req.fromTag ?? '',
        sdp: this.#req.body,
        ...(this.#route.mediaNode ? { node: this.#route.mediaNode } : {}),
        sourceAddress: this.#source.address,
      });
      if (!r.ok) {
        mediaOfferErrors.inc();
        rateLimitedLog('proxy-media-offer', (s) => log.warn({ reason: r.reason, suppressed: s }, 'media offer failed'));
        this.#sendFinal(createResponse(this.#req, 503, 'Media Relay Unavailable'));
        return;
      }
      this.#mediaUsed = true;
      const copy = copyRequest(this.#req);
      copy.body = r.value;
      this.#req = copy;
      if (this.#cancelled) {
        this.#finishCancelled();
        return;
      }
    }
    if (this.#route.kind === 'parallel') {
      const given = this.#route.targets;
      const targets = given.length > 1 ? [...given].sort((a, b) => (b.q ?? 1) - (a.q ?? 1)) : given;
      if (targets.length === 0) {
        this.#sendFinal(createResponse(this.#req, 480, 'Temporarily Unavailable'));
        return;
      }
      for (const t of targets) this.#startBranch(t);
      this.#checkDone();
    } else {
      this.#nextSerial();
    }
  }

  #serial(): SerialRoute | undefined {
    return this.#route.kind === 'serial' ? this.#route : undefined;
  }

  #nextSerial(): void {
    const s = this.#serial()!;
    if (this.#cancelled || this.#finalSent) return;
    let target: Target | undefined;
    if (typeof s.targets === 'function') {
      try {
        target = (s.targets as TargetSupplier)(this.#attempt, this.#tried);
      } catch (err) {
        log.error({ err }, 'target supplier threw');
        target = undefined;
      }
    } else {
      target = (s.targets as readonly Target[])[this.#attempt];
    }
    this.#attempt++;
    if (!target) {
      // Every target failed: the best final received if it is not a failover status, else 503.
      const best = this.#bestFinal;
      if (best && !isFailoverStatus(best.status, s.failoverStatuses)) this.#sendFinal(stripVia(best));
      else this.#sendFinal(createResponse(this.#req, s.exhaustedStatus ?? 503, undefined));
      return;
    }
    this.#tried.push(target);
    this.#startBranch(target);
  }

  #startBranch(target: Target): void {
    const prepared = this.#proxy.prepareBranch(this.#req, target, this.#source, this.#loopKey, target.branchIndex ?? this.#branches.length);
    const branch: Branch = new ProxyContext.#BranchImpl(this, target);
    this.#branches.push(branch);
    if (!prepared) {
      this.#branchFailed(branch, { kind: 'transport', error: 'unresolvable target' }, 502);
      return;
    }
    if (this.#isInvite) {
      const mediaNode = this.#mediaUsed ? this.#proxy.media?.nodeOf?.(this.#req.callId) : undefined;
      // From and To as received (name-addr text): accounting takes the URIs out once, at the end.
      const from = this.#req.get('From');
      const to = this.#req.get('To');
      this.#proxy.dialogs?.early(this.#req.callId, this.#req.fromTag ?? '', target.destinationKey, mediaNode, from && to ? { fromUri: from, toUri: to } : undefined, this.#req.cseq.seq);
    }
    if (this.#isInvite && this.#proxy.dialogs?.sharesEarly) {
      const out = prepared.request;
      const hop = prepared.nextHop;
      const s = this.#serial();
      // Serial forking: the INVITE as received goes along, so a peer can try the next destination.
      const serial = s ? { serial: { ...(s.dispatchSet ? { set: s.dispatchSet } : {}), frTimerMs: s.frTimerMs ?? 4000, frInvTimerMs: s.frInvTimerMs ?? 60_000 }, request: this.#received.toBuffer().toString('base64') } : {};
      this.#proxy.dialogs?.forwarded(
        out.callId,
        { from: out.get('From') ?? '', to: out.get('To') ?? '', cseq: out.cseq.seq, body: (this.#bodyDigest ??= inviteBodyDigest(this.#received)), ...serial },
        {
          uri: out.uri,
          hop: `${hop.transport}:${hop.address}:${hop.port}`,
          branch: out.topVia.branch ?? '',
          index: target.branchIndex ?? this.#branches.length - 1,
          ...(target.destinationKey ? { destination: target.destinationKey } : {}),
          ...(out.getAll('Route').length ? { route: out.getAll('Route') } : {}),
        },
        this.#held ? () => this.#releaseHeld() : undefined,
      );
    }
    const s = this.#serial();
    if (s) branch.timer = this.#proxy.wheel.schedule(s.frTimerMs ?? 4000, ProxyContext.#frTimerFired, branch);
    try {
      branch.tx = this.#proxy.stack.sendRequest(prepared.request, prepared.nextHop, branch);
    } catch (err) {
      this.#branchFailed(branch, { kind: 'transport', error: err instanceof Error ? err.message : String(err) }, 503);
      return;
    }
    this.#sentOnce = true;
    if (this.#holdExpiredUnsent) {
      this.#holdExpiredUnsent = false;
      this.#releaseHeld();
    }
  }

  /**
   * The branch record doubles as the client transaction's handlers: prototype methods, so a
   * branch allocates no closures. Declared inside ProxyContext to reach its private methods.
   */
  static #BranchImpl = class implements Branch {
    tx: ProxyClientTransaction | undefined = undefined;
    provisional = false;
    anyResponse = false;
    final = 0;
    finalResponse: SipResponse | undefined = undefined;
    abandoned = false;
    cancelSent = false;
    timer: TimerHandle | undefined = undefined;
    synthetic?: number;
    constructor(
      readonly ctx: ProxyContext,
      public target: Target,
    ) {}
    onProvisional(res: SipResponse): void {
      this.ctx.#onProvisional(this, res);
    }
    onFinal(res: SipResponse): void {
      this.ctx.#onFinal(this, res);
    }
    onAdditional2xx(res: SipResponse): void {
      this.ctx.#onFinal(this, res);
    }
    onTimeout(): void {
      this.ctx.#branchFailed(this, { kind: 'timeout' }, 408);
    }
    onTransportError(err: Error): void {
      this.ctx.#branchFailed(this, { kind: 'transport', error: err.message }, 503);
    }
  };

  /** Timer-wheel callbacks: shared functions taking the branch as argument (no closure per timer). */
  static #holdExpired = (ctx: ProxyContext): void => {
    ctx.#holdTimer = undefined;
    if (ctx.#sentOnce) ctx.#releaseHeld();
    else ctx.#holdExpiredUnsent = true;
  };

  /** Stops holding provisional responses; `send`: send our 100 and what was held. */
  #stopHolding(send: boolean): void {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    if (this.#holdTimer) this.#proxy.wheel.cancel(this.#holdTimer);
    this.#holdTimer = undefined;
    if (!send || this.#finalSent) return;
    this.#stx.respond(createResponse(this.#received, 100, 'Trying'));
    for (const [res, b] of held) this.#relay(res, b);
  }

  #releaseHeld(): void {
    this.#stopHolding(true);
  }

  static #frTimerFired = (b: Branch): void => b.ctx.#onFrTimer(b);
  static #timerCFired = (b: Branch): void => b.ctx.#onTimerC(b);

  #clearTimer(b: Branch): void {
    if (b.timer) this.#proxy.wheel.cancel(b.timer);
    b.timer = undefined;
  }

  /** fr_timer (no provisional) or fr_inv_timer (provisional, no final) for a serial branch. */
  #onFrTimer(b: Branch): void {
    b.timer = undefined;
    if (b.final || b.abandoned) return;
    if (b.provisional) {
      failoverNoAnswer.inc();
      this.#abandon(b);
      this.#branchFailed(b, { kind: 'no-answer' }, 480);
    } else {
      failoverTimeout.inc();
      this.#abandon(b);
      this.#branchFailed(b, { kind: 'timeout' }, 408);
    }
  }

  /** Timer C for parallel INVITE branches that ring. */
  #onTimerC(b: Branch): void {
    b.timer = undefined;
    if (b.final || b.abandoned) return;
    b.synthetic = 480;
    this.#sendCancel(b);
  }

  #abandon(b: Branch): void {
    b.abandoned = true;
    this.#clearTimer(b);
    // §9.1: a CANCEL only after a provisional; the transaction layer holds it until one comes
    // (a branch that never answers just times out).
    this.#sendCancel(b);
  }

  #sendCancel(b: Branch): void {
    if (b.cancelSent || !b.tx || !this.#isInvite) return;
    b.cancelSent = true;
    try {
      this.#proxy.stack.cancel(b.tx);
    } catch (err) {
      log.debug({ err }, 'cancel failed');
    }
  }

  #onProvisional(b: Branch, res: SipResponse): void {
    b.anyResponse = true;
    if (b.abandoned || this.#cancelled) {
      if (res.status > 100) this.#sendCancel(b);
      return;
    }
    const s = this.#serial();
    s?.onBranchResponded?.(b.target, res);
    // Serial failover follows tm's semantics: any provisional, 100 Trying included, switches the
    // branch from fr_timer to fr_inv_timer, and each later one restarts it (a PBX that said
    // "Trying" and then died is abandoned after fr_inv_timer, as in the published Situation 2).
    if (s && this.#isInvite) {
      b.provisional = true;
      this.#clearTimer(b);
      b.timer = this.#proxy.wheel.schedule(s.frInvTimerMs ?? 60_000, ProxyContext.#frTimerFired, b);
    }
    if (res.status === 100) return; // §16.7 step 3: 100 is not forwarded, and does not start Timer C
    if (!b.provisional) {
      b.provisional = true;
      this.#clearTimer(b);
      if (this.#isInvite) b.timer = this.#proxy.wheel.schedule(this.#proxy.timerCMs, ProxyContext.#timerCFired, b);
    }
    if (this.#finalSent) return;
    const out = stripVia(res);
    this.#relay(out, b);
  }

  #onFinal(b: Branch, res: SipResponse): void {
    b.anyResponse = true;
    this.#clearTimer(b);
    const first = b.final === 0;
    if (first) {
      b.final = res.status;
      if (!this.#finalSent) b.finalResponse = res;
    }
    if (!first) {
      // Additional 2xx from the same branch (transaction layer passes retransmissions of 2xx).
      if (res.status >= 200 && res.status < 300 && this.#isInvite) this.#relay(stripVia(res), b);
      return;
    }
    if (b.abandoned && !(res.status >= 200 && res.status < 300)) {
      // After the caller's CANCEL: answer 487 once no cancelled branch is still ringing.
      if (this.#cancelled && !this.#branches.some((o) => o.provisional && !o.final)) this.#finishCancelled();
      else this.#checkDone();
      return;
    }
    const s = this.#serial();
    s?.onBranchResponded?.(b.target, res);
    if (res.status >= 200 && res.status < 300) {
      // §16.7 step 5: 2xx are forwarded immediately; the other branches are cancelled.
      this.#answered = true;
      s?.onBranchAnswered?.(b.target, res);
      if (this.#isInvite) this.#proxy.dialogs?.confirm(this.#callId, res.toTag);
      for (const o of this.#branches) if (o !== b && !o.final) this.#abandonQuietly(o);
      this.#relay(stripVia(res), b, true);
      return;
    }
    if (s && !this.#cancelled && isFailoverStatus(res.status, s.failoverStatuses)) {
      failoverStatus.inc();
      this.#branchFailed(b, { kind: 'status', status: res.status, response: res }, res.status, res);
      return;
    }
    if (s) {
      // 4xx/6xx not in the failover list go back to the caller.
      this.#bestFinal = res;
      this.#sendFinal(stripVia(res));
      return;
    }
    // Parallel: §16.7 step 4/6 — collect; a 6xx ends the search and cancels the others.
    if (res.status >= 600) for (const o of this.#branches) if (o !== b && !o.final) this.#abandonQuietly(o);
    this.#checkDone();
  }

  #abandonQuietly(b: Branch): void {
    if (b.abandoned) return;
    b.abandoned = true;
    this.#clearTimer(b);
    this.#sendCancel(b);
  }

  #branchFailed(b: Branch, reason: BranchFailureReason, status: number, res?: SipResponse): void {
    this.#clearTimer(b);
    const s = this.#serial();
    if (!b.final) {
      b.synthetic = b.synthetic ?? status;
      if (!res) b.abandoned = true;
    }
    if (s) {
      if (this.#finalSent || this.#answered) return;
      if (res && (!this.#bestFinal || better(res, this.#bestFinal))) this.#bestFinal = res;
      try {
        s.onBranchFailed?.(b.target, reason);
      } catch (err) {
        log.error({ err }, 'onBranchFailed threw');
      }
      if (this.#cancelled) {
        this.#finishCancelled();
        return;
      }
      this.#nextSerial();
      return;
    }
    this.#checkDone();
  }

  /** Parallel: when every branch is done, send the best response (§16.7 step 6). */
  #checkDone(): void {
    if (this.#finalSent || this.#answered || this.#serial()) return;
    for (const b of this.#branches) if (!b.final && !b.abandoned && b.synthetic === undefined) return;
    if (this.#cancelled) {
      this.#finishCancelled();
      return;
    }
    let best: SipResponse | undefined;
    let bestSynthetic: number | undefined;
    const challenges: SipResponse[] = [];
    for (const b of this.#branches) {
      const f = b.finalResponse;
      if (f && f.status >= 300 && b.synthetic === undefined) {
        if (f.status === 401 || f.status === 407) challenges.push(f);
        if (!best || better(f, best)) best = f;
      } else if (b.synthetic !== undefined) {
        if (bestSynthetic === undefined || b.synthetic > bestSynthetic) bestSynthetic = b.synthetic;
      }
    }
    let out: SipResponse;
    if (best) {
      out = stripVia(best);
      // §16.7 step 6: a 503 chosen as best is sent as 500.
      if (out.status === 503) {
        out = createResponse(this.#req, 500, 'Server Internal Error', { ...(best.toTag ? { toTag: best.toTag } : {}) });
      }
      // §16.7 step 7: collect every challenge into the 401/407 sent upstream.
      if ((out.status === 401 || out.status === 407) && challenges.length > 1) {
        for (const c of challenges) {
          if (c === best) continue;
          for (const v of c.getAll('WWW-Authenticate')) out.append('WWW-Authenticate', v);
          for (const v of c.getAll('Proxy-Authenticate')) out.append('Proxy-Authenticate', v);
        }
      }
    } else {
      const st = bestSynthetic ?? 408;
      out = createResponse(this.#req, st, st === 480 ? 'Temporarily Unavailable' : undefined);
    }
    this.#sendFinal(out);
  }

  #onCancel(): void {
    if (this.#finalSent || this.#answered) return;
    this.#cancelled = true;
    let waiting = false;
    for (const b of this.#branches) {
      if (b.final) continue;
      this.#clearTimer(b);
      this.#sendCancel(b);
      if (b.provisional) waiting = true;
      b.abandoned = true;
    }
    // Branches that never answered cannot be CANCELled yet (§9.1): answer 487 now rather than
    // keep the caller waiting for their timeouts.
    if (!waiting) this.#finishCancelled();
  }

  #finishCancelled(): void {
    if (this.#finalSent) return;
    this.#sendFinal(createResponse(this.#req, 487, 'Request Terminated'));
  }

  /** Sends a response upstream, passing SDP through the media node first when needed. */
  #relay(res: SipResponse, b: Branch, final = false): void {
    if (this.#held) {
      if (!final) {
        this.#held.push([res, b]);
        return;
      }
      // An answer supersedes the ringing held before it.
      this.#stopHolding(false);
    }
    const media = this.#proxy.media;
    const needsMedia = media && this.#mediaUsed && this.#isInvite && isSdp(res) && (res.status === 183 || res.status === 180 || (res.status >= 200 && res.status < 300));
    // Fast path: nothing to rewrite and nothing queued before it, so order is kept.
    if (!needsMedia && this.#queued === 0) {
      this.#sendUp(res, final);
      return;
    }
    this.#enqueue(async () => {
      if (needsMedia && media) await answerMedia(media, res, this.#callId, this.#fromTag, b.target.nextHop?.address ?? '');
      this.#sendUp(res, final);
    });
  }

  #sendUp(res: SipResponse, final: boolean): void {
    if (final) this.#finalSent = true;
    this.#stx.respond(res);
    if (final) {
      finalClass(res.status).inc();
      this.#release();
    }
  }

  /**
   * After our final response the context lives on only as the handler of client transactions in
   * Accepted or Completed (64*T1: a 2xx retransmitted by the callee still goes upstream, a late
   * answer from a cancelled branch is absorbed). It keeps keys and statuses, not messages.
   */
  #release(): void {
    for (const b of this.#branches) b.finalResponse = undefined;
    this.#bestFinal = undefined;
    this.#tried = [];
    this.#req = this.#received = RELEASED_REQUEST;
    if (this.#answered) this.#handOver();
  }

  /**
   * An answered INVITE whose branches have all had their final response needs nothing of this
   * context but what relays a retransmitted 2xx: the answering branches' transactions get that
   * instead, and the context (route, branches, strings) is garbage 32 s before Timer M ends.
   * Fewer objects live per call is less for every full collection to mark.
   */
  #handOver(): void {
    const branches = this.#branches;
    for (const b of branches) if (b.final === 0 && b.tx !== undefined && !b.abandoned) return;
    for (const b of branches) {
      if (b.final < 200 || b.final >= 300 || b.tx?.handOverAccepted === undefined) continue;
      const media = this.#mediaUsed ? { callId: this.#callId, fromTag: this.#fromTag, sourceAddress: b.target.nextHop?.address ?? '' } : undefined;
      b.tx.handOverAccepted(new AnsweredBranch(this.#proxy, this.#stx, media));
    }
  }

  /** Upstream responses are sent in order even when one waits for the media node. */
  #enqueue(fn: () => void | Promise<void>): void {
    this.#queued++;
    this.#chain = (this.#chain ?? Promise.resolve())
      .then(fn)
      .catch((err: unknown) => log.error({ err }, 'relaying a response failed'))
      .finally(() => {
        this.#queued--;
      });
  }

  #sendFinal(res: SipResponse): void {
    if (this.#finalSent) return;
    this.#stopHolding(false);
    this.#finalSent = true;
    for (const b of this.#branches) if (!b.final) this.#abandonQuietly(b);
    // Only the failure of the initial INVITE ends the call; a failed re-INVITE (491, 488, a
    // timeout) leaves the dialog and its media as they were (RFC 3261 §14.1).
    if (this.#isInvite && res.status >= 300 && this.#req.toTag === undefined) {
      this.#proxy.dialogs?.end(this.#req.callId, this.#cancelled ? 'cancel' : 'failure');
      if (this.#mediaUsed) void this.#proxy.media?.delete(this.#req.callId);
    }
    if (this.#queued === 0) {
      this.#stx.respond(res);
      finalClass(res.status).inc();
      this.#release();
    } else {
      this.#enqueue(() => {
        this.#stx.respond(res);
        finalClass(res.status).inc();
        this.#release();
      });
    }
  }
}

/**
 * What an answered INVITE branch keeps once its context is gone (`ProxyContext#handOver`): the
 * retransmissions of the callee's 2xx go upstream through the server transaction, Via stripped,
 * their SDP through the media node's answer again as the first one's was.
 */
class AnsweredBranch implements ProxyClientHandlers {
  constructor(
    readonly proxy: ProxyCore,
    readonly stx: ProxyServerTransaction,
    readonly media: { callId: string; fromTag: string; sourceAddress: string } | undefined,
  ) {}

  onAdditional2xx(res: SipResponse): void {
    const out = stripVia(res);
    const media = this.proxy.media;
    const m = this.media;
    if (m === undefined || media === undefined || !isSdp(out)) {
      this.stx.respond(out);
      return;
    }
    answerMedia(media, out, m.callId, m.fromTag, m.sourceAddress).then(
      () => this.stx.respond(out),
      (err: unknown) => log.error({ err }, 'relaying a response failed'),
    );
  }
}

/**
 * A 183/2xx's SDP through the media node's answer, rewritten in place; when the node fails, the
 * failure is counted and logged and the SDP goes on as the callee wrote it.
 */
async function answerMedia(media: MediaControl, res: SipResponse, callId: string, fromTag: string, sourceAddress: string): Promise<void> {
  const r = await media.answer({ callId, fromTag, toTag: res.toTag ?? '', sdp: res.body, sourceAddress });
  if (r.ok) res.body = r.value;
  else {
    mediaAnswerErrors.inc();
    rateLimitedLog('proxy-media-answer', (s) => log.warn({ reason: r.reason, suppressed: s }, 'media answer failed'));
  }
}

const finalBy = childrenOf(finalCounter);
const finalClasses = ['1xx', '2xx', '3xx', '4xx', '5xx', '6xx'];
function finalClass(status: number): BatchedChild {
  return finalBy(finalClasses[Math.floor(status / 100) - 1] ?? `${Math.floor(status / 100)}xx`);
}

/** §16.7 step 6 preference: 6xx first, then the lowest class; a real response over a synthetic one. */
function better(a: SipResponse, b: SipResponse): boolean {
  const ca = Math.floor(a.status / 100);
  const cb = Math.floor(b.status / 100);
  if (ca === 6 && cb !== 6) return true;
  if (cb === 6) return false;
  if (ca !== cb) return ca < cb;
  // Same class: prefer a specific answer over a generic timeout/unavailable.
  const generic = (s: number) => s === 408 || s === 480 || s === 500 || s === 503;
  return generic(b.status) && !generic(a.status);
}

/** §16.7 step 3: remove our topmost Via before relaying a response upstream. */
function stripVia(res: SipResponse): SipResponse {
  const c = copyResponse(res);
  c.removeFirst('Via');
  return c;
}

export { parseUri };
