import { describe, expect, it } from 'vitest';
import { RtpStreamStats } from '../../../src/rtp/stream-stats.js';

/** Feeds packets 20 ms apart with timestamps 160 apart (G.711, 8 kHz). */
function feed(s: RtpStreamStats, seqs: number[], opts: { startTs?: number; jitterMs?: (i: number) => number } = {}): void {
  seqs.forEach((seq, i) => {
    const ts = ((opts.startTs ?? 1000) + (seq - seqs[0]!) * 160) >>> 0;
    s.update(seq & 0xffff, ts, 172, 1000 + i * 20 + (opts.jitterMs?.(i) ?? 0));
  });
}

describe('RtpStreamStats (RFC 3550 A.1/A.3/A.8)', () => {
  it('counts packets and bytes, no loss, no jitter on a perfect stream', () => {
    const s = new RtpStreamStats(1, 8000);
    feed(s, [10, 11, 12, 13, 14]);
    expect(s.packets).toBe(5);
    expect(s.bytes).toBe(860);
    expect(s.lost).toBe(0);
    expect(s.jitter).toBeCloseTo(0, 6);
    expect(s.lastSeq).toBe(14);
  });

  it('counts a deliberate sequence gap as loss', () => {
    const s = new RtpStreamStats(1, 8000);
    const seqs = [1, 2, 3, 7, 8, 9]; // 4, 5, 6 lost
    seqs.forEach((seq, i) => s.update(seq, seq * 160, 172, i * 20));
    expect(s.lost).toBe(3);
    expect(s.extendedMax).toBe(9);
  });

  it('handles sequence wrap-around', () => {
    const s = new RtpStreamStats(1, 8000);
    feed(s, [65533, 65534, 65535, 65536, 65537, 65539]); // 65538 (= 2) lost
    expect(s.cycles).toBe(65536);
    expect(s.extendedMax).toBe(65536 + 3);
    expect(s.lost).toBe(1);
  });

  it('reordered and duplicate packets are received, not lost', () => {
    const s = new RtpStreamStats(1, 8000);
    [1, 3, 2, 4, 4].forEach((seq, i) => s.update(seq, seq * 160, 172, i * 20));
    expect(s.lost).toBe(-1); // A.3: duplicates make loss negative
    expect(s.extendedMax).toBe(4);
  });

  it('a large jump is confirmed as a restart by the next packet in sequence', () => {
    const s = new RtpStreamStats(1, 8000);
    [100, 101, 102].forEach((seq, i) => s.update(seq, seq * 160, 172, i * 20));
    s.update(40000, 0, 172, 80);
    expect(s.extendedMax).toBe(102); // not yet believed
    s.update(40001, 160, 172, 100);
    expect(s.baseSeq).toBe(40001);
    expect(s.lost).toBe(0);
  });

  it('jitter grows when arrival deviates from the timestamps', () => {
    const s = new RtpStreamStats(1, 8000);
    const seqs = Array.from({ length: 200 }, (_, i) => i);
    feed(s, seqs, { jitterMs: (i) => (i % 2 === 0 ? 0 : 10) });
    // |D| is 10 ms = 80 units on each packet; J converges to 80.
    expect(s.jitter).toBeGreaterThan(70);
    expect(s.jitter).toBeLessThanOrEqual(80);
  });

  it('timestamp wrap does not show as jitter', () => {
    const s = new RtpStreamStats(1, 8000);
    feed(s, [1, 2, 3, 4, 5, 6], { startTs: 4294967295 - 320 });
    expect(s.jitter).toBeCloseTo(0, 6);
  });
});
