/**
 * SIP transport layer (RFC 3261 §18, RFC 3581, RFC 5626 §3.5.1): UDP (IPv4/IPv6), TCP and TLS
 * listeners, outgoing connections reused by remote address, framing of streams by
 * Content-Length, keep-alive pongs, `received`/`rport` stamping and response routing.
 *
 * Every socket callback is a boundary: peer bytes can make it drop, count and log, never throw.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { gauge } from '../../util/metrics.js';
import { logger } from '../../util/logger.js';
import { publishSipWire, sipWire } from '../../util/sip-wire.js';
import { sharedTimerWheel, type TimerHandle, type TimerWheel } from '../../util/timer-wheel.js';
import { createResponse } from '../message/builders.js';
import { parseMessage } from '../message/parser.js';
import { SipRequest, SipResponse, type SipMessage } from '../message/sip-message.js';
import { reportBadInput, reportTransportEvent, statusForParseError } from './bad-input.js';
import { bareHost, hostForHeader, ipv4Number, isIPv6Literal, responseDestination, type ViaLike } from './response-routing.js';
import { StreamFramer } from './stream-framer.js';
import {
  DEFAULT_PORTS,
  type Endpoint,
  type ListeningPoint,
  type ListenSpec,
  type Source,
  type TransportName,
  type TransportOptions,
} from './types.js';
import { dgramHandle, loadNativeUdp, NativeUdpSocket, sendError } from './native-udp.js';

export type { Endpoint, ListeningPoint, ListenSpec, Source, TransportName, TransportOptions } from './types.js';

/** Events: `message` (msg, source) for every well-formed message; `error` (err) for listener failures. */
export interface TransportLayerEvents {
  message: [msg: SipMessage, source: Source];
  error: [err: Error];
}

interface UdpEntry {
  lp: ListeningPoint;
  socket: dgram.Socket;
  family: 4 | 6;
  /** The socket's native path (IPv4 only), when the addon loaded: reads and sends instead of dgram. */
  native?: NativeUdpSocket;
}

interface ServerEntry {
  lp: ListeningPoint;
  server: net.Server;
}

/** Local side to send from (a listening point's address and port). */
export interface LocalAddress {
  localAddress: string;
  localPort: number;
}

/** Reports a send failure after the current call returns (callers may not be ready for it yet). */
function deferError<A>(onError: (err: Error, arg: A) => void, err: Error, arg: A): void {
  queueMicrotask(() => onError(err, arg));
}

/** Live transport layers, for the connection gauge (removed by close()). */
const liveTransports = new Set<TransportLayer>();
gauge('tandem_sip_connections', 'Open SIP TCP/TLS connections', [], function collect() {
  let n = 0;
  for (const t of liveTransports) n += t.connectionCount;
  this.set(n);
});

class StreamConnection {
  readonly framer: StreamFramer;
  readonly source: Source;
  readonly keys: string[] = [];
  lastActivity: number;
  idleTimer: TimerHandle | undefined;
  closed = false;

  constructor(
    readonly id: number,
    readonly transport: 'tcp' | 'tls',
    readonly socket: net.Socket,
    readonly outgoing: boolean,
    framer: StreamFramer,
    now: number,
  ) {
    this.framer = framer;
    this.lastActivity = now;
    this.source = {
      transport,
      address: normalizeAddress(socket.remoteAddress ?? ''),
      port: socket.remotePort ?? 0,
      localAddress: normalizeAddress(socket.localAddress ?? ''),
      localPort: socket.localPort ?? 0,
      connectionId: this.id,
    };
  }

  get label(): string {
    return `${this.transport}:${hostForHeader(this.source.address)}:${this.source.port}`;
  }
}

/**
 * dgram resolves the destination of every send through `lookup`; the default (dns.lookup) costs
 * a regex and a nextTick per datagram even for an IP literal. SIP targets are nearly always IP
 * literals: answer those at once, resolve names as before.
 */
function literalFirstLookup(
  hostname: string,
  options: number | dns.LookupOneOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (ipv4Number(hostname) >= 0) return callback(null, hostname, 4);
  if (hostname.indexOf(':') !== -1 && net.isIPv6(hostname)) return callback(null, hostname, 6);
  dns.lookup(hostname, typeof options === 'number' ? { family: options } : options, callback);
}

/** Starts or stops dgram's reading of a socket (its libuv handle, see `dgramHandle`). */
function setReceiving(socket: dgram.Socket, on: boolean): void {
  const handle = dgramHandle(socket);
  if (on) handle?.recvStart?.();
  else handle?.recvStop?.();
}

