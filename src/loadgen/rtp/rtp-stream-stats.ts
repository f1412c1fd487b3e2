/**
 * Receiver statistics of one RTP stream per RFC 3550 appendix A.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                           timestamp                           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                             SSRC                              |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
export class RtpStreamStats {
  received = 0;
  /** Packets that were not RTP version 2 or shorter than the fixed header. */
  invalid = 0;
  #baseSeq = -1;
  /** RFC 3550 A.1: sequence number cycles (multiple of 2^16) and highest sequence number seen. */
  #cycles = 0;
  #maxSeq = 0;
  #jitter = 0;
  #lastTransit = 0;
  #lastArrivalMs = -1;
  #maxGapMs = 0;
  #clockRate: number;

  constructor(clockRate = 8000) {
    this.#clockRate = clockRate;
  }

  /** Feeds one datagram arrived at `arrivalMs` (monotonic clock). Returns false if it is not RTP. */
  onPacket(buf: Buffer, arrivalMs: number): boolean {
    if (buf.length < 12 || buf[0]! >> 6 !== 2) {
      this.invalid++;
      return false;
    }
    const seq = buf.readUInt16BE(2);
    const ts = buf.readUInt32BE(4);
    this.received++;
    if (this.#baseSeq < 0) {
      this.#baseSeq = seq;
      this.#maxSeq = seq;
    } else {
      const delta = (seq - this.#maxSeq) & 0xffff;
      if (delta > 0 && delta < 0x8000) {
        // in order (possibly after a gap); wrapping past 65535 adds a cycle
        if (seq < this.#maxSeq) this.#cycles += 0x10000;
        this.#maxSeq = seq;
      }
      // duplicates and late packets only count as received
    }
    // RFC 3550 A.8: D(i,j) = (Rj - Ri) - (Sj - Si); J += (|D| - J) / 16, in timestamp units
    const arrivalTs = (arrivalMs * this.#clockRate) / 1000;
    const transit = arrivalTs - ts;
    if (this.#lastArrivalMs >= 0) {
      let d = transit - this.#lastTransit;
      // timestamps wrap at 2^32
      if (d > 0x80000000) d -= 0x100000000;
      else if (d < -0x80000000) d += 0x100000000;
      this.#jitter += (Math.abs(d) - this.#jitter) / 16;
      const gap = arrivalMs - this.#lastArrivalMs;
      if (gap > this.#maxGapMs) this.#maxGapMs = gap;
    }
    this.#lastTransit = transit;
    this.#lastArrivalMs = arrivalMs;
    return true;
  }

  /** RFC 3550 A.3: extended max - base + 1. */
  get expected(): number {
    return this.#baseSeq < 0 ? 0 : this.#cycles + this.#maxSeq - this.#baseSeq + 1;
  }

  /** Never negative (duplicates can make received exceed expected). */
  get lost(): number {
    return Math.max(0, this.expected - this.received);
  }

  get jitterMs(): number {
    return (this.#jitter * 1000) / this.#clockRate;
  }

  get maxGapMs(): number {
    return this.#maxGapMs;
  }

  get lastArrivalMs(): number {
    return this.#lastArrivalMs;
  }
}
