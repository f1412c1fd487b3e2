import { createRequest, createResponse } from '../message/builders.js';
import type { SipRequest, SipResponse } from '../message/sip-message.js';
import type { ServerTransaction } from '../transaction/types.js';
import type { Endpoint, TransportName } from '../transport/types.js';
import { formatUri, parseNameAddr } from '../uri/sip-uri.js';
import { uriToEndpoint } from './target.js';

/** What a dialog needs from its user agent. */
export interface DialogHost {
  /** Sends a non-INVITE request in a client transaction; resolves with the final response (408/503 synthesized on timeout/transport error). */
  sendRequest(req: SipRequest, target: Endpoint): Promise<SipResponse>;
  /** Sends a request outside any transaction (ACK to 2xx); adds a Via with a new branch. */
  sendStateless(req: SipRequest, target: Endpoint): Promise<void>;
  removeDialog(d: Dialog): void;
}

export interface DialogInit {
  callId: string;
  localTag: string;
  remoteTag: string;
  /** From/To value for our side, with our tag. */
  local: string;
  /** From/To value for the peer, with its tag. */
  remote: string;
  localSeq: number;
  remoteSeq: number | undefined;
  /** Contact URI of the peer (RFC 3261 §12.1). */
  remoteTarget: string;
  /** Route set as name-addr strings, in the order Route headers are sent. */
  routeSet: string[];
  /** Our Contact value. */
  contact: string;
  transport: TransportName;
  isUac: boolean;
}

export type DialogState = 'confirmed' | 'terminated';

/**
 * A dialog (RFC 3261 §12): identified by Call-ID, local tag and remote tag; carries the CSeq
 * counters, the remote target and the route set used to build in-dialog requests (§12.2.1.1).
 */
export class Dialog {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly local: string;
  readonly remote: string;
  readonly contact: string;
  readonly routeSet: string[];
  readonly transport: TransportName;
  readonly isUac: boolean;
  localSeq: number;
  remoteSeq: number | undefined;
  remoteTarget: string;
  state: DialogState = 'confirmed';
  /** Called for an incoming BYE (already answered 200). */
  onBye: ((req: SipRequest) => void) | undefined;
  /** Called for other in-dialog requests; when unset they are answered 200 (INVITE: 488). */
  onRequest: ((req: SipRequest, tx: ServerTransaction) => void) | undefined;
  readonly #host: DialogHost;
  #ended: Promise<void>;
  #resolveEnded!: () => void;

  constructor(host: DialogHost, init: DialogInit) {
    this.#host = host;
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.local = init.local;
    this.remote = init.remote;
    this.localSeq = init.localSeq;
    this.remoteSeq = init.remoteSeq;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.contact = init.contact;
    this.transport = init.transport;
    this.isUac = init.isUac;
    this.#ended = new Promise((r) => (this.#resolveEnded = r));
  }

  get id(): string {
    return dialogId(this.callId, this.localTag, this.remoteTag);
  }

  /** Resolves when the dialog ends (BYE either way). */
  get ended(): Promise<void> {
    return this.#ended;
  }

