/**
 * Receive statistics of one RTP source (SSRC), from RFC 3550 appendix A.1 (sequence number
 * validity and wrap-around), A.3 (expected and lost packets) and A.8 (interarrival jitter).
 * Called once per packet on the forwarding path: no allocation, integer arithmetic.
 */

/** RFC 3550 A.1: a jump of more than MAX_DROPOUT ahead is a restart, not loss. */
export const MAX_DROPOUT = 3000;
/** RFC 3550 A.1: up to MAX_MISORDER behind counts as a late or duplicate packet. */
export const MAX_MISORDER = 100;
const RTP_SEQ_MOD = 0x10000;

export class RtpStreamStats {
  readonly ssrc: number;
  /** Clock rate used to convert arrival times into timestamp units. */
  clockRate: number;
  packets = 0;
  bytes = 0;
  /** Highest sequence number seen (16 bits). */
  maxSeq = 0;
  /** Count of sequence number wraps, times 65536. */
  cycles = 0;
  baseSeq = 0;
  /** After a big jump: the sequence number that, if it comes next, confirms a restart. */
  badSeq = RTP_SEQ_MOD + 1;
  /** Received packets counted toward loss (A.3 `received`). */
  received = 0;
  lastSeq = 0;
  lastTimestamp = 0;
  /** Arrival of the last packet, performance.now() ms. */
  lastArrivalMs = 0;
  /** Relative transit time of the previous packet, timestamp units (A.8). */
  transit = 0;
  /** Interarrival jitter estimate, timestamp units (A.8), kept as a float. */
  jitter = 0;

  constructor(ssrc: number, clockRate: number) {
    this.ssrc = ssrc;
    this.clockRate = clockRate;
  }

  /** Highest extended sequence number (A.3 `extended_max`). */
  get extendedMax(): number {
    return this.cycles + this.maxSeq;
  }

  /** A.3: expected = extended_max - base_seq + 1; lost = expected - received. */
  get lost(): number {
    if (this.packets === 0) return 0;
    return this.extendedMax - this.baseSeq + 1 - this.received;
  }

  /**
   * Accounts one packet. `arrivalMs` is a monotonic clock in ms (fractions allowed).
   */
  update(seq: number, timestamp: number, bytes: number, arrivalMs: number): void {
    this.bytes += bytes;
    if (this.packets++ === 0) {
      this.#initSeq(seq);
      this.received = 1;
      this.transit = arrivalMs * (this.clockRate / 1000) - timestamp;
    } else {
      this.#updateSeq(seq);
      // A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si); J += (|D| - J) / 16. Timestamps wrap at 2^32:
      // the difference is taken modulo 2^32 so a wrap does not show as a huge jump.
      const arrivalTs = arrivalMs * (this.clockRate / 1000);
      const transit = arrivalTs - timestamp;
      let d = transit - this.transit;
      this.transit = transit;
      if (d > 2147483648) d -= 4294967296;
      else if (d < -2147483648) d += 4294967296;
      if (d < 0) d = -d;
      this.jitter += (d - this.jitter) / 16;
    }
    this.lastSeq = seq;
    this.lastTimestamp = timestamp;
    this.lastArrivalMs = arrivalMs;
  }

  #initSeq(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = RTP_SEQ_MOD + 1;
    this.cycles = 0;
  }

  /** RFC 3550 A.1 `update_seq`, without the probation phase (a relay forwards from the first packet). */
  #updateSeq(seq: number): void {
    const udelta = (seq - this.maxSeq) & 0xffff;
    if (udelta < MAX_DROPOUT) {
      // In order, with permissible gap.
      if (seq < this.maxSeq) this.cycles += RTP_SEQ_MOD;
      this.maxSeq = seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
      // The sequence number made a very large jump.
      if (seq === this.badSeq) {
        // Two sequential packets: assume the other side restarted without telling us.
        this.#initSeq(seq);
        this.received = 0;
      } else {
        this.badSeq = (seq + 1) & 0xffff;
        return;
      }
    }
    // else: duplicate or reordered packet; counted as received (A.3 allows negative loss).
    this.received++;
  }
}
