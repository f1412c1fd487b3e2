/**
 * What a call looks like outside the node that runs it: the plain data a standby needs to carry
 * it on (see SessionManager.exportCall / adopt). Replication (../cluster/) stores it in Redis as
 * a versioned record.
 */
import type { Endpoint, LegPorts } from '../relay/types.js';

/** Counters of one socket of a leg, as last read from the relay. */
export interface ChannelCounters {
  packets: number;
  bytes: number;
  errors: number;
  /** Unix time of the last accepted packet, ms; 0 if none. */
  lastPacketMs: number;
}

/** One RTP stream received on a leg. */
export interface SsrcCounters {
  ssrc: number;
  packets: number;
  bytes: number;
  lost: number;
  lastSeq: number;
  lastTimestamp: number;
  jitterMs: number;
  lastPacketMs: number;
}

export interface LegCounters {
  rtp: ChannelCounters;
  rtcp: ChannelCounters;
  ssrcs: SsrcCounters[];
}

/** Counters of a relay pair: leg a (faces party A) and leg b. */
export interface SlotCounters {
  a: LegCounters;
  b: LegCounters;
}

/** Where one side's media goes, as signalled, and what the relay latched since. */
export interface PeerExport {
  /** Signalled RTP address (SDP, received-from or media-address). */
  rtp?: Endpoint;
  rtcp?: Endpoint;
  /** Symmetric RTP (latching) on; off with `asymmetric`. */
  latch: boolean;
  /** `strict-source`. */
  strict: boolean;
  /** Address the relay learned from the peer's first RTP packet. */
  latchedRtp?: Endpoint;
  latchedRtcp?: Endpoint;
}

export interface MediaExport {
  /** m= line index (0-based). */
  index: number;
  type: string;
  protocol: string;
  rtcpMux: boolean;
  /** Local ports of leg a and leg b (on the node's media address). */
  ports: { a: LegPorts; b: LegPorts };
  advertised: { a?: Endpoint; b?: Endpoint };
  peer: { a?: PeerExport; b?: PeerExport };
  counters?: SlotCounters;
}

export interface PartyExport {
  tag: string;
  label?: string;
  createdMs: number;
}

export interface DialogueExport {
  a: PartyExport;
  b?: PartyExport;
  answered: boolean;
  createdMs: number;
  lastSignalMs: number;
  media: MediaExport[];
}

export interface CallExport {
  callId: string;
  createdMs: number;
  lastSignalMs: number;
  dialogues: DialogueExport[];
}
