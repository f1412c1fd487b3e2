/**
 * Registrar (RFC 3261 §10.3, RFC 3327 Path). SIP logic only: bindings are read and written
 * through the `LocationStore` interface.
 */
import type { SipRequest, SipResponse } from '../../sip/message/sip-message.js';
import type { Contact } from '../../sip/message/header-values.js';
import { createResponse } from '../../sip/message/builders.js';
import { formatUri, parseUri, urisEqual, type NameAddr, type SipUri } from '../../sip/uri/sip-uri.js';
import type { Source } from '../../sip/transport/types.js';
import { isSyncLocationStore, type Binding, type FlowEndpoint, type LocationStore, type SyncLocationStore } from '../../state/store.js';
import { counter } from '../../util/metrics.js';
import { ownString } from '../../util/string-calls.js';
import { aorKey } from '../location/aor.js';
import { childrenOf } from '../metric-children.js';

export interface RegistrarOptions {
  store: LocationStore;
  /** Domains this registrar is responsible for (lower-case). */
  isLocalDomain: (host: string) => boolean;
  /**
   * Shortest accepted registration; shorter non-zero ones get 423 with Min-Expires (§10.3 step 7).
   * @default 60
   */
  minExpiresSec?: number;
  /**
   * Longest registration; longer ones are shortened to this.
   * @default 3600
   */
  maxExpiresSec?: number;
  /**
   * Used when neither the Contact `expires` parameter nor the Expires header is present.
   * @default 3600
   */
  defaultExpiresSec?: number;
  /**
   * Most contacts one AOR may hold; a REGISTER that would exceed it is refused with 403.
   * @default 10
   */
  maxContactsPerAor?: number;
  /** Node name recorded as the owner of bindings. */
  nodeName?: string;
  now?: () => number;
}

const registerCounter = counter('tandem_registrar_requests_total', 'REGISTER requests handled by the registrar, by result status', ['status']);
const registerChildren = childrenOf(registerCounter);
/** Status codes are bounded (100-699) by the response builder. */
const registerBy = (status: number) => registerChildren(String(status));

/**
 * What the registrar reads from a REGISTER. The same facts come from a parsed message
 * (`registerFactsOf`) or from the fast path's scan of the datagram's text
 * (`register-fast-path.ts`), so one set of rules answers both.
 */
export interface RegisterFacts {
  /** Undefined when the Request-URI does not parse. */
  requestUri: SipUri | undefined;
  /** Require option tags. */
  require: string[];
  /** Undefined when missing or malformed. */
  to: NameAddr | undefined;
  /** Undefined when a Contact value is malformed. */
  contacts: Contact[] | undefined;
  callId: string;
  cseq: number;
  /** The Expires header's text. */
  expires: string | undefined;
  path: string[];
  /** Supported option tags. */
  supported: string[];
  userAgent: string | undefined;
}

/** The registrar's answer before it becomes a message: status, reason and the headers it adds. */
export interface RegisterAnswer {
  status: number;
  reason: string;
  headers: [string, string][];
}

/** The facts of a parsed REGISTER. */
export function registerFactsOf(req: SipRequest): RegisterFacts {
  return {
    requestUri: req.requestUriOrUndefined,
    require: req.getAll('Require'),
    to: req.toOrUndefined,
    contacts: req.contactsValid ? req.contacts : undefined,
    callId: req.callId,
    cseq: req.cseq.seq,
    expires: req.get('Expires'),
    path: req.getAll('Path'),
    supported: req.getAll('Supported'),
    userAgent: req.get('User-Agent'),
  };
}

/** A REGISTER past the checks that need no binding (`Registrar.#check`). */
interface Checked {
  aor: string;
  contacts: Contact[];
  headerExpires: number | undefined;
  nowMs: number;
}

interface ParsedContact {
  uri: SipUri;
  text: string;
  expiresSec: number;
  q: number;
  instanceId?: string;
}

/**
 * Handles REGISTER requests that passed authentication. Returns the answer to send; the caller
 * owns the server transaction (or its absence). Concurrent REGISTERs for one AOR are serialised
 * so the §10.3 read-modify-write is atomic per AOR in this process.
 */
