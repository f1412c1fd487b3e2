import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, type Server, type Socket as TcpSocket } from 'node:net';
import { frameStream } from '../../sip/message/parser.js';
import { createLogger, escapeSnippet, rateLimitedLog } from '../../util/logger.js';

const log = createLogger('loadgen-sip');

export type LoadTransport = 'udp' | 'tcp';

export interface Peer {
  address: string;
  port: number;
}

export interface SipEndpointOptions {
  transport: LoadTransport;
  address: string;
  /** First port to try; 0 = any. */
  port: number;
  /** Last port of a range to try (inclusive). */
  portMax?: number;
  /** Accept TCP connections (UAS); a UAC only connects out. */
  listen?: boolean;
  /** Largest message (and TCP buffer per connection). @default 65536 */
  maxMessageBytes?: number;
}

export type MessageHandler = (buf: Buffer, from: Peer) => void;
export type ErrorHandler = (peer: Peer, err: Error) => void;

const key = (p: Peer): string => `${p.address}|${p.port}`;

/**
 * SIP over UDP or TCP for the load generator: a UDP socket, or a TCP listener/connections with
 * Content-Length framing (RFC 3261 §18.3: mandatory on streams; a buffer past the cap closes
 * the connection). Messages come out as whole buffers; the codec is the caller's.
 */
export class SipEndpoint {
  readonly transport: LoadTransport;
  local: Peer = { address: '', port: 0 };
  onMessage: MessageHandler = () => {};
  /** A TCP connection failed or closed with data pending for that peer. */
  onPeerError: ErrorHandler = () => {};
  #udp: UdpSocket | undefined;
  #server: Server | undefined;
  #conns = new Map<string, TcpSocket>();
  #max: number;
  #closed = false;

  private constructor(transport: LoadTransport, max: number) {
    this.transport = transport;
    this.#max = max;
  }

  static async open(opts: SipEndpointOptions): Promise<SipEndpoint> {
    const ep = new SipEndpoint(opts.transport, opts.maxMessageBytes ?? 65536);
    const last = opts.portMax && opts.port ? opts.portMax : opts.port;
    let err: unknown;
    for (let port = opts.port; port <= last; port++) {
      try {
        if (opts.transport === 'udp') await ep.#bindUdp(opts.address, port);
        else if (opts.listen) await ep.#listenTcp(opts.address, port);
        else ep.local = { address: opts.address, port };
        return ep;
      } catch (e) {
        err = e;
      }
    }
    throw err instanceof Error ? err : new Error('no free SIP port');
  }

  #bindUdp(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 });
      const onErr = (e: Error): void => {
        s.close();
        reject(e);
      };
      s.once('error', onErr);
      s.bind(port, address, () => {
        s.off('error', onErr);
        s.on('error', (e) => rateLimitedLog('sip-udp-error', (n) => log.warn({ err: e.message, suppressed: n }, 'SIP UDP socket error')));
        s.on('message', (msg, rinfo) => this.#deliver(msg, { address: rinfo.address, port: rinfo.port }));
        this.#udp = s;
        this.local = { address, port: s.address().port };
        resolve();
      });
    });
  }

  #listenTcp(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((sock) => this.#adopt(sock, { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 }));
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        server.on('error', (e) => log.warn({ err: e.message }, 'SIP TCP server error'));
        const a = server.address();
        this.local = { address, port: typeof a === 'object' && a ? a.port : port };
        this.#server = server;
        resolve();
      });
    });
  }

  #deliver(buf: Buffer, from: Peer): void {
    try {
      this.onMessage(buf, from);
    } catch (err) {
      // a socket handler is a boundary: drop, count (caller), log
      rateLimitedLog('sip-handler', (n) => log.warn({ err, suppressed: n, from, snippet: escapeSnippet(buf) }, 'dropping SIP message: handler failed'));
    }
  }

  #adopt(sock: TcpSocket, peer: Peer): void {
    const k = key(peer);
    this.#conns.set(k, sock);
    sock.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    let searchFrom = 0;
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      // framing by the shared message layer (Content-Length required, head and message capped)
      while (pending.length > 0) {
        const f = frameStream(pending, this.#max, searchFrom);
        if (f.type === 'need') {
          searchFrom = f.searchFrom ?? 0;
          return;
        }
        searchFrom = 0;
        if (f.type === 'error') {
          rateLimitedLog(`sip-tcp-${f.code}`, (n) => log.warn({ peer, reason: f.reason, suppressed: n }, 'closing SIP TCP connection: bad framing'));
          sock.destroy();
          return;
        }
        // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with CRLF; a lone CRLF (pong) is skipped
        if (f.type === 'ping') sock.write('\r\n');
        else if (f.type === 'message') this.#deliver(pending.subarray(0, f.length), peer);
        pending = pending.subarray(f.length);
      }
    });
    sock.on('error', (err) => {
      if (!this.#closed) this.onPeerError(peer, err);
    });
    sock.on('close', () => {
      if (this.#conns.get(k) === sock) this.#conns.delete(k);
    });
  }

  /** Sends one message; errors are reported through `onError` (or onPeerError for TCP). */
  send(buf: Buffer, to: Peer, onError?: (err: Error) => void): void {
    if (this.#closed) return;
    if (this.#udp) {
      this.#udp.send(buf, to.port, to.address, onError ? (err) => err && onError(err) : undefined);
      return;
    }
    let sock = this.#conns.get(key(to));
    if (!sock || sock.destroyed) {
      const opts: { host: string; port: number; localAddress?: string } = { host: to.address, port: to.port };
      if (this.local.address && this.local.address !== '0.0.0.0') opts.localAddress = this.local.address;
      sock = connect(opts);
      this.#adopt(sock, to);
    }
    sock.write(buf);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#udp?.close();
    for (const s of this.#conns.values()) s.destroy();
    this.#conns.clear();
    if (this.#server) await new Promise<void>((r) => this.#server!.close(() => r()));
  }
}
