/**
 * The SIP services the proxy core needs, as a narrow interface. `SignallingNode` implements it
 * over the transport and transaction layers; keeping it narrow lets the proxy logic stay
 * independent of how transactions are implemented.
 */
import type { SipRequest, SipResponse } from '../../sip/message/sip-message.js';
import type { Endpoint, Source, TransportName } from '../../sip/transport/types.js';

export interface ProxyClientHandlers {
  onProvisional?(res: SipResponse): void;
  onFinal?(res: SipResponse): void;
  /** INVITE: further 2xx after the first (retransmissions, other forks). */
  onAdditional2xx?(res: SipResponse): void;
  onTimeout?(): void;
  onTransportError?(err: Error): void;
}

/** Opaque client transaction handle. */
export interface ProxyClientTransaction {
  readonly request: SipRequest;
  /**
   * INVITE, once a 2xx made it Accepted: `h` replaces the handlers given to `sendRequest` for
   * the further 2xx until Timer M. False when the transaction is in another state.
   */
  handOverAccepted?(h: ProxyClientHandlers): boolean;
}

/** Server transaction as the proxy uses it. */
export interface ProxyServerTransaction {
  readonly request: SipRequest;
  respond(res: SipResponse): void;
  /** Registers a listener for a CANCEL matching this INVITE (the 200 to the CANCEL is sent by the stack). */
  onCancel(fn: () => void): void;
}

/** A local interface as written into Via / Record-Route. */
export interface LocalInterface {
  transport: TransportName;
  /** Advertised host (sent-by). */
  host: string;
  port: number;
  /** Bound address and port (to recognise which socket a message came in on). */
  boundAddress: string;
  boundPort: number;
}

export interface ProxyStack {
  /** Starts a client transaction; the request must already carry our Via with a fresh branch. */
  sendRequest(req: SipRequest, target: Endpoint, handlers: ProxyClientHandlers): ProxyClientTransaction;
  /** CANCELs a client INVITE transaction (§9.1; the stack waits for a provisional if needed). */
  cancel(tx: ProxyClientTransaction): void;
  /** Sends a request without a transaction (ACK for 2xx, forwarded end to end). */
  sendStateless(req: SipRequest, target: Endpoint): void;
  /** Sends a response per its top Via without a transaction (stray 2xx retransmissions). */
  sendResponseStateless(res: SipResponse): void;
  /** The local interface used to reach `target` (for Via and Record-Route). */
  interfaceFor(target: Endpoint): LocalInterface;
  /** The local interface a message from `source` arrived on. */
  interfaceOf(source: Source): LocalInterface;
  /** True when host[:port] names one of our interfaces (Route/Request-URI recognition, loops). */
  isOwnAddress(host: string, port: number | undefined, transport?: string): boolean;
}
