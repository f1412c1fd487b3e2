import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import type { DispatcherConfig } from './config-schema.js';

export { Dispatcher, DispatchPlan, hashKeyOf } from './dispatcher.js';
export type { DispatchOptions, DispatchRequest, DispatchTarget, BranchFailure, DispatcherOptions } from './dispatcher.js';
export { Prober } from './prober.js';
export type { ProbeSender, ProbeReply, ProberOptions, ProbeClock } from './prober.js';
export { dispatcherConfigSchema, isFailoverStatus } from './config-schema.js';
export type { DispatcherConfig, DispatcherConfigInput } from './config-schema.js';
export { ALGORITHMS, HASH_KEYS } from './algorithms.js';
export type { Algorithm, HashKey } from './algorithms.js';
export type { DestinationSpec, AdminState, Health } from './destination.js';

/** Builds a dispatcher with the sets of a validated config section. */
export function dispatcherFromConfig(cfg: DispatcherConfig, opts: Omit<DispatcherOptions, 'thresholds' | 'markDownOnInviteTimeout' | 'tryAllWhenAllDown'> = {}): Dispatcher {
  const d = new Dispatcher({
    ...opts,
    thresholds: { downAfter: cfg.probing.downAfter, upAfter: cfg.probing.upAfter },
    markDownOnInviteTimeout: cfg.failover.markDownOnInviteTimeout,
    tryAllWhenAllDown: cfg.failover.tryAllWhenAllDown,
  });
  for (const [name, set] of Object.entries(cfg.sets)) {
    d.defineSet(name, set.algorithm, set.hashKey);
    for (const dest of set.destinations) {
      d.addDestination(name, {
        uri: dest.uri,
        weight: dest.weight,
        priority: dest.priority,
        attrs: dest.attrs,
        ...(dest.maxCalls !== undefined ? { maxCalls: dest.maxCalls } : {}),
      });
      if (dest.state !== 'enabled') d.setAdminState(name, dest.uri, dest.state);
    }
  }
  return d;
}