let nativeUdpReported = false;

/** Once per process: the UDP sockets stay on node:dgram (deliberately, or because the addon could not be built). */
function reportNativeUdpUnavailable(code: string, reason: string): void {
  if (nativeUdpReported) return;
  nativeUdpReported = true;
  if (code === 'NATIVE_UDP_OFF') logger.info({ reason }, 'UDP sockets on node:dgram: the native path is turned off');
  else logger.warn({ code, reason }, 'UDP sockets on node:dgram: the native path could not be built or loaded (see docs/architecture.md)');
}

function onElsewhereWriteError(err: Error, label: string): void {
  reportTransportEvent('send_error', label, err);
}

function safeEmitFault(err: unknown): void {
  logger.error({ err, event: 'message' }, 'event listener threw');
}

function sourceLabel(source: Source): string {
  return `${source.transport}:${hostForHeader(source.address)}:${source.port}`;
}

/** `::ffff:1.2.3.4` (IPv4-mapped, from dual-stack sockets) -> `1.2.3.4`. */
function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

function connKey(transport: TransportName, address: string, port: number): string {
  return `${transport}|${bareHost(address)}|${port}`;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '';
}

function firstInterfaceAddress(family: 4 | 6): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const ni of list ?? []) {
      if (!ni.internal && (ni.family === 'IPv4' ? 4 : 6) === family) return ni.address;
    }
  }
  return family === 4 ? '127.0.0.1' : '::1';
}

export class TransportLayer extends EventEmitter<TransportLayerEvents> {
  readonly listeningPoints: ListeningPoint[] = [];
  readonly #opts: Required<Omit<TransportOptions, 'tlsClient' | 'wheel' | 'steer' | 'connectionIdBase' | 'sendElsewhere' | 'nativeUdp'>>;
  readonly #nativeUdp: boolean;
  readonly #steer: TransportOptions['steer'];
  readonly #sendElsewhere: TransportOptions['sendElsewhere'];
  #nextConnectionId: number;
  readonly #tlsClient: tls.ConnectionOptions;
  readonly #wheel: TimerWheel;
  readonly #udp: UdpEntry[] = [];
  readonly #servers: ServerEntry[] = [];
  readonly #conns = new Map<number, StreamConnection>();
  readonly #byKey = new Map<string, StreamConnection>();
  readonly #pending = new Map<string, Promise<StreamConnection>>();
  #closed = false;
  /** Whether our UDP sockets read (see `setUdpReceiving`). */
  #udpReceiving = true;
  #preParse: ((data: Buffer, source: Source) => boolean) | undefined;
  readonly #parseDatagram: { maxBytes: number; stream: boolean };
  readonly #parseStream: { maxBytes: number; stream: boolean };

