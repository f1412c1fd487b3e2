/**
 * An in-process transport for tests and benchmarks: transports attached to one
 * `InMemoryNetwork` exchange serialized SIP messages without sockets, so the transaction layer
 * and UAs can run on a fake clock with exact timers, and loss can be injected. Bytes are still
 * serialized and parsed, so what is measured is the real message path minus the kernel.
 */
import { EventEmitter } from 'node:events';
import { parseMessage } from '../message/parser.js';
import type { SipMessage, SipResponse } from '../message/sip-message.js';
import { responseDestination, type ViaLike } from './response-routing.js';
import type { Endpoint, Source, TransportName } from './types.js';

export class InMemoryNetwork {
  readonly #nodes = new Map<string, InMemoryTransport>();
  /** Every datagram offered to the network, in order (tests inspect it; `recordTraffic` to enable). */
  readonly traffic: { from: string; to: string; data: Buffer }[] = [];
  recordTraffic = false;
  /** Return false to drop a datagram (loss injection). */
  filter: ((data: Buffer, from: Endpoint, to: Endpoint) => boolean) | undefined;
  /** Deliver on the microtask queue (default) or synchronously. */
  sync = false;

  attach(t: InMemoryTransport): void {
    this.#nodes.set(`${t.address}:${t.port}`, t);
  }

  detach(t: InMemoryTransport): void {
    this.#nodes.delete(`${t.address}:${t.port}`);
  }

  deliver(data: Buffer, from: InMemoryTransport, to: Endpoint): void {
    if (this.recordTraffic) this.traffic.push({ from: `${from.address}:${from.port}`, to: `${to.address}:${to.port}`, data });
    if (this.filter && !this.filter(data, { transport: to.transport, address: from.address, port: from.port }, to)) return;
    const node = this.#nodes.get(`${to.address}:${to.port}`);
    if (!node) return;
    const source: Source = {
      transport: to.transport,
      address: from.address,
      port: from.port,
      localAddress: node.address,
      localPort: node.port,
    };
    if (this.sync) node.receiveBytes(data, source);
    else queueMicrotask(() => node.receiveBytes(data, source));
  }
}

export class InMemoryTransport extends EventEmitter<{ message: [SipMessage, Source] }> {
  /** Make every send fail (transport error injection). */
  failSends = false;
  /** Make sends over this transport protocol fail (e.g. 'tcp': no TCP listener at the peer). */
  failSendsOver: TransportName | undefined;
  /** Messages that failed to parse. */
  parseErrors = 0;

  constructor(
    readonly network: InMemoryNetwork,
    readonly address: string,
    readonly port: number,
    readonly transport: TransportName = 'udp',
  ) {
    super();
    network.attach(this);
  }

  receiveBytes(data: Buffer, source: Source): void {
    const r = parseMessage(data, { stream: source.transport !== 'udp' });
    if (!r.ok) {
      this.parseErrors++;
      return;
    }
    this.emit('message', r.value, source);
  }

  /** Fire-and-forget send; failures reach `onError(err, arg)` asynchronously (as on `TransportLayer`). */
  transmit<A>(data: Buffer, target: Endpoint, onError: (err: Error, arg: A) => void, arg: A): void {
    if (this.failSends || this.failSendsOver === target.transport) {
      const err = new Error('SIP_ERR_SEND_FAILED: injected failure');
      queueMicrotask(() => onError(err, arg));
      return;
    }
    this.network.deliver(data, this, target);
  }

  sendRaw(data: Buffer, target: Endpoint): Promise<void> {
    if (this.failSends || this.failSendsOver === target.transport) return Promise.reject(new Error('SIP_ERR_SEND_FAILED: injected failure'));
    this.network.deliver(data, this, target);
    return Promise.resolve();
  }

  send(msg: SipMessage, target: Endpoint): Promise<void> {
    return this.sendRaw(msg.toBuffer(), target);
  }

  sendResponseRaw(data: Buffer, via: ViaLike, source?: Source): Promise<void> {
    const dest = responseDestination(via, source);
    if (!dest) return Promise.reject(new Error('SIP_ERR_NO_TRANSPORT: unroutable response'));
    return this.sendRaw(data, dest);
  }

  sendResponse(res: SipResponse, source?: Source): Promise<void> {
    return this.sendResponseRaw(res.toBuffer(), res.topVia, source);
  }

  viaValue(target: Endpoint, branch: string, rport = true): string {
    return `SIP/2.0/${target.transport.toUpperCase()} ${this.address}:${this.port};branch=${branch}${rport ? ';rport' : ''}`;
  }

  viaFor(target: Endpoint): { transport: string; host: string; port: number } {
    return { transport: target.transport.toUpperCase(), host: this.address, port: this.port };
  }

  close(): Promise<void> {
    this.network.detach(this);
    return Promise.resolve();
  }
}
