/** Transport protocols Tandem speaks (RFC 3261 §18). */
export type TransportName = 'udp' | 'tcp' | 'tls';

/** Where to send a message. */
export interface Endpoint {
  transport: TransportName;
  /** IP address (IPv6 without brackets) or host name. */
  address: string;
  port: number;
  /** Stream transports: send over this connection when it is still open (see `Source`). */
  connectionId?: number;
}

/** Where a message came from, and on which local socket. */
export interface Source extends Endpoint {
  localAddress: string;
  localPort: number;
  /** Set for TCP/TLS: the connection the message arrived on. */
  connectionId?: number;
}

export interface ListenSpec {
  transport: TransportName;
  /** Address to bind (`127.0.0.1`, `::1`, `0.0.0.0`, `::`). */
  address: string;
  /** 0 picks a free port. */
  port: number;
  /** TLS server certificate and key (PEM). Required for `tls`. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * Host written into Via sent-by (and usable for Contact/Record-Route) instead of the bound
   * address, e.g. a virtual IP. Default: the bound address (a wildcard bind picks the first
   * non-internal interface address).
   */
  advertise?: string;
  /** Port for sent-by instead of the bound port. */
  advertisePort?: number;
  /**
   * Send from this listening point before the others of its transport and family (a virtual
   * address this node holds: what it sends leaves from the address peers know). @default false
   */
  preferred?: boolean;
}

export interface ListeningPoint {
  transport: TransportName;
  /** Bound address. */
  address: string;
  /** Bound port (the real one when 0 was asked). */
  port: number;
  /** sent-by host (advertised address or bound address). */
  host: string;
  /** sent-by port. */
  sentByPort: number;
}

export interface TransportOptions {
  /**
   * Largest SIP message accepted, bytes (RFC 3261 §18.1.1 leaves it to the implementation).
   * @default 65536
   */
  maxMessageBytes?: number;
  /**
   * Most open TCP/TLS connections (incoming + outgoing); further incoming ones are closed at once.
   * @default 4096
   */
  maxConnections?: number;
  /**
   * A stream connection with no traffic for this long is closed.
   * @default 120000
   */
  idleTimeoutMs?: number;
  /**
   * Bytes buffered per connection, in (an incomplete message) or out (a peer that does not read);
   * past it the connection is closed.
   * @default 262144
   */
  maxBufferedBytesPerConnection?: number;
  /**
   * Timeout for opening an outgoing TCP/TLS connection.
   * @default 10000
   */
  connectTimeoutMs?: number;
  /** Options for outgoing TLS connections (ca, rejectUnauthorized, servername, cert/key for mutual TLS). */
  tlsClient?: import('node:tls').ConnectionOptions;
  /**
   * RFC 3261 §18.1.2: drop a response whose top Via sent-by is not one of our listening points
   * (host or advertised host, and sent-by port). Off by default because layers above may write
   * their own Via with addresses the transport does not know.
   * @default false
   */
  verifyResponseSentBy?: boolean;
  /** Timer wheel for idle timeouts (default: the shared real-time wheel). */
  wheel?: import('../../util/timer-wheel.js').TimerWheel;
  /**
   * Several processes serving one set of listening points (`tandem start --workers N`): called
   * with every received message's bytes (UDP datagram or framed stream message) before it is
   * parsed; true means another process owns it and it was handed there. Such a process gives
   * the message back through `TransportLayer.inject`. @default none (every message is ours)
   */
  steer?: (data: Buffer, source: Source) => boolean;
  /**
   * First stream connection id of this layer. Processes sharing listening points take disjoint
   * ranges, so an id names one connection across all of them. @default 1
   */
  connectionIdBase?: number;
  /**
   * A send over a connection id this layer does not hold (another process accepted it): write
   * the bytes there; true when handed over. @default none
   */
  sendElsewhere?: (data: Buffer, connectionId: number) => boolean;
  /**
   * IPv4 UDP sockets read in batches and send without node:dgram's per-datagram cost, through a
   * small addon built on first use (native-udp.ts); without a compiler they stay on dgram.
   * TANDEM_NATIVE_UDP=0 turns it off for the process. @default true
   */
  nativeUdp?: boolean;
}

export const DEFAULT_PORTS: Record<TransportName, number> = { udp: 5060, tcp: 5060, tls: 5061 };

export function isReliable(t: TransportName): boolean {
  return t !== 'udp';
}

/** Maps a Via transport token (`UDP`, `TCP`, `TLS`) to ours; undefined for others (SCTP, WS). */
export function transportFromVia(token: string): TransportName | undefined {
  // The constants, not the lower-cased copy: endpoints built from a Via outlive the message
  // (a transaction's destination for 32 s), and one copy of "udp" each adds up at 2,000 calls/s.
  switch (token.toLowerCase()) {
    case 'udp':
      return 'udp';
    case 'tcp':
      return 'tcp';
    case 'tls':
      return 'tls';
    default:
      return undefined;
  }
}
