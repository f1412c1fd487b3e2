/**
 * The Tandem config file: one zod schema with a section per role, validated once at start;
 * every problem is reported with its field path, then the result is frozen. File values are
 * overridden by command-line flags before validation, so both go through the same checks.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { signallingConfigSchema } from '../signalling/config-schema.js';
import { dispatcherConfigSchema } from '../signalling/dispatcher/config-schema.js';
import { MediaConfigSchema } from '../media/config-schema.js';
import { clusterConfigSchema, stateConfigSchema } from '../cluster/config-schema.js';

export const tandemConfigSchema = z
  .object({
    /** Log level: trace, debug, info, warn, error. @default 'info' */
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /** Admin HTTP (health, metrics, role routes), `host:port`; off when absent. */
    admin: z.string().regex(/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port').optional(),
    /**
     * Bearer token of the admin API: required for every write and, off loopback, for every read
     * but /health. Without it the API is read-only and may bind only to loopback. Also taken from
     * the TANDEM_ADMIN_TOKEN environment variable.
     */
    adminToken: z.string().min(16, 'at least 16 characters').optional(),
    /** This node in its cluster: id, virtual addresses, how they move. */
    cluster: clusterConfigSchema.default(clusterConfigSchema.parse({})),
    /** Where shared state lives (Redis), memory when absent. */
    state: stateConfigSchema.default(stateConfigSchema.parse({})),
    signalling: signallingConfigSchema.default(signallingConfigSchema.parse({})),
    /** The in-process media node of `tandem start` (when no external nodes are named). */
    media: MediaConfigSchema.default(MediaConfigSchema.parse({})),
    dispatcher: dispatcherConfigSchema.default(dispatcherConfigSchema.parse({})),
  })
  .strict();

export type TandemConfig = z.infer<typeof tandemConfigSchema>;

/** Hints for renamed or misplaced options. */
const RENAMED: Record<string, string> = {
  'signalling.sip': 'use signalling.listen',
  'signalling.realm': 'use signalling.auth.realm',
  'signalling.usersFile': 'use signalling.users',
  'signalling.route': 'use signalling.routeScript',
  redis: 'use state.redis',
};

export type ConfigResult = { ok: true; value: Readonly<TandemConfig> } | { ok: false; errors: string[] };

/** Reads a YAML file (or returns {} without one). */
export function readConfigFile(path: string | undefined): { ok: true; value: Record<string, unknown> } | { ok: false; errors: string[] } {
  if (!path) return { ok: true, value: {} };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${path}: cannot read: ${err instanceof Error ? err.message : String(err)}`] };
  }
  try {
    const doc = parseYaml(text) as unknown;
    if (doc === null || doc === undefined) return { ok: true, value: {} };
    if (typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, errors: [`${path}: expected a mapping at the top level`] };
    return { ok: true, value: doc as Record<string, unknown> };
  } catch (err) {
    return { ok: false, errors: [`${path}: YAML: ${err instanceof Error ? err.message : String(err)}`] };
  }
}

/** Validates a raw config object; every error as `path: expectation`. */
export function validateConfig(raw: unknown): ConfigResult {
  const r = tandemConfigSchema.safeParse(raw);
  if (r.success) return { ok: true, value: deepFreeze(r.data) };
  const errors = r.error.issues.map((i) => {
    const path = i.path.join('.') || '(root)';
    if (i.code === 'unrecognized_keys') {
      return i.keys
        .map((k) => {
          const full = path === '(root)' ? k : `${path}.${k}`;
          return `${full}: unknown option${RENAMED[full] ? ` (${RENAMED[full]})` : ''}`;
        })
        .join('\n');
    }
    return `${path}: ${i.message}`;
  });
  return { ok: false, errors };
}

/** Sets `obj.a.b.c = value`, creating objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    if (!next || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
