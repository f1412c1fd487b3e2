/**
 * REGISTER over UDP to our own registrar, answered from the datagram's text without building a
 * `SipRequest` or a transaction: the common case of a registrar's load (every UA refreshes its
 * binding, half of them twice because of the digest challenge).
 *
 * Only the plain form is taken here: one Via (UDP, no `received`/`maddr`), the mandatory headers
 * once each, at most one Contact line, no Route/Path/Require/Proxy-Require, no body, ASCII only.
 * Everything the fast path does not take, it leaves to the generic path (parser, transaction
 * layer, `SignallingNode.onRequest`), which answers it exactly as before. What the fast path
 * takes is answered by the same code as the generic path's: the node's digest check and block
 * list (`SignallingNode.answerRegister`) and the registrar's rules (`Registrar.decide`). What is
 * its own is reading the headers (with the parser's own value parsers) and writing the response
 * lines, which copy the request's the way `createResponse` does; a test sends the same requests
 * through both paths and compares the answers.
 */
import { newTag } from '../../sip/message/builders.js';
import { parseCSeq, parseDigits, parseFirstVia, parseNameAddrList, splitList, stampViaText, validCallId, type Contact, type Via } from '../../sip/message/header-values.js';
import { scanRequest } from '../../sip/message/request-scan.js';
import { bareHost } from '../../sip/transport/response-routing.js';
import type { Endpoint, Source } from '../../sip/transport/types.js';
import { parseNameAddr, parseUri, validateNameAddr } from '../../sip/uri/sip-uri.js';
import { counter } from '../../util/metrics.js';
import { latin1 } from '../../util/string-calls.js';
import { childrenOf } from '../metric-children.js';
import { mayCarryOurBranch } from '../proxy/proxy-core.js';
import type { RegisterAnswer, RegisterFacts } from './registrar.js';

const fastPathCounter = childrenOf(counter('tandem_registrar_fast_path_total', 'REGISTER datagrams answered from their text (answered) or handed to the generic path (generic)', ['path']));
const answered = fastPathCounter('answered');
const generic = fastPathCounter('generic');

/** What the fast path needs from the signalling node. */
export interface RegisterFastPathHost {
  isLocalDomain(host: string): boolean;
  /** Digest auth is on: REGISTERs are challenged (their Authorization values are checked). */
  readonly authEnabled: boolean;
  /**
   * Before anything else, for every REGISTER the fast path takes: counts it, and says whether it
   * is to be dropped (a blocked source), answered here ('go') or left to the generic path
   * ('generic', e.g. while draining).
   */
  admit(source: Source): 'go' | 'drop' | 'generic';
  /**
   * `SignallingNode.answerRegister`: digest check, then the registrar. Undefined: send nothing.
   * A promise only where the answer has to wait (a store or nonce counts outside the process).
   */
  answer(facts: RegisterFacts, authorization: string[] | undefined, receivedUri: string, source: Source): RegisterAnswer | undefined | Promise<RegisterAnswer | undefined>;
  send(data: Buffer, dest: Endpoint, source: Source): void;
  /** A fault while answering (after the request was taken): logged by the node. */
  fault(err: unknown): void;
}

/** A REGISTER read off its text: the registrar's facts and what the response copies. */
interface ReadRegister {
  facts: RegisterFacts;
  authorization: string[];
  receivedUri: string;
  /** The response's first lines: Via (stamped), From, To (a tag is added), Call-ID, CSeq. */
  via: string;
  from: string;
  to: string;
  callId: string;
  cseq: string;
  dest: Endpoint;
}

const R = 0x52;

export class RegisterFastPath {
  readonly #host: RegisterFastPathHost;

  constructor(host: RegisterFastPathHost) {
    this.#host = host;
  }

  /**
   * The transport's pre-parse hook: true when the datagram was taken (answered, being answered,
   * or dropped); false hands it to the generic path. Never throws.
   */
  take(buf: Buffer, source: Source): boolean {
    if (buf[0] !== R || buf.length < 9 || source.transport !== 'udp' || latin1(buf, 0, 9) !== 'REGISTER ') return false;
    let read: ReadRegister | undefined;
    try {
      read = this.#read(buf, source);
    } catch {
      read = undefined;
    }
    if (read === undefined) {
      generic.inc();
      return false;
    }
    const admit = this.#host.admit(source);
    if (admit === 'generic') {
      generic.inc();
      return false;
    }
    answered.inc();
    if (admit === 'drop') return true;
    let answer: RegisterAnswer | undefined | Promise<RegisterAnswer | undefined>;
    try {
      answer = this.#host.answer(read.facts, this.#host.authEnabled ? read.authorization : undefined, read.receivedUri, source);
    } catch (err) {
      answer = this.#faulted(err);
    }
    if (answer instanceof Promise) {
      answer.then(
        (a) => this.#send(read, a, source),
        (err: unknown) => this.#send(read, this.#faulted(err), source),
      );
    } else this.#send(read, answer, source);
    return true;
  }