export class Registrar {
  readonly store: LocationStore;
  #opts: Required<Omit<RegistrarOptions, 'store' | 'isLocalDomain' | 'nodeName' | 'now'>>;
  #isLocal: (host: string) => boolean;
  #node: string | undefined;
  #now: () => number;
  #locks = new Map<string, Promise<unknown>>();
  /** The store, when it answers synchronously (see `decideNow`). */
  #syncStore: SyncLocationStore | undefined;

  constructor(opts: RegistrarOptions) {
    this.store = opts.store;
    this.#syncStore = isSyncLocationStore(opts.store) ? opts.store : undefined;
    this.#isLocal = opts.isLocalDomain;
    this.#node = opts.nodeName;
    this.#now = opts.now ?? Date.now;
    this.#opts = {
      minExpiresSec: opts.minExpiresSec ?? 60,
      maxExpiresSec: opts.maxExpiresSec ?? 3600,
      defaultExpiresSec: opts.defaultExpiresSec ?? 3600,
      maxContactsPerAor: opts.maxContactsPerAor ?? 10,
    };
  }

  /**
   * `authUser`: the authenticated user name (undefined when authentication is off). A user may
   * only register its own AOR (§10.3 step 3).
   */
  async handle(req: SipRequest, source: Source, authUser?: string): Promise<SipResponse> {
    const answer = await this.decide(registerFactsOf(req), source, authUser);
    return createResponse(req, answer.status, answer.reason, { headers: answer.headers });
  }

  /** The answer to a REGISTER, from its facts, after its bindings were written. */
  async decide(facts: RegisterFacts, source: Source, authUser?: string): Promise<RegisterAnswer> {
    const checked = this.#check(facts, authUser);
    const answer = 'status' in checked ? checked : await this.#withLock(checked.aor, () => this.#update(checked, facts, source));
    registerBy(answer.status).inc();
    return answer;
  }

  /**
   * The same answer as `decide`, without a promise: when the store is held in this process
   * (`SyncLocationStore`) and no REGISTER of the AOR is being written. Undefined otherwise (the
   * caller then uses `decide`). The common case of a single node and of the fast path.
   */
  decideNow(facts: RegisterFacts, source: Source, authUser?: string): RegisterAnswer | undefined {
    const store = this.#syncStore;
    if (store === undefined) return undefined;
    const checked = this.#check(facts, authUser);
    let answer: RegisterAnswer;
    if ('status' in checked) answer = checked;
    else {
      if (this.#locks.size !== 0 && this.#locks.has(checked.aor)) return undefined;
      const step = this.#apply(checked, facts, source, store.getBindingsSync(checked.aor));
      if (step.write !== undefined) store.setBindingsSync(checked.aor, step.write);
      answer = step.answer;
    }
    registerBy(answer.status).inc();
    return answer;
  }

  async #update(checked: Checked, facts: RegisterFacts, source: Source): Promise<RegisterAnswer> {
    const step = this.#apply(checked, facts, source, await this.store.getBindings(checked.aor));
    if (step.write !== undefined) await this.store.setBindings(checked.aor, step.write);
    return step.answer;
  }

  /** The checks that need no binding: a refusal, or what the update step works with. */
  #check(facts: RegisterFacts, authUser: string | undefined): RegisterAnswer | Checked {
    // §10.3 step 1: the Request-URI names the domain of the registrar.
    const ruri = facts.requestUri;
    if (ruri === undefined || ruri.scheme === 'tel') return refuse(416, 'Unsupported URI Scheme');
    if (!this.#isLocal(ruri.host)) return refuse(404, 'Domain Not Served Here');

    // §10.3 step 2: Require with extensions we do not support -> 420.
    if (facts.require.length !== 0) {
      const unsupported = facts.require.filter((o) => o.toLowerCase() !== 'path');
      if (unsupported.length) return refuse(420, 'Bad Extension', [['Unsupported', unsupported.join(', ')]]);
    }

    // §10.3 step 5: the AOR is the To URI.
    const to = facts.to;
    if (to === undefined) return refuse(400, 'Bad To Header');
    if (to.uri.scheme === 'tel' || !to.uri.user) return refuse(404, 'Not Found');
    if (!this.#isLocal(to.uri.host)) return refuse(404, 'Not Found');
    const aor = aorKey(to.uri);
    // §10.3 step 4: is the authenticated user allowed to modify this AOR?
    if (authUser !== undefined && authUser !== unescapeUser(to.uri.user)) return refuse(403, 'Forbidden (AOR Does Not Match User)');

    const contacts = facts.contacts;
    if (contacts === undefined) return refuse(400, 'Bad Contact Header');
    const headerExpires = parseExpires(facts.expires);
    if (headerExpires === 'bad') return refuse(400, 'Bad Expires Header');
    return { aor, contacts, headerExpires, nowMs: this.#now() };
  }

  /** §10.3 steps 6-8 on the AOR's current bindings: the answer, and the bindings to write if any. */
  #apply(checked: Checked, facts: RegisterFacts, source: Source, current: Binding[]): { answer: RegisterAnswer; write?: Binding[] } {
    const { aor, contacts, headerExpires, nowMs } = checked;
    const { callId, cseq } = facts;
    if (contacts.length === 0) return { answer: ok(current, nowMs) };

    // §10.3 step 6: Contact: * only with Expires: 0 and alone.
    if (contacts.some((c) => c === '*')) {
      if (contacts.length !== 1 || headerExpires !== 0) return { answer: refuse(400, 'Invalid Wildcard Contact') };
      for (const b of current) {
        if (b.callId === callId && cseq <= b.cseq) return { answer: refuse(400, 'Out Of Order CSeq') };
      }
      return { answer: ok([], nowMs), write: [] };
    }

    const parsed: ParsedContact[] = [];
    for (const c of contacts) {
      if (c === '*') continue;
      const ce = c.params.get('expires');
      let exp: number | 'bad' | undefined = ce === undefined ? undefined : parseExpires(ce ?? '');
      if (exp === 'bad') exp = undefined; // §10.3: an unparsable expires param is ignored
      let expiresSec = exp ?? (typeof headerExpires === 'number' ? headerExpires : this.#opts.defaultExpiresSec);
      // §10.3 step 7: "If and only if the requested expiration interval is greater than zero
      // AND smaller than one hour AND less than a registrar-configured minimum, the registrar
      // MAY reject the registration with a response of 423".
      if (expiresSec > 0 && expiresSec < this.#opts.minExpiresSec) {
        return { answer: refuse(423, 'Interval Too Brief', [['Min-Expires', String(this.#opts.minExpiresSec)]]) };
      }
      if (expiresSec > this.#opts.maxExpiresSec) expiresSec = this.#opts.maxExpiresSec;
      const qText = c.params.get('q');
      let q = 1;
      if (qText !== undefined && qText !== null) {
        const n = Number(qText);
        if (!Number.isFinite(n) || n < 0 || n > 1) return { answer: refuse(400, 'Bad q-value') };
        q = n;
      }
      const pc: ParsedContact = { uri: c.uri, text: formatUri(c.uri), expiresSec, q };
      const inst = c.params.get('+sip.instance');
      if (inst) pc.instanceId = inst;
      parsed.push(pc);
    }

    const next = current.slice();
    const path = facts.path;
    const flow: FlowEndpoint = { transport: source.transport, address: source.address, port: source.port, localAddress: source.localAddress, localPort: source.localPort };
    if (source.connectionId !== undefined) flow.connectionId = source.connectionId;
    const userAgent = facts.userAgent;
    for (const pc of parsed) {
      const idx = next.findIndex((b) => sameContact(b.contact, pc.uri));
      if (idx >= 0) {
        const b = next[idx]!;
        // A retransmission of the REGISTER that set this binding (REGISTER is answered without
        // a server transaction): the same answer, nothing changed.
        if (isRetransmission(b, callId, cseq, nowMs)) return { answer: ok(current, nowMs) };
        // §10.3 step 7: same Call-ID requires a higher CSeq, else the update is aborted.
        if (b.callId === callId && cseq <= b.cseq) return { answer: refuse(400, 'Out Of Order CSeq') };
        if (pc.expiresSec === 0) {
          next.splice(idx, 1);
          continue;
        }
      } else if (pc.expiresSec === 0) {
        continue;
      }
      // The strings are copied: as slices of the REGISTER they would keep its whole text alive
      // for the binding's lifetime (30 % of the heap a binding holds).
      const binding: Binding = {
        aor,
        contact: ownString(pc.text),
        q: pc.q,
        expiresAtMs: nowMs + pc.expiresSec * 1000,
        callId: ownString(callId),
        cseq,
        received: flow,
        updatedAtMs: nowMs,
      };
      if (path.length) binding.path = path.map(ownString);
      if (pc.instanceId) binding.instanceId = ownString(pc.instanceId);
      if (userAgent) binding.userAgent = ownString(userAgent);
      if (this.#node) binding.owner = this.#node;
      if (idx >= 0) next[idx] = binding;
      else next.push(binding);
    }
    if (next.length > this.#opts.maxContactsPerAor) return { answer: refuse(403, 'Too Many Registered Contacts') };
    const answer = ok(next, nowMs);
    // RFC 3327 §5.3: return the Path the registrar stored when the UA supports it.
    if (path.length && facts.supported.some((s) => s.toLowerCase() === 'path')) {
      for (const p of path) answer.headers.push(['Path', p]);
    }
    return { answer, write: next };
  }

  /**
   * The answer to a retransmission of a REGISTER this registrar already applied (same Call-ID and
   * CSeq as a binding of the AOR set within the last 64*T1), or undefined when it is not one.
   * For a request whose digest nonce count was already used (a retransmitted authenticated
   * REGISTER): it gets the 200 the first copy got, and changes nothing, whatever its Contact says.
   * `authUser` must own the AOR, as for `decide`.
   */
  async answerRetransmission(facts: RegisterFacts, authUser: string): Promise<RegisterAnswer | undefined> {
    const to = facts.to;
    if (to === undefined || to.uri.scheme === 'tel' || !to.uri.user || !this.#isLocal(to.uri.host)) return undefined;
    if (authUser !== unescapeUser(to.uri.user)) return undefined;
    const aor = aorKey(to.uri);
    const nowMs = this.#now();
    const { callId, cseq } = facts;
    return this.#withLock(aor, async () => {
      const current = await this.store.getBindings(aor);
      return current.some((b) => isRetransmission(b, callId, cseq, nowMs)) ? ok(current, nowMs) : undefined;
    });
  }

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key);
    const run = prev ? prev.then(fn, fn) : fn();
    const tail = run.catch(() => undefined);
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }
}

function refuse(status: number, reason: string, headers: [string, string][] = []): RegisterAnswer {
  return { status, reason, headers };
}

/** §10.3 step 8: 200 with every current binding and its remaining expiry, plus Date. */
function ok(bindings: Binding[], nowMs: number): RegisterAnswer {
  const headers: [string, string][] = [];
  for (const b of bindings) {
    const left = Math.max(0, Math.round((b.expiresAtMs - nowMs) / 1000));
    if (left <= 0) continue;
    headers.push(['Contact', `<${b.contact}>;expires=${left}${b.q !== 1 ? `;q=${b.q}` : ''}`]);
  }
  headers.push(['Date', httpDate(nowMs)]);
  return { status: 200, reason: 'OK', headers };
}

let dateSec = Number.NaN;
let dateText = '';
/** RFC 1123 date for the Date header; formatted once per second (one per 200 OK otherwise). */
function httpDate(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec !== dateSec) {
    dateSec = sec;
    dateText = new Date(sec * 1000).toUTCString();
  }
  return dateText;
}

function sameContact(stored: string, uri: SipUri): boolean {
  if (stored === formatUri(uri)) return true;
  const p = parseUri(stored);
  return p.ok && urisEqual(p.value, uri);
}

function parseExpires(v: string | undefined): number | 'bad' | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (!/^\d{1,10}$/.test(t)) return 'bad';
  // RFC 3261 §20.19: values above 2^32-1 are treated as 2^32-1.
  return Math.min(Number(t), 4294967295);
}

function unescapeUser(u: string): string {
  try {
    return decodeURIComponent(u);
  } catch {
    return u;
  }
}

/** How long after a binding was set a REGISTER with its Call-ID and CSeq counts as a retransmission (64*T1). */
const RETRANSMISSION_WINDOW_MS = 32_000;

function isRetransmission(b: Binding, callId: string, cseq: number, nowMs: number): boolean {
  return b.callId === callId && b.cseq === cseq && nowMs - b.updatedAtMs <= RETRANSMISSION_WINDOW_MS;
}
