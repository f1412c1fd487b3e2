import { z } from 'zod';
import { ALGORITHMS, HASH_KEYS } from './algorithms.js';

/** A back-end destination in a set. */
export const destinationSchema = z
  .object({
    /** SIP URI of the back-end, e.g. `sip:10.0.0.5:5060`. */
    uri: z.string().regex(/^sips?:[^\s]+$/i, 'a sip: or sips: URI'),
    /** Share for the weighted algorithms. @default 1 */
    weight: z.number().int().min(0).max(1_000_000).default(1),
    /** Lower is tried first by `priority` and in failover order. @default 0 */
    priority: z.number().int().default(0),
    /** Most concurrent calls for `call-load`; unset = unlimited. */
    maxCalls: z.number().int().min(1).optional(),
    /** Free-form attributes returned to the route script with the target. */
    attrs: z.record(z.string(), z.string()).default({}),
    /** Start state: `enabled`, `disabled` or `draining`. @default enabled */
    state: z.enum(['enabled', 'disabled', 'draining']).default('enabled'),
  })
  .strict();

/** A named destination set. */
export const destinationSetSchema = z
  .object({
    /** `round-robin`, `weighted` (smooth WRR), `hash`, `random`, `priority`, `call-load`. @default round-robin */
    algorithm: z.enum(ALGORITHMS).default('round-robin'),
    /** What `hash` keys on: `call-id`, `from-uri`, `to-uri`, `request-uri`. @default call-id */
    hashKey: z.enum(HASH_KEYS).default('call-id'),
    destinations: z.array(destinationSchema).default([]),
  })
  .strict();

/** The `dispatcher` section of the Tandem config file. */
export const dispatcherConfigSchema = z
  .object({
    /** Named sets; the route script dispatches to one by name (`context.dispatch('pbx')`). */
    sets: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'), destinationSetSchema).default({}),
    /**
     * Prefix table for the default route: a Request-URI user starting with `prefix` goes to `set`
     * (first match wins), e.g. `[{ prefix: '9', set: 'pbx' }]`. A route script can do the same with
     * `dispatch(context, set, request)`. @default []
     */
    routes: z
      .array(z.object({ prefix: z.string(), set: z.string(), algorithm: z.enum(ALGORITHMS).optional() }).strict())
      .default([]),
    probing: z
      .object({
        /** Probe with OPTIONS at all. @default true */
        enabled: z.boolean().default(true),
        /** Seconds between probes of one destination. @default 10 */
        intervalSec: z.number().min(1, 'at least 1 second').max(3600).default(10),
        /** A probe without a final response within this many ms fails. @default 4000 (capped at the interval) */
        timeoutMs: z.number().int().min(100).max(64_000).optional(),
        /** Consecutive failures that take a destination down (K). @default 3 */
        downAfter: z.number().int().min(1).max(100).default(3),
        /** Consecutive successes that bring it back up (M). @default 2 */
        upAfter: z.number().int().min(1).max(100).default(2),
        /** Final statuses that count as alive. @default [200] */
        okStatuses: z.array(z.number().int().min(100).max(699)).min(1).default([200]),
        /** From URI of the probes. @default sip:dispatcher@<first listening address> */
        fromUri: z.string().optional(),
      })
      .strict()
      .default({ enabled: true, intervalSec: 10, downAfter: 3, upAfter: 2, okStatuses: [200] }),
    failover: z
      .object({
        /** No provisional response within this: abandon the branch and try the next. @default 4000 */
        frTimerMs: z.number().int().min(100).max(300_000).default(4000),
        /** Provisional but no final response within this: CANCEL and try the next. @default 60000 */
        frInvTimerMs: z.number().int().min(100).max(3_600_000).default(60_000),
        /** Final statuses that try the next destination; `5xx` means every 500-599. @default ['5xx', 408] */
        statuses: z.array(z.union([z.number().int().min(300).max(699), z.literal('5xx')])).default(['5xx', 408]),
        /** Also mark a destination down when fr_inv_timer expires on it. @default false */
        markDownOnInviteTimeout: z.boolean().default(false),
        /**
         * When every enabled destination of a set is down, try them anyway rather than answer 503
         * (protects against an overload that times out every branch and marks all back-ends down).
         * @default true
         */
        tryAllWhenAllDown: z.boolean().default(true),
      })
      .strict()
      .default({ frTimerMs: 4000, frInvTimerMs: 60_000, statuses: ['5xx', 408], markDownOnInviteTimeout: false, tryAllWhenAllDown: true }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    cfg.routes.forEach((r, i) => {
      if (!(r.set in cfg.sets)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'set'], message: `no set named "${r.set}" in dispatcher.sets` });
    });
  });

export type DispatcherConfig = z.infer<typeof dispatcherConfigSchema>;
export type DispatcherConfigInput = z.input<typeof dispatcherConfigSchema>;

/** True when `status` is in the configured failover list. */
export function isFailoverStatus(status: number, statuses: DispatcherConfig['failover']['statuses']): boolean {
  for (const s of statuses) {
    if (s === '5xx' ? status >= 500 && status < 600 : s === status) return true;
  }
  return false;
}
