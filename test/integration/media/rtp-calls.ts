/**
 * Phones for media takeover tests: per call two UDP sockets (party A and party B) that send
 * G.711-sized RTP to the relay every `intervalMs` both ways and record, per direction, what
 * arrives: packets, the longest gap between two arrivals (inside the measurement window), the
 * first and last arrival, sequence jumps (lost packets) and SSRC changes.
 */
import dgram from 'node:dgram';
import { rtpPacket } from './media-harness.js';

/** One direction of a call: a sender's packets as the other party receives them. */
export interface StreamStats {
  received: number;
  /** Longest gap between two arrivals since the window began, ms. */
  maxGapMs: number;
  /** When the longest gap began (the arrival before it), epoch ms. */
  maxGapAtMs: number;
  lastArrivalMs: number;
  /** Packets received since the window began. */
  receivedInWindow: number;
  /** Sequence numbers skipped (packets that never arrived), over the whole run. */
  seqLost: number;
  /** Packets whose SSRC was not the sender's. */
  foreignSsrc: number;
}

interface Stream extends StreamStats {
  ssrc: number;
  seq: number;
  lastSeq: number;
  /** Relay port this stream is sent to. */
  toPort: number;
  from: dgram.Socket;
}

export interface RtpCall {
  a: dgram.Socket;
  b: dgram.Socket;
  aPort: number;
  bPort: number;
}

export class RtpCalls {
  readonly calls: RtpCall[] = [];
  /** Per call: [A -> B, B -> A]. */
  readonly streams: Array<[Stream, Stream]> = [];
  #timer: NodeJS.Timeout | undefined;
  #windowStartMs = 0;
  readonly relayAddress: string;
  /** Address the phones' sockets bind to. */
  readonly localAddress: string;
  sent = 0;

  constructor(relayAddress: string, localAddress = '127.0.0.1') {
    this.relayAddress = relayAddress;
    this.localAddress = localAddress;
  }

  /** Binds the two sockets of a new call on the local address. */
  async add(): Promise<RtpCall> {
    const open = (): Promise<dgram.Socket> =>
      new Promise((r) => {
        const s = dgram.createSocket('udp4');
        s.bind(0, this.localAddress, () => r(s));
      });
    const a = await open();
    const b = await open();
    const call = { a, b, aPort: a.address().port, bPort: b.address().port };
    this.calls.push(call);
    return call;
  }

  /** The relay ports each side sends to (A: the port in the answer; B: the port in the offer). */
  connect(i: number, toA: number, toB: number): void {
    const c = this.calls[i]!;
    const mk = (from: dgram.Socket, toPort: number, ssrc: number): Stream => ({
      ssrc, seq: 1000, lastSeq: -1, toPort, from, received: 0, maxGapMs: 0, maxGapAtMs: 0, lastArrivalMs: 0, receivedInWindow: 0, seqLost: 0, foreignSsrc: 0,
    });
    const ab = mk(c.a, toA, 0x10000 + i * 2);
    const ba = mk(c.b, toB, 0x10000 + i * 2 + 1);
    this.streams[i] = [ab, ba];
    const onArrival = (st: Stream) => (msg: Buffer) => {
      if (msg.length < 12) return;
      const now = Date.now();
      if (msg.readUInt32BE(8) !== st.ssrc) {
        st.foreignSsrc++;
        return;
      }
      const seq = msg.readUInt16BE(2);
      if (st.lastSeq >= 0) {
        const jump = (seq - st.lastSeq - 1) & 0xffff;
        if (jump > 0 && jump < 0x8000) st.seqLost += jump;
      }
      st.lastSeq = seq;
      if (this.#windowStartMs > 0 && st.lastArrivalMs > 0) {
        const gap = now - st.lastArrivalMs;
        if (gap > st.maxGapMs) {
          st.maxGapMs = gap;
          st.maxGapAtMs = st.lastArrivalMs;
        }
      }
      if (now >= this.#windowStartMs && this.#windowStartMs > 0) st.receivedInWindow++;
      st.received++;
      st.lastArrivalMs = now;
    };
    c.b.on('message', onArrival(ab));
    c.a.on('message', onArrival(ba));
  }

  /** Starts sending on every connected call, every `intervalMs`. */
  start(intervalMs = 20): void {
    this.#timer = setInterval(() => {
      for (const pair of this.streams) {
        if (!pair) continue;
        for (const st of pair) {
          const seq = st.seq++ & 0xffff;
          st.from.send(rtpPacket(seq, st.ssrc, seq * 160), st.toPort, this.relayAddress);
          this.sent++;
        }
      }
    }, intervalMs);
  }

  /**
   * Starts a measurement window now: gaps are measured from the last arrival before it, so a
   * stream that stalls just before the window still shows its whole gap.
   */
  openWindow(): void {
    this.#windowStartMs = Date.now() - 1;
    for (const pair of this.streams) for (const st of pair ?? []) {
      st.maxGapMs = 0;
      st.receivedInWindow = 0;
    }
  }

  /** Every stream, both directions of every call. */
  all(): StreamStats[] {
    return this.streams.flatMap((p) => (p ? [p[0], p[1]] : []));
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  close(): void {
    this.stop();
    for (const c of this.calls) {
      c.a.close();
      c.b.close();
    }
  }
}

/** p-th quantile (0..1) of numbers. */
export function quantile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
