/**
 * Hands out media port pairs (RTP even, RTCP = RTP + 1) from one range, to every worker, without
 * overlap. Released pairs wait in quarantine before reuse; free pairs are reused oldest first, so
 * a port stays unused as long as the range allows.
 */
export class PortAllocator {
  readonly #base: number;
  readonly #count: number;
  readonly #quarantineMs: number;
  /** FIFO ring of free slot indices. */
  readonly #free: Int32Array;
  #head = 0;
  #size = 0;
  /** 0 = free, 1 = in use, 2 = quarantined. */
  readonly #state: Uint8Array;
  /** 1 while the slot has an entry in the ring (a slot taken by {@link take} keeps a stale one until shifted). */
  readonly #inRing: Uint8Array;
  /** Quarantined slots in release order with their earliest reuse time. */
  #quarantine: { slot: number; until: number }[] = [];
  #qHead = 0;

  constructor(portMin: number, portMax: number, quarantineMs: number) {
    this.#base = portMin % 2 === 0 ? portMin : portMin + 1;
    this.#count = Math.max(0, Math.floor((portMax - this.#base + 1) / 2));
    this.#quarantineMs = quarantineMs;
    this.#free = new Int32Array(this.#count);
    this.#state = new Uint8Array(this.#count);
    this.#inRing = new Uint8Array(this.#count);
    for (let i = 0; i < this.#count; i++) this.#push(i);
  }

  /** RTP port of a slot. */
  portOf(slot: number): number {
    return this.#base + slot * 2;
  }

  /** Takes the least recently used free slot, or undefined when none is free. */
  takeAny(now = Date.now()): number | undefined {
    this.#expire(now);
    while (this.#size > 0) {
      const slot = this.#shift();
      if (this.#state[slot] === 0) {
        this.#state[slot] = 1;
        return slot;
      }
    }
    return undefined;
  }

  /** Takes the slot of this RTP port if it is free (takeover of a known session). */
  take(rtpPort: number, now = Date.now()): number | undefined {
    this.#expire(now);
    const off = rtpPort - this.#base;
    if (off < 0 || off % 2 !== 0 || off / 2 >= this.#count) return undefined;
    const slot = off / 2;
    if (this.#state[slot] !== 0) return undefined;
    // Its ring entry stays, stale, and is skipped when shifted (a takeover takes many slots: O(1) each).
    this.#state[slot] = 1;
    return slot;
  }

  /** Returns a slot; it becomes free after `quarantineMs` (0 = at once). */
  release(slot: number, quarantineMs = this.#quarantineMs, now = Date.now()): void {
    if (this.#state[slot] !== 1) return;
    if (quarantineMs <= 0) {
      this.#state[slot] = 0;
      this.#push(slot);
      return;
    }
    this.#state[slot] = 2;
    this.#quarantine.push({ slot, until: now + quarantineMs });
  }

  gauges(now = Date.now()): { total: number; inUse: number; quarantined: number } {
    this.#expire(now);
    let inUse = 0;
    let quarantined = 0;
    for (let i = 0; i < this.#count; i++) {
      if (this.#state[i] === 1) inUse++;
      else if (this.#state[i] === 2) quarantined++;
    }
    return { total: this.#count * 2, inUse: inUse * 2, quarantined: quarantined * 2 };
  }

  #expire(now: number): void {
    const q = this.#quarantine;
    // Entries with different quarantine lengths may be out of order; scan all that are due.
    let i = this.#qHead;
    while (i < q.length) {
      const e = q[i]!;
      if (e.until > now) break;
      if (this.#state[e.slot] === 2) {
        this.#state[e.slot] = 0;
        this.#push(e.slot);
      }
      i++;
    }
    this.#qHead = i;
    if (this.#qHead > 1024 && this.#qHead * 2 > q.length) {
      this.#quarantine = q.slice(this.#qHead);
      this.#qHead = 0;
    }
  }

  #push(slot: number): void {
    // A slot still in the ring (stale entry of a take()) is found there again once free.
    if (this.#inRing[slot] === 1 || this.#size >= this.#count) return;
    this.#inRing[slot] = 1;
    this.#free[(this.#head + this.#size) % this.#count] = slot;
    this.#size++;
  }

  #shift(): number {
    const slot = this.#free[this.#head]!;
    this.#head = (this.#head + 1) % this.#count;
    this.#size--;
    this.#inRing[slot] = 0;
    return slot;
  }
}
