import { z } from 'zod';
import { isIP } from 'node:net';

/** `host:port`, `[v6]:port` or a bare port (host 127.0.0.1). Port 0 picks a free one. */
export function parseHostPort(text: string, defaultHost = '127.0.0.1'): { host: string; port: number } | undefined {
  const t = text.trim();
  let host = defaultHost;
  let portText = t;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(t);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else if (t.includes(':')) {
    const i = t.lastIndexOf(':');
    host = t.slice(0, i);
    portText = t.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535 || !isIP(host)) return undefined;
  return { host, port };
}

const hostPort = z.string().refine((s) => parseHostPort(s) !== undefined, { message: 'expected host:port (IP literal) or port' });

const cidr = z.string().refine((s) => isIP(s.split('/')[0] ?? '') !== 0, { message: 'expected an IP address or CIDR network' });

/**
 * Configuration of a media node (`tandem media`, and the in-process node of `tandem start`).
 * Flags, file and environment all feed this one schema; it is validated once at start.
 */
export const MediaConfigSchema = z
  .object({
    /** ng control over UDP, `host:port`. @default '127.0.0.1:2223' */
    ng: hostPort.default('127.0.0.1:2223'),
    /** ng control over TCP, `host:port`; off when absent. @default undefined */
    ngTcp: hostPort.optional(),
    /** Networks allowed to send ng commands (CIDR). @default ['127.0.0.0/8', '::1/128'] (loopback only) */
    ngAllow: z.array(cidr).min(1).default(['127.0.0.0/8', '::1/128']),
    /** Address media sockets bind to. @default '127.0.0.1' */
    interface: z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IP address' }).default('127.0.0.1'),
    /** Address written into SDP (VIP / public address). @default the interface address */
    advertise: z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IP address' }).optional(),
    /** Media port range `min-max` (RTP even, RTCP = RTP + 1). @default '30000-39999' */
    rtpPorts: z
      .string()
      .regex(/^\d{1,5}-\d{1,5}$/, 'expected min-max')
      .refine((s) => {
        const [a, b] = s.split('-').map(Number) as [number, number];
        return a >= 1024 && b <= 65535 && b - a >= 3;
      }, { message: 'range must be within 1024-65535 and hold at least 4 ports' })
      .default('30000-39999'),
    /** Forwarding worker threads. @default one per core */
    workers: z.number().int().min(1).max(64).optional(),
    /**
     * What forwards packets: `native` (C++ fast path, compiled on first use), `js` (worker
     * threads with Node sockets), or `auto` (native when it builds, else js).
     * @default the relay engine's default (`RelayEngineOptions.forwarder`)
     */
    forwarder: z.enum(['auto', 'native', 'js']).optional(),
    /** Calls beyond this many get `load limit`; 0 = unlimited. @default 0 */
    maxSessions: z.number().int().min(0).default(0),
    /** A call with no media for this long is torn down, seconds. @default 60 */
    noMediaTimeoutSec: z.number().positive().default(60),
    /** Hard limit on a call's duration, seconds. @default 10800 (3 h) */
    maxSessionSec: z.number().positive().default(10_800),
    /** Relay pairs bound ahead of need so offers do not wait for a worker; they use ports from the range. @default 4 */
    sparePairs: z.number().int().min(0).max(64).default(4),
    /** A released media port is not reused for this long, ms. @default 10000 */
    portQuarantineMs: z.number().int().min(0).default(10_000),
    /** ng reply cache generation, seconds (replies kept 1-2 generations). @default 30 */
    cookieCacheSec: z.number().positive().default(30),
  })
  .strict();

/** Input form (defaults optional). */
export type MediaConfigInput = z.input<typeof MediaConfigSchema>;
/** Validated config with defaults applied. */
export type MediaConfig = Readonly<z.output<typeof MediaConfigSchema>>;

/** Validates config; on failure returns every problem, one per line. */
export function validateMediaConfig(input: MediaConfigInput): { ok: true; value: MediaConfig } | { ok: false; reason: string; code: string } {
  const r = MediaConfigSchema.safeParse(input);
  if (!r.success) {
    const reason = r.error.issues.map((i) => `media.${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
    return { ok: false, reason, code: 'MEDIA_ERR_CONFIG' };
  }
  return { ok: true, value: Object.freeze(r.data) };
}