  /**
   * Builds an in-dialog request (RFC 3261 §12.2.1.1). With an empty route set or a loose
   * first route (`;lr`), the Request-URI is the remote target and Route is the route set;
   * with a strict first route, the Request-URI is that route's URI and the remote target goes
   * last in Route.
   */
  buildRequest(method: string, opts: { cseq?: number; headers?: [string, string][]; body?: Buffer; contentType?: string } = {}): {
    req: SipRequest;
    target: Endpoint;
  } {
    let uri = this.remoteTarget;
    let routes = this.routeSet;
    let next = this.remoteTarget;
    if (routes.length > 0) {
      const first = parseNameAddr(routes[0]!);
      next = routes[0]!;
      if (first.ok && !first.value.uri.params.has('lr')) {
        const strict = first.value.uri;
        uri = formatUri({ ...strict, params: new Map(), headers: new Map() });
        routes = [...routes.slice(1), `<${this.remoteTarget}>`];
      }
    }
    const headers: [string, string][] = routes.map((r) => ['Route', r]);
    if (method !== 'ACK' && method !== 'BYE' && method !== 'CANCEL') headers.push(['Contact', this.contact]);
    if (opts.headers) headers.push(...opts.headers);
    const req = createRequest({
      method,
      uri,
      from: this.local,
      to: this.remote,
      callId: this.callId,
      cseq: opts.cseq ?? ++this.localSeq,
      headers,
      ...(opts.body ? { body: opts.body } : {}),
      ...(opts.contentType ? { contentType: opts.contentType } : {}),
    });
    const target = uriToEndpoint(next, this.transport);
    if (!target) throw new Error(`SIP_ERR_BAD_URI: cannot route to ${next}`);
    return { req, target };
  }

  /** Sends a non-INVITE request in the dialog and resolves with its final response. */
  request(method: string, opts: { headers?: [string, string][]; body?: Buffer; contentType?: string } = {}): Promise<SipResponse> {
    if (this.state === 'terminated') return Promise.reject(new Error('SIP_ERR_DIALOG_TERMINATED: dialog ended'));
    const { req, target } = this.buildRequest(method, opts);
    return this.#host.sendRequest(req, target).then((res) => {
      // A 401/407 retry went out with the next CSeq: keep counting from there.
      if (res.cseq.seq > this.localSeq) this.localSeq = res.cseq.seq;
      return res;
    });
  }

  /** Ends the dialog with BYE (RFC 3261 §15.1.1); the dialog is gone whatever the answer. */
  async bye(): Promise<SipResponse> {
    if (this.state === 'terminated') throw new Error('SIP_ERR_DIALOG_TERMINATED: dialog ended');
    const { req, target } = this.buildRequest('BYE');
    this.#terminate();
    return this.#host.sendRequest(req, target);
  }

  /**
   * Sends the ACK for a 2xx to our INVITE with CSeq number `seq` (§13.2.2.4: built like any
   * in-dialog request, CSeq number of the INVITE, method ACK). Returns it for re-sending when
   * the 2xx is retransmitted.
   */
  sendAck(seq: number, extra?: { body?: Buffer; contentType?: string }): { req: SipRequest; target: Endpoint } {
    const built = this.buildRequest('ACK', { cseq: seq, ...(extra ?? {}) });
    this.#host.sendStateless(built.req, built.target).catch(() => {});
    return built;
  }

  /** @internal An in-dialog request arrived (the UA matched it by Call-ID and tags). */
  receive(req: SipRequest, tx: ServerTransaction | undefined): void {
    if (req.method === 'ACK') return; // ACKs are consumed by the UA (answer retransmission)
    if (!tx) return;
    const seq = req.cseq.seq;
    // §12.2.2: "If the remote sequence number was not empty, but the sequence number of the
    // request is lower than the remote sequence number, the request is out of order and MUST
    // be rejected with a 500 (Server Internal Error) response."
    if (this.remoteSeq !== undefined && seq < this.remoteSeq) {
      tx.respond(createResponse(req, 500, 'Out Of Order CSeq'));
      return;
    }
    this.remoteSeq = seq;
    if (req.method === 'BYE') {
      tx.respond(createResponse(req, 200));
      this.#terminate();
      this.onBye?.(req);
      return;
    }
    if (this.onRequest) {
      this.onRequest(req, tx);
      return;
    }
    tx.respond(createResponse(req, req.method === 'INVITE' ? 488 : 200));
  }

  /** @internal Ends the dialog without signalling (the UA sent or received the BYE). */
  terminateLocally(): void {
    this.#terminate();
  }

  #terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.#host.removeDialog(this);
    this.#resolveEnded();
  }
}

export function dialogId(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\n${localTag}\n${remoteTag}`;
}
