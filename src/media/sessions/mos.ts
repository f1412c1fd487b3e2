/**
 * MOS estimate from loss, jitter and round-trip time, a simplified ITU-T G.107 E-model for
 * G.711 with packet-loss concealment:
 *
 *   effective latency Leff = RTT/2 + 2 * jitter + 10 ms
 *   delay impairment  Id   = Leff / 40              (Leff < 160 ms)
 *                            (Leff - 120) / 10      (otherwise)
 *   loss impairment   Ie   = 2.5 * loss%
 *   R   = 93.2 - Id - Ie, clamped to 0..100
 *   MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R), clamped to 1..4.5 (G.107 Annex B)
 *
 * Returned as MOS x 10 rounded to an integer (10..45), the unit rtpengine reports and
 * Kamailio's rtpengine module reads.
 */
export function estimateMosX10(lossPercent: number, jitterMs: number, rttMs = 0): number {
  const leff = rttMs / 2 + 2 * Math.max(0, jitterMs) + 10;
  const id = leff < 160 ? leff / 40 : (leff - 120) / 10;
  const ie = 2.5 * Math.max(0, Math.min(100, lossPercent));
  const r = Math.max(0, Math.min(100, 93.2 - id - ie));
  const mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
  return Math.round(Math.max(1, Math.min(4.5, mos)) * 10);
}