  constructor(opts: TransportOptions = {}) {
    super();
    this.#opts = {
      maxMessageBytes: opts.maxMessageBytes ?? 65536,
      maxConnections: opts.maxConnections ?? 4096,
      idleTimeoutMs: opts.idleTimeoutMs ?? 120_000,
      maxBufferedBytesPerConnection: opts.maxBufferedBytesPerConnection ?? 262_144,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      verifyResponseSentBy: opts.verifyResponseSentBy ?? false,
    };
    this.#tlsClient = opts.tlsClient ?? {};
    this.#steer = opts.steer;
    this.#sendElsewhere = opts.sendElsewhere;
    this.#nativeUdp = opts.nativeUdp ?? true;
    this.#nextConnectionId = opts.connectionIdBase ?? 1;
    this.#wheel = opts.wheel ?? sharedTimerWheel();
    this.#parseDatagram = { maxBytes: this.#opts.maxMessageBytes, stream: false };
    this.#parseStream = { maxBytes: this.#opts.maxMessageBytes, stream: true };
    liveTransports.add(this);
  }

  /** How each UDP listening point reads: 'native' (batched, native-udp.ts) or 'dgram'. */
  udpPath(lp: ListeningPoint): 'native' | 'dgram' | undefined {
    const e = this.#udp.find((x) => x.lp === lp);
    return e === undefined ? undefined : e.native?.receiving ? 'native' : 'dgram';
  }

  /** Open stream connections (incoming and outgoing). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Binds a listening point; port 0 picks a free one (read it from the result). */
  async listen(spec: ListenSpec): Promise<ListeningPoint> {
    const family: 4 | 6 = net.isIPv6(spec.address) ? 6 : 4;
    const makeLp = (port: number): ListeningPoint => ({
      transport: spec.transport,
      address: spec.address,
      port,
      host: spec.advertise ?? (isWildcard(spec.address) ? firstInterfaceAddress(family) : spec.address),
      sentByPort: spec.advertisePort ?? port,
    });
    if (spec.transport === 'udp') {
      const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalFirstLookup });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(spec.port, spec.address, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      try {
        socket.setRecvBufferSize(4 * 1024 * 1024);
        socket.setSendBufferSize(4 * 1024 * 1024);
      } catch {
        // kernel limits; defaults work
      }
      const lp = makeLp(socket.address().port);
      const entry: UdpEntry = { lp, socket, family };
      socket.on('message', (buf, rinfo) => this.#onDatagram(entry, buf, rinfo.address, rinfo.port));
      socket.on('error', (err) => reportTransportEvent('udp_socket_error', `udp:${spec.address}`, err));
      if (family === 4 && this.#nativeUdp) {
        const mod = await loadNativeUdp();
        if (mod.ok) entry.native = NativeUdpSocket.attach(mod.value, socket, (buf, address, port) => this.#onDatagram(entry, buf, address, port));
        else reportNativeUdpUnavailable(mod.code, mod.reason);
      }
      if (!this.#udpReceiving) setReceiving(socket, false);
      else if (entry.native !== undefined && !entry.native.startReceiving()) entry.native = undefined;
      if (spec.preferred) {
        this.#udp.unshift(entry);
        this.listeningPoints.unshift(lp);
      } else {
        this.#udp.push(entry);
        this.listeningPoints.push(lp);
      }
      return lp;
    }
    let server: net.Server;
    if (spec.transport === 'tls') {
      if (!spec.tls) throw new Error('SIP_ERR_TLS_CONFIG: tls listen needs key and cert');
      const tlsServer = tls.createServer(
        { key: spec.tls.key, cert: spec.tls.cert, handshakeTimeout: this.#opts.connectTimeoutMs },
        (socket) => this.#onIncoming('tls', socket),
      );
      tlsServer.on('tlsClientError', (err, socket) => {
        reportTransportEvent('tls_handshake_error', `tls:${socket.remoteAddress}:${socket.remotePort}`, err);
      });
      server = tlsServer;
    } else {
      server = net.createServer((socket) => this.#onIncoming('tcp', socket));
    }
    // Also counts sockets still in the TLS handshake (not yet in #conns): a peer that opens
    // sockets and never completes the handshake cannot exhaust memory.
    server.maxConnections = this.#opts.maxConnections;
    server.on('error', (err) => reportTransportEvent('server_error', `${spec.transport}:${spec.address}`, err));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.port, spec.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as net.AddressInfo;
    const lp = makeLp(addr.port);
    this.#servers.push({ lp, server });
    if (spec.preferred) this.listeningPoints.unshift(lp);
    else this.listeningPoints.push(lp);
    return lp;
  }

  /**
   * Closes one listening point (a virtual address this node no longer holds). Connections it
   * accepted stay open until they end: an established TCP flow keeps working.
   */
  async unlisten(lp: ListeningPoint): Promise<void> {
    const i = this.listeningPoints.indexOf(lp);
    if (i >= 0) this.listeningPoints.splice(i, 1);
    const u = this.#udp.findIndex((e) => e.lp === lp);
    if (u >= 0) {
      const [entry] = this.#udp.splice(u, 1);
      await new Promise<void>((resolve) => {
        try {
          entry!.native?.stopReceiving();
          entry!.socket.close(() => resolve());
        } catch {
          resolve();
        }
      });
    }
    const sIdx = this.#servers.findIndex((e) => e.lp === lp);
    if (sIdx >= 0) {
      const [entry] = this.#servers.splice(sIdx, 1);
      // Stops accepting at once; close's callback would wait for the open connections to end.
      entry!.server.close();
    }
  }

  /**
   * Sent-by for a Via header on a request to `target`: the listening point of the same
   * transport and address family. IPv6 hosts come bracketed (`[::1]`), ready for a header.
   */
  viaFor(target: Endpoint): { transport: string; host: string; port: number } {
    const lp = this.#listeningPointFor(target.transport, target.address);
    return { transport: target.transport.toUpperCase(), host: hostForHeader(lp.host), port: lp.sentByPort };
  }

  /** A full Via value (`SIP/2.0/UDP host:port;branch=...;rport`) for a request to `target`. */
  viaValue(target: Endpoint, branch: string, rport = true): string {
    const v = this.viaFor(target);
    return `SIP/2.0/${v.transport} ${v.host}:${v.port};branch=${branch}${rport ? ';rport' : ''}`;
  }

  /** The listening point used to reach `address` over `transport` (throws when none is bound). */
  listeningPointFor(transport: TransportName, address: string): ListeningPoint {
    return this.#listeningPointFor(transport, address);
  }

  #listeningPointFor(transport: TransportName, address: string): ListeningPoint {
    const lps = this.listeningPoints;
    // One listening point per transport (the usual case): no family lookup needed.
    if (lps.length === 1) return lps[0]!;
    const family = isIPv6Literal(bareHost(address)) ? 6 : 4;
    const same = lps.filter((lp) => lp.transport === transport);
    if (same.length === 1 && (isIPv6Literal(same[0]!.address) ? 6 : 4) === family) return same[0]!;
    const lp =
      same.find((p) => (isIPv6Literal(p.address) ? 6 : 4) === family) ??
      same[0] ??
      lps.find((p) => (isIPv6Literal(p.address) ? 6 : 4) === family) ??
      lps[0];
    if (!lp) throw new Error('SIP_ERR_NO_TRANSPORT: no listening point');
    return lp;
  }

  /** Sends a message to `target` (opens or reuses a TCP/TLS connection). Rejects on failure. */
  async send(msg: SipMessage, target: Endpoint): Promise<void> {
    const data = msg.toBuffer();
    await this.sendRaw(data, target);
  }

  /**
   * Fire-and-forget send of serialized bytes, the transaction layer's hot path: no Promise, no
   * closure on UDP beyond the socket's completion callback. A failure is reported through
   * `onError(err, arg)`, always asynchronously (never before `transmit` returns). `local` picks
   * the listening point to send from (responses go out where the request came in).
   */
  transmit<A>(data: Buffer, target: Endpoint, onError: (err: Error, arg: A) => void, arg: A, local?: LocalAddress): void {
    if (this.#closed) {
      deferError(onError, new Error('SIP_ERR_TRANSPORT_CLOSED: transport closed'), arg);
      return;
    }
    if (target.transport === 'udp') {
      const entry = this.#udpFor(target.address, local);
      if (!entry) {
        deferError(onError, new Error('SIP_ERR_NO_TRANSPORT: no UDP listening point'), arg);
        return;
      }
      const address = bareHost(target.address);
      if (sipWire.hasSubscribers) publishSipWire('out', data, 'udp', entry.lp.address, entry.lp.port, address, target.port);
      if (entry.native?.queue(data, target.port, address, onError, arg)) return;
      const rc = entry.native === undefined ? 1 : entry.native.trySend(data, target.port, address);
      if (rc === 0) return;
      if (rc < 0) {
        deferError(onError, sendError(rc), arg);
        return;
      }
      try {
        entry.socket.send(data, target.port, address, (err) => {
          if (err) onError(err, arg);
        });
      } catch (err) {
        // dgram throws at once for some destinations (port 0 from a Via): report it as a failed send.
        deferError(onError, err as Error, arg);
      }
      return;
    }
    const conn = this.#openConnectionFor(target);
    if (conn) {
      this.#writeCb(conn, data, onError, arg);
      return;
    }
    if (this.#elsewhere(data, target)) return;
    this.#connectionFor(target).then(
      (c) => this.#writeCb(c, data, onError, arg),
      (err: Error) => onError(err, arg),
    );
  }

  /** Sends already serialized bytes (retransmissions reuse the same buffer). */
  sendRaw(data: Buffer, target: Endpoint, local?: LocalAddress): Promise<void> {
    // Not `async`: one Promise per send instead of two (stateless relay of ACKs uses this).
    if (this.#closed) return Promise.reject(new Error('SIP_ERR_TRANSPORT_CLOSED: transport closed'));
    if (target.transport === 'udp') {
      const entry = this.#udpFor(target.address, local);
      if (!entry) return Promise.reject(new Error('SIP_ERR_NO_TRANSPORT: no UDP listening point'));
      const address = bareHost(target.address);
      if (sipWire.hasSubscribers) publishSipWire('out', data, 'udp', entry.lp.address, entry.lp.port, address, target.port);
      const rc = entry.native === undefined ? 1 : entry.native.trySend(data, target.port, address);
      if (rc === 0) return Promise.resolve();
      if (rc < 0) return Promise.reject(sendError(rc));
      return new Promise<void>((resolve, reject) => {
        // dgram throws at once for some destinations (port 0 from a Via): the executor turns it into a rejection.
        entry.socket.send(data, target.port, address, (err) => (err ? reject(err) : resolve()));
      });
    }
    const conn = this.#openConnectionFor(target);
    if (conn) return this.#write(conn, data);
    if (this.#elsewhere(data, target)) return Promise.resolve();
    return this.#connectionFor(target).then((c) => this.#write(c, data));
  }

  /**
   * Sends a response back along the request's path (RFC 3261 §18.2.2, RFC 3581 §4): over the
   * request's connection when still open, else per the top Via (`maddr`, `rport`, `received`,
   * sent-by).
   */
  async sendResponse(res: SipResponse, source?: Source): Promise<void> {
    await this.sendResponseRaw(res.toBuffer(), res.topVia, source);
  }

  /**
   * `sendResponse` with bytes already serialized and the response's top Via (server
   * transactions keep only these two for retransmissions).
   */
  async sendResponseRaw(data: Buffer, via: ViaLike, source?: Source): Promise<void> {
    const dest = responseDestination(via, source);
    if (!dest) throw new Error(`SIP_ERR_NO_TRANSPORT: cannot send response over ${via.transport}`);
    const local = source && source.transport === dest.transport ? source : undefined;
    await this.sendRaw(data, dest, local);
  }

  /** Closes every socket and connection. */
  async close(): Promise<void> {
    this.#closed = true;
    liveTransports.delete(this);
    for (const conn of [...this.#conns.values()]) this.#closeConnection(conn, undefined);
    await Promise.all([
      ...this.#udp.map(
        (e) =>
          new Promise<void>((resolve) => {
            e.native?.stopReceiving();
            e.socket.close(() => resolve());
          }),
      ),
      ...this.#servers.map((e) => new Promise<void>((resolve) => e.server.close(() => resolve()))),
    ]);
    this.#udp.length = 0;
    this.#servers.length = 0;
  }

  /**
   * A message another process sharing our listening points received and steered here (see
   * `TransportOptions.steer`): handled as if it had arrived on `source`.
   */
  inject(data: Buffer, source: Source): void {
    try {
      this.#onBytes(data, source, source.transport !== 'udp', undefined);
    } catch (err) {
      reportTransportEvent('handler_fault', sourceLabel(source), err);
    }
  }

  /**
   * Stops (or resumes) reading our UDP sockets while still sending from them: processes sharing
   * one socket (`tandem start --workers N`) let one of them read, so a datagram does not wake
   * every process. Best effort: where the runtime gives no way, the sockets keep reading.
   */
  setUdpReceiving(on: boolean): void {
    this.#udpReceiving = on;
    for (const e of this.#udp) {
      if (e.native === undefined) setReceiving(e.socket, on);
      else if (!on) e.native.stopReceiving();
      else if (!e.native.startReceiving()) setReceiving(e.socket, true);
    }
  }

  /**
   * A handler that sees every datagram (received here or steered here) before it is parsed and
   * may answer it from its bytes: true means it took the datagram, false hands it to the parser.
   * It must not throw. Set by a layer above for its fast path (the registrar's).
   */
  setPreParse(handler: ((data: Buffer, source: Source) => boolean) | undefined): void {
    this.#preParse = handler;
  }

  /** Writes bytes on one of our stream connections (for another process); false when it is gone. */
  writeToConnection(connectionId: number, data: Buffer): boolean {
    const conn = this.#conns.get(connectionId);
    if (!conn || conn.closed) return false;
    this.#writeCb(conn, data, onElsewhereWriteError, conn.label);
    return true;
  }

  // ---- receive path ---------------------------------------------------------------------

  #onDatagram(entry: UdpEntry, buf: Buffer, fromAddress: string, fromPort: number): void {
    try {
      // Keep-alive CRLFs and empty datagrams carry no message (RFC 3261 §7.5).
      if (buf.length <= 4 && buf.every((b) => b === 0x0d || b === 0x0a)) return;
      const source: Source = {
        transport: 'udp',
        address: normalizeAddress(fromAddress),
        port: fromPort,
        localAddress: entry.lp.address,
        localPort: entry.lp.port,
      };
      if (this.#steer !== undefined && this.#steer(buf, source)) return;
      this.#onBytes(buf, source, false, undefined);
    } catch (err) {
      reportTransportEvent('handler_fault', `udp:${fromAddress}:${fromPort}`, err);
    }
  }

  #onIncoming(transport: 'tcp' | 'tls', socket: net.Socket): void {
    try {
      if (this.#closed || this.#conns.size >= this.#opts.maxConnections) {
        reportTransportEvent('connection_limit', `${transport}:${socket.remoteAddress}:${socket.remotePort}`);
        socket.destroy();
        return;
      }
      const conn = this.#register(transport, socket, false);
      this.#addKey(conn, connKey(transport, conn.source.address, conn.source.port));
    } catch (err) {
      reportTransportEvent('handler_fault', `${transport}:${socket.remoteAddress}`, err);
      socket.destroy();
    }
  }

  #register(transport: 'tcp' | 'tls', socket: net.Socket, outgoing: boolean): StreamConnection {
    const framer = new StreamFramer({
      maxMessageBytes: this.#opts.maxMessageBytes,
      maxBufferedBytes: Math.max(this.#opts.maxBufferedBytesPerConnection, this.#opts.maxMessageBytes),
    });
    const conn = new StreamConnection(this.#nextConnectionId++, transport, socket, outgoing, framer, this.#wheel.now());
    this.#conns.set(conn.id, conn);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onStreamData(conn, chunk));
    socket.on('error', (err) => {
      reportTransportEvent('connection_error', conn.label, err);
      this.#closeConnection(conn, undefined);
    });
    socket.on('close', () => this.#closeConnection(conn, undefined));
    socket.on('end', () => this.#closeConnection(conn, undefined));
    this.#armIdle(conn, this.#opts.idleTimeoutMs);
    return conn;
  }

  #addKey(conn: StreamConnection, key: string): void {
    if (this.#byKey.has(key)) return;
    this.#byKey.set(key, conn);
    conn.keys.push(key);
  }

  #armIdle(conn: StreamConnection, delayMs: number): void {
    conn.idleTimer = this.#wheel.schedule(delayMs, () => {
      if (conn.closed) return;
      const idle = this.#wheel.now() - conn.lastActivity;
      if (idle >= this.#opts.idleTimeoutMs) {
        reportTransportEvent('idle_close', conn.label);
        this.#closeConnection(conn, undefined);
      } else {
        this.#armIdle(conn, this.#opts.idleTimeoutMs - idle);
      }
    });
  }

  #closeConnection(conn: StreamConnection, lastWords: Buffer | undefined): void {
    if (conn.closed) return;
    conn.closed = true;
    this.#wheel.cancel(conn.idleTimer);
    this.#conns.delete(conn.id);
    for (const key of conn.keys) if (this.#byKey.get(key) === conn) this.#byKey.delete(key);
    if (lastWords) conn.socket.end(lastWords);
    else conn.socket.destroy();
  }

  #onStreamData(conn: StreamConnection, chunk: Buffer): void {
    try {
      conn.lastActivity = this.#wheel.now();
      for (const ev of conn.framer.push(chunk)) {
        if (conn.closed) return;
        if (ev.kind === 'ping') {
          // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong.
          conn.socket.write('\r\n');
        } else if (ev.kind === 'message') {
          if (this.#steer !== undefined && this.#steer(ev.data, conn.source)) continue;
          this.#onBytes(ev.data, conn.source, true, conn);
        } else {
          reportBadInput(ev.code, ev.reason, ev.data, conn.label);
          let lastWords: Buffer | undefined;
          if (ev.data) lastWords = this.#errorResponseBytes(ev.data, ev.code, ev.reason, conn.source);
          reportTransportEvent('framing_close', conn.label);
          this.#closeConnection(conn, lastWords);
          return;
        }
      }
    } catch (err) {
      reportTransportEvent('handler_fault', conn.label, err);
      this.#closeConnection(conn, undefined);
    }
  }

  /** Builds the 4xx/5xx for a request whose framing failed, when its header parses far enough. */
  #errorResponseBytes(head: Buffer, code: string, reason: string, source: Source): Buffer | undefined {
    const r = parseMessage(head, { maxBytes: this.#opts.maxMessageBytes, stream: false });
    const req = r.ok ? r.value : r.partial;
    if (!(req instanceof SipRequest) || req.method === 'ACK') return undefined;
    this.#stampVia(req, source);
    const { status, reason: phrase } = statusForParseError(code, reason);
    return createResponse(req, status, phrase).toBuffer();
  }

  #onBytes(buf: Buffer, source: Source, stream: boolean, conn: StreamConnection | undefined): void {
    if (sipWire.hasSubscribers) publishSipWire('in', buf, source.transport, source.localAddress, source.localPort, source.address, source.port);
    if (!stream && this.#preParse !== undefined && this.#preParse(buf, source)) return;
    const r = parseMessage(buf, stream ? this.#parseStream : this.#parseDatagram);
    if (!r.ok) {
      const from = sourceLabel(source);
      reportBadInput(r.code, r.reason, buf, from);
      const partial = r.partial;
      // Only requests are answered, never an ACK (RFC 3261 §17.2.3); bad responses are dropped.
      if (partial instanceof SipRequest && partial.method !== 'ACK') {
        try {
          this.#stampVia(partial, source);
          const { status, reason } = statusForParseError(r.code, r.reason);
          const res = createResponse(partial, status, reason);
          this.sendResponse(res, source).catch((err) => reportTransportEvent('send_error', from, err));
        } catch (err) {
          reportTransportEvent('bad_request_unanswerable', from, err);
        }
      }
      return;
    }
    const msg = r.value;
    if (msg instanceof SipRequest) {
      this.#stampVia(msg, source);
      if (conn) this.#learnAlias(conn, msg);
    } else if (!(msg instanceof SipResponse)) {
      return;
    } else if (this.#opts.verifyResponseSentBy && !this.#isOurSentBy(msg)) {
      reportBadInput('SIP_ERR_VIA_MISMATCH', 'Via sent-by is not ours', buf, sourceLabel(source));
      return;
    }
    try {
      this.emit('message', msg, source);
    } catch (err) {
      // A throwing listener must not break the socket handler (what safeEmit does, without its rest-args array).
      safeEmitFault(err);
    }
  }

  /** §18.1.2: "If the value of the "sent-by" parameter in that header field value does not correspond to a value that the client transport is configured to insert into requests, the response MUST be silently discarded." */
  #isOurSentBy(res: SipResponse): boolean {
    const via = res.topVia;
    const host = bareHost(via.host).toLowerCase();
    const transport = via.transport.toLowerCase();
    return this.listeningPoints.some(
      (lp) =>
        (via.port ?? DEFAULT_PORTS[lp.transport]) === lp.sentByPort &&
        (lp.transport === transport || (transport !== 'udp' && lp.transport !== 'udp')) &&
        (bareHost(lp.host).toLowerCase() === host || lp.address.toLowerCase() === host),
    );
  }

  /**
   * RFC 3261 §18.2.1: add `received` when the sent-by host differs from the source address;
   * RFC 3581 §4: fill an empty `rport` with the source port (and then always add `received`).
   */
  #stampVia(req: SipRequest, source: Source): void {
    const via = req.topVia;
    const host = bareHost(via.host);
    // Common case, as a text edit: no `received` yet, and `rport` bare or absent from the line.
    if (via.received === undefined) {
      if (via.rport === null) {
        if (req.stampTopVia(source.address, source.port)) return;
      } else if (via.rport === undefined && !/rport/i.test(req.headers.first('via')?.value ?? 'rport')) {
        if (host === source.address) return;
        if (req.stampTopVia(source.address, undefined)) return;
      }
    }
    const rportAsked = via.rport === null || via.params.get('rport') === null || via.params.get('rport') === '';
    const needReceived = rportAsked || host !== source.address;
    if (!needReceived) return;
    const params = new Map<string, string | null>(via.params);
    params.set('received', source.address);
    if (rportAsked) params.set('rport', String(source.port));
    // replaces the top Via line and keeps the new value in the typed cache (no re-parse)
    req.replaceTopVia({ ...via, params });
  }

  /**
   * Requests to a peer reuse the connection it opened to us: besides its source address, the
   * connection is keyed by the Via sent-by when that names the same IP (RFC 5923 spirit,
   * without trusting a sent-by that points elsewhere).
   */
  #learnAlias(conn: StreamConnection, req: SipRequest): void {
    const via = req.topVia;
    const host = bareHost(via.host);
    if (host !== conn.source.address) return;
    const port = via.port ?? DEFAULT_PORTS[conn.transport];
    this.#addKey(conn, connKey(conn.transport, host, port));
  }

  // ---- send path ------------------------------------------------------------------------

  #udpFor(address: string, local?: LocalAddress): UdpEntry | undefined {
    const udp = this.#udp;
    if (udp.length === 1) return udp[0];
    if (local) {
      const exact = this.#udp.find((e) => e.lp.port === local.localPort && e.lp.address === local.localAddress);
      if (exact) return exact;
    }
    const family = isIPv6Literal(bareHost(address)) ? 6 : 4;
    return this.#udp.find((e) => e.family === family) ?? this.#udp[0];
  }

  /** A connection id we do not hold, handed to the process that does (`sendElsewhere`). */
  #elsewhere(data: Buffer, target: Endpoint): boolean {
    const id = target.connectionId;
    return id !== undefined && this.#sendElsewhere !== undefined && !this.#conns.has(id) && this.#sendElsewhere(data, id);
  }

  /** An open connection for `target` without waiting (the request's own connection first). */
  #openConnectionFor(target: Endpoint): StreamConnection | undefined {
    if (target.connectionId !== undefined) {
      const c = this.#conns.get(target.connectionId);
      if (c && !c.closed) return c;
    }
    const existing = this.#byKey.get(connKey(target.transport, target.address, target.port));
    return existing && !existing.closed ? existing : undefined;
  }

  async #connectionFor(target: Endpoint): Promise<StreamConnection> {
    if (target.transport === 'udp') throw new Error('not a stream transport');
    if (target.connectionId !== undefined) {
      const c = this.#conns.get(target.connectionId);
      if (c && !c.closed) return c;
    }
    const key = connKey(target.transport, target.address, target.port);
    const existing = this.#byKey.get(key);
    if (existing && !existing.closed) return existing;
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const p = this.#connect(target.transport, bareHost(target.address), target.port, key).finally(() => {
      this.#pending.delete(key);
    });
    this.#pending.set(key, p);
    return p;
  }

  #connect(transport: 'tcp' | 'tls', host: string, port: number, key: string): Promise<StreamConnection> {
    if (this.#conns.size >= this.#opts.maxConnections) {
      reportTransportEvent('connection_limit', `${transport}:${host}:${port}`);
      return Promise.reject(new Error('SIP_ERR_CONNECTION_LIMIT: too many connections'));
    }
    return new Promise<StreamConnection>((resolve, reject) => {
      let socket: net.Socket;
      const onError = (err: Error) => {
        this.#wheel.cancel(timer);
        socket.destroy();
        reject(err);
      };
      const onConnected = () => {
        this.#wheel.cancel(timer);
        socket.off('error', onError);
        if (this.#closed) {
          socket.destroy();
          reject(new Error('SIP_ERR_TRANSPORT_CLOSED: transport closed'));
          return;
        }
        const conn = this.#register(transport, socket, true);
        this.#addKey(conn, key);
        resolve(conn);
      };
      if (transport === 'tls') {
        const opts: tls.ConnectionOptions = { host, port, ...this.#tlsClient };
        if (!net.isIP(host) && opts.servername === undefined) opts.servername = host;
        socket = tls.connect(opts, onConnected);
      } else {
        socket = net.connect({ host, port }, onConnected);
      }
      socket.once('error', onError);
      const timer = this.#wheel.schedule(this.#opts.connectTimeoutMs, () =>
        onError(new Error(`SIP_ERR_CONNECT_TIMEOUT: ${transport}:${host}:${port}`)),
      );
    });
  }

  /** `#write` for `transmit`: errors go to the callback, asynchronously. */
  #writeCb<A>(conn: StreamConnection, data: Buffer, onError: (err: Error, arg: A) => void, arg: A): void {
    if (conn.closed) {
      deferError(onError, new Error('SIP_ERR_CONNECTION_CLOSED: connection closed'), arg);
      return;
    }
    if (conn.socket.writableLength + data.length > this.#opts.maxBufferedBytesPerConnection) {
      reportTransportEvent('write_overflow', conn.label);
      this.#closeConnection(conn, undefined);
      deferError(onError, new Error('SIP_ERR_BUFFER_OVERFLOW: peer not reading'), arg);
      return;
    }
    conn.lastActivity = this.#wheel.now();
    if (sipWire.hasSubscribers) publishSipWire('out', data, conn.transport, conn.source.localAddress, conn.source.localPort, conn.source.address, conn.source.port);
    conn.socket.write(data, (err) => {
      if (err) onError(err, arg);
    });
  }

  #write(conn: StreamConnection, data: Buffer): Promise<void> {
    if (conn.closed) return Promise.reject(new Error('SIP_ERR_CONNECTION_CLOSED: connection closed'));
    // A peer that does not read cannot make us buffer without bound.
    if (conn.socket.writableLength + data.length > this.#opts.maxBufferedBytesPerConnection) {
      reportTransportEvent('write_overflow', conn.label);
      this.#closeConnection(conn, undefined);
      return Promise.reject(new Error('SIP_ERR_BUFFER_OVERFLOW: peer not reading'));
    }
    conn.lastActivity = this.#wheel.now();
    if (sipWire.hasSubscribers) publishSipWire('out', data, conn.transport, conn.source.localAddress, conn.source.localPort, conn.source.address, conn.source.port);
    return new Promise<void>((resolve, reject) => {
      conn.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }
}
