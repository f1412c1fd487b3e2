import type { Destination, Health } from './destination.js';

/** Separate down/up thresholds, so one lost probe does not flap a destination. */
export interface ProbeThresholds {
  /** Consecutive failed probes that take an `up` destination `down`. */
  downAfter: number;
  /** Consecutive successful probes that bring a `down` destination back `up`. */
  upAfter: number;
}

/** Classified result of one OPTIONS probe. */
export type ProbeOutcome =
  | { outcome: 'ok'; status: number }
  | { outcome: 'bad-status'; status: number }
  | { outcome: 'timeout' }
  | { outcome: 'error'; reason: string };

/**
 * Applies one probe outcome to the destination's counters and returns the new health when it
 * changes (undefined otherwise). Pure apart from the counters on `d`; the caller logs and counts.
 *
 *   up   --(downAfter consecutive failures)--> down
 *   down --(upAfter consecutive successes)--> up
 */
export function applyProbeOutcome(d: Destination, o: ProbeOutcome, t: ProbeThresholds): Health | undefined {
  if (o.outcome === 'ok') {
    d.consecutiveFailures = 0;
    d.consecutiveSuccesses++;
    if (d.health === 'down' && d.consecutiveSuccesses >= t.upAfter) return 'up';
    return undefined;
  }
  d.consecutiveSuccesses = 0;
  d.consecutiveFailures++;
  if (d.health === 'up' && d.consecutiveFailures >= t.downAfter) return 'down';
  return undefined;
}
