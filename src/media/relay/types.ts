/**
 * Public types of the RTP/RTCP relay engine (see relay-engine.ts). Shared by the control thread
 * and the forwarding workers; nothing here is per-packet.
 */

/** A UDP transport address. */
export interface Endpoint {
  address: string;
  port: number;
}

/** The two local ports of one leg: RTP on an even port, RTCP on the next odd one. */
export interface LegPorts {
  rtpPort: number;
  rtcpPort: number;
}

export type Side = 'a' | 'b';

/** Forwarding implementation asked for; see {@link RelayEngineOptions.forwarder}. */
export type ForwarderKind = 'auto' | 'native' | 'js';

/** Options of {@link RelayEngine}. */
export interface RelayEngineOptions {
  /** Local address the media sockets bind to, e.g. `127.0.0.1` or `0.0.0.0`. */
  interface: string;
  /**
   * Address to put in SDP for this node (a VIP or public address).
   * @default `interface`, or the first non-internal IPv4 address when `interface` is `0.0.0.0`
   */
  advertisedAddress?: string;
  /** First port of the media range (inclusive). Rounded up to even. */
  portMin: number;
  /** Last port of the media range (inclusive). */
  portMax: number;
  /**
   * Number of forwarding worker threads; calls are sharded over them.
   * @default os.availableParallelism()
   */
  workers?: number;
  /**
   * A released port is not handed out again for this long, so late packets of the old call
   * cannot leak into a new one.
   * @default 10_000
   */
  quarantineMs?: number;
  /**
   * SO_RCVBUF / SO_SNDBUF asked for each media socket (the kernel caps it at net.core.rmem_max /
   * wmem_max).
   * @default 262_144
   */
  socketBufferBytes?: number;
  /**
   * What forwards packets: `native`, the C++ fast path (native/forwarder.cc; epoll threads with
   * recvmmsg/sendmmsg, compiled on first use); `js`, worker threads with Node dgram sockets;
   * `auto`, native when it builds and loads, else js. When native cannot be had the engine logs
   * one warning and uses js.
   * @default 'auto'
   */
  forwarder?: ForwarderKind;
  /**
   * Cluster nodes: media sockets are made so that a hot standby can bind a call's ports while the
   * holder still has them (same address on one host: SO_REUSEPORT; an address not here yet:
   * IP_FREEBIND), and the kernel gives every packet to the socket bound first, the holder's;
   * the standby's receives once that one is closed (the holder died or let the call go). Native
   * forwarder only (Node's dgram has no SO_REUSEPORT); see {@link RelayEngine.sharesPorts}.
   * @default false
   */
  sharedPorts?: boolean;
  /** Called on the control thread for rare engine events (latching); never for each packet. */
  onEvent?: (event: RelayEvent) => void;
}

/** A rare event a worker reports to the control thread. */
export type RelayEvent =
  | { type: 'latched'; id: number; callKey: string; side: Side; kind: 'rtp' | 'rtcp'; endpoint: Endpoint }
  | { type: 'worker-exit'; worker: number; code: number };

/** Result value of {@link RelayEngine.allocatePair}. */
export interface AllocatedPair {
  /** Engine-wide pair id; pass it to setPeer/release/stats. */
  id: number;
  /** Address to advertise in SDP for both legs. */
  address: string;
  /** Local ports of leg a: packets the a-side peer sends arrive here and are sent out of leg b. */
  a: LegPorts;
  /** Local ports of leg b. */
  b: LegPorts;
  /** Worker thread that owns the four sockets. */
  worker: number;
}

/** Options of {@link RelayEngine.allocatePair}. */
export interface AllocateOptions {
  /**
   * Ask for exactly these ports (session takeover on a standby node). Fails with
   * NG_ERR_PORT_UNAVAILABLE if any is in use or quarantined.
   */
  ports?: { a: LegPorts; b: LegPorts };
  /**
   * Native forwarder: the sockets are opened and bound by the forwarding thread, so the caller's
   * thread makes no system call; resolves once they are bound (a millisecond or two). For pairs
   * nobody is waiting for (spares). Ignored with `ports` and by the JS workers.
   * @default false
   */
  background?: boolean;
}