  #faulted(err: unknown): RegisterAnswer {
    this.#host.fault(err);
    return { status: 500, reason: 'Server Internal Error', headers: [] };
  }

  #send(read: ReadRegister, answer: RegisterAnswer | undefined, source: Source): void {
    if (answer === undefined) return;
    try {
      this.#host.send(responseBytes(read, answer), read.dest, source);
    } catch (err) {
      this.#host.fault(err);
    }
  }

  /** The REGISTER's facts, or undefined when it is not in the plain form this path takes. */
  #read(buf: Buffer, source: Source): ReadRegister | undefined {
    const scan = scanRequest(buf, 'REGISTER');
    if (scan === undefined) return undefined;
    let via: string | undefined;
    let from: string | undefined;
    let to: string | undefined;
    let callId: string | undefined;
    let cseq: string | undefined;
    let maxForwards: string | undefined;
    let contentLength: string | undefined;
    let contact: string | undefined;
    let expires: string | undefined;
    let userAgent: string | undefined;
    const authorization: string[] = [];
    let supported: string[] = [];
    const { keys, values } = scan;
    for (let i = 0; i < keys.length; i++) {
      const v = values[i]!;
      switch (keys[i]) {
        case 'via':
          if (via !== undefined) return undefined;
          via = v;
          break;
        case 'from':
          if (from !== undefined) return undefined;
          from = v;
          break;
        case 'to':
          if (to !== undefined) return undefined;
          to = v;
          break;
        case 'call-id':
          if (callId !== undefined) return undefined;
          callId = v;
          break;
        case 'cseq':
          if (cseq !== undefined) return undefined;
          cseq = v;
          break;
        case 'max-forwards':
          if (maxForwards !== undefined) return undefined;
          maxForwards = v;
          break;
        case 'content-length':
          if (contentLength !== undefined) return undefined;
          contentLength = v;
          break;
        case 'contact':
          if (contact !== undefined) return undefined;
          contact = v;
          break;
        case 'expires':
          if (expires !== undefined) return undefined;
          expires = v;
          break;
        case 'user-agent':
          if (userAgent !== undefined) return undefined;
          userAgent = v;
          break;
        case 'authorization':
          authorization.push(v);
          break;
        case 'supported':
          supported = supported.concat(splitList(v));
          break;
        // relayed, extended or routed REGISTERs: the generic path's business
        case 'route':
        case 'path':
        case 'require':
        case 'proxy-require':
        case 'record-route':
          return undefined;
        default:
          break;
      }
    }
    if (via === undefined || from === undefined || to === undefined || callId === undefined || cseq === undefined) return undefined;

    // The checks the parser and the proxy make, with their functions; any doubt goes generic.
    const vias: Via[] = [];
    if (via.indexOf(',') !== -1 || parseFirstVia(via, vias) !== undefined || mayCarryOurBranch(via)) return undefined;
    const top = vias[0]!;
    if (top.protocol !== 'SIP/2.0' || top.transport !== 'UDP' || top.received !== undefined || top.maddr !== undefined) return undefined;
    if (validateNameAddr(from) !== undefined || !validCallId(callId)) return undefined;
    const toValue = parseNameAddr(to);
    if (!toValue.ok || toValue.value.params.has('tag')) return undefined;
    const cseqValue = parseCSeq(cseq);
    if (typeof cseqValue === 'string' || cseqValue.method !== 'REGISTER') return undefined;
    if (maxForwards !== undefined) {
      const mf = parseDigits(maxForwards);
      if (mf === undefined || mf < 1 || mf > 255) return undefined;
    }
    if (contentLength !== undefined && parseDigits(contentLength) !== 0) return undefined;
    const ruri = parseUri(scan.uri);
    // (a Request-URI with ?headers is refused by the parser: §19.1.1)
    if (!ruri.ok || ruri.value.headers.size !== 0 || ruri.value.scheme === 'tel' || !this.#host.isLocalDomain(ruri.value.host)) return undefined;
    // A REGISTER without credentials is challenged whatever its Contact says (the registrar never
    // sees it, on either path), so its Contact is read only when it carries some.
    const contacts: Contact[] = [];
    const challenged = this.#host.authEnabled && authorization.length === 0;
    if (!challenged && contact !== undefined && parseNameAddrList(contact, contacts, true) !== undefined) return undefined;

    // §18.2.1 `received`, RFC 3581 `rport`: the text edit the transport makes in the common case.
    const address = source.address;
    let stamped: string | undefined = via;
    let port: number;
    if (top.rport === null) {
      stamped = stampViaText(via, address, source.port);
      port = source.port;
    } else if (top.rport === undefined && !/rport/i.test(via)) {
      if (bareHost(top.host) !== address) stamped = stampViaText(via, address, undefined);
      port = top.port ?? 5060;
    } else return undefined;
    if (stamped === undefined) return undefined;

    return {
      facts: {
        requestUri: ruri.value,
        require: [],
        to: toValue.value,
        contacts,
        callId,
        cseq: cseqValue.seq,
        expires,
        path: [],
        supported,
        userAgent,
      },
      authorization,
      receivedUri: scan.uri,
      via: stamped,
      from,
      to,
      callId,
      cseq,
      dest: { transport: 'udp', address, port },
    };
  }
}

/** The response, with the request's lines copied as `createResponse` copies them. */
function responseBytes(read: ReadRegister, answer: RegisterAnswer): Buffer {
  let text = `SIP/2.0 ${answer.status} ${answer.reason}\r\nVia: ${read.via}\r\nFrom: ${read.from}\r\nTo: ${read.to};tag=${newTag()}\r\nCall-ID: ${read.callId}\r\nCSeq: ${read.cseq}\r\n`;
  for (const [name, value] of answer.headers) text += `${name}: ${value}\r\n`;
  text += 'Content-Length: 0\r\n\r\n';
  return Buffer.from(text);
}
