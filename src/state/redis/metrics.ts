/** Metrics of the Redis state layer, registered once in the process-wide registry. */
import { counter, histogram } from '../../util/metrics.js';

export const commandSeconds = histogram(
  'tandem_redis_command_duration_seconds',
  'Redis round trips, by command (pipeline: one outbox batch; script names for Lua scripts)',
  ['command'],
  [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
);

/**
 * Redis failures by kind: connect, lost, probe, not-primary, no-primary (connection);
 * timeout, command (a call or pipeline failed); write-rejected (the server refused an outbox
 * write for good, e.g. WRONGTYPE).
 */
export const redisErrors = counter('tandem_redis_errors_total', 'Redis failures, by kind', ['kind']);

export const connects = counter('tandem_redis_connects_total', 'Connections established to the Redis primary, by connection', ['connection']);

export const outboxDropped = counter('tandem_redis_outbox_dropped_total', 'Writes dropped because the outbox was full (oldest first)', ['outbox']);

export const outboxApplied = counter('tandem_redis_outbox_applied_total', 'Writes applied by Redis from the outbox', ['outbox']);

const durations = new Map<string, ReturnType<typeof commandSeconds.labels>>();

/** Records a round trip that started at `startMs` (performance.now()). */
export function observeCommand(command: string, startMs: number): void {
  let h = durations.get(command);
  if (!h) {
    h = commandSeconds.labels(command);
    durations.set(command, h);
  }
  h.observe((performance.now() - startMs) / 1000);
}