/** Where to send what comes out of one leg's sockets. */
export interface PeerSpec {
  /** The peer's RTP address from SDP (c= address and m= port). */
  rtp?: Endpoint;
  /** The peer's RTCP address (a=rtcp, else RTP port + 1). Defaults to `rtp` port + 1. */
  rtcp?: Endpoint;
  /**
   * Where the peer was latched already (a takeover: the node that ran the pair before learned it):
   * sent to at once and treated as latched (no new latching, `strictSource` holds to it). Only with
   * `latch`.
   */
  latchedRtp?: Endpoint;
  latchedRtcp?: Endpoint;
}

/** How packets from one peer are accepted. */
export interface PeerOptions {
  /**
   * Symmetric RTP: learn the peer's real address from the first packet it sends to this leg
   * (RTP and RTCP separately) and send to that address from then on (NAT traversal).
   * When false (asymmetric), always send to the SDP address.
   */
  latch: boolean;
  /**
   * Drop (and count) packets whose source is not the expected one: the latched address when
   * latching, else the SDP address.
   */
  strictSource: boolean;
  /** RTP clock rate for jitter, when the payload type is dynamic. @default 8000 */
  clockRate?: number;
}

/** Why a received packet was not forwarded. */
export type DropReason =
  /** Shorter than a header or wrong version. */
  | 'malformed'
  /** The other side's peer address is not known yet. */
  | 'noPeer'
  /** strictSource and the packet came from somewhere else. */
  | 'strictSource'
  /** sendto() failed (buffer full, unreachable). */
  | 'sendError';

export const DROP_REASONS: readonly DropReason[] = ['malformed', 'noPeer', 'strictSource', 'sendError'];

/** Per-SSRC statistics computed from RTP headers (RFC 3550 A.1, A.3, A.8). */
export interface SsrcStats {
  ssrc: number;
  packets: number;
  bytes: number;
  /** Expected minus received (RFC 3550 A.3 cumulative lost; may be negative with duplicates). */
  lost: number;
  /** Highest extended sequence number seen (cycles << 16 | seq). */
  extendedHighestSeq: number;
  /** Sequence number of the most recent packet. */
  lastSeq: number;
  /** RTP timestamp of the most recent packet. */
  lastTimestamp: number;
  /** Interarrival jitter in timestamp units (RFC 3550 A.8). */
  jitter: number;
  /** The same in milliseconds (jitter / clockRate * 1000). */
  jitterMs: number;
  clockRate: number;
  /** Unix time of the last packet, ms. */
  lastPacketMs: number;
}

/** Counters of one socket (RTP or RTCP) of a leg; packets are counted where they are received. */
export interface ChannelStats {
  /** Packets received and accepted on this socket. */
  packets: number;
  bytes: number;
  /** Packets received and dropped (any reason). */
  errors: number;
  /** Packets forwarded out of the other leg. */
  forwarded: number;
  /** Unix time of the last accepted packet, ms; 0 if none. */
  lastPacketMs: number;
  /** Where the other leg currently sends this peer's traffic (SDP or latched address). */
  endpoint?: Endpoint;
  /** True once `endpoint` was learned from a received packet. */
  latched: boolean;
}

export interface LegStats {
  ports: LegPorts;
  rtp: ChannelStats;
  rtcp: ChannelStats;
  /** Streams received on this leg (from this leg's peer). */
  ssrcs: SsrcStats[];
}

/** Result value of {@link RelayEngine.stats}. */
export interface PairStats {
  id: number;
  callKey: string;
  createdMs: number;
  a: LegStats;
  b: LegStats;
}

export interface TrafficCounters {
  packets: number;
  bytes: number;
  errors: number;
}

/** Node-wide counters, for ng `statistics` and /metrics. Monotonic except the gauges. */
export interface RelayTotals {
  workers: number;
  /** Gauge: pairs allocated now. */
  pairs: number;
  /** Accepted packets received (RTP / RTCP). */
  rtp: TrafficCounters;
  rtcp: TrafficCounters;
  /** Packets sent out. */
  forwarded: number;
  dropped: Record<DropReason, number>;
  /** Gauges over the port range. */
  ports: { total: number; inUse: number; quarantined: number };
  /** Pairs ever allocated / released, allocation failures for lack of ports. */
  allocated: number;
  released: number;
  exhausted: number;
}
