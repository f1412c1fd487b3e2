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
        return a >= 1024 && b <= 65535 && relayPairsIn(a, b) >= 1;
      }, { message: 'range must be within 1024-65535 and hold at least 4 ports from an even one (one call)' })
      .default('30000-39999'),
    /** Forwarding worker threads. @default one per core */
    workers: z.number().int().min(1).max(64).optional(),
    /**
     * What forwards packets: `native` (C++ fast path, compiled on first use), `js` (worker
     * threads with Node sockets), or `auto` (native when it builds, else js).
     * @default the relay engine's default (`RelayEngineOptions.forwarder`)
     */
    forwarder: z.enum(['auto', 'native', 'js']).optional(),
    /**
     * Media sessions beyond this many get `load limit` (or an error for clients that do not
     * announce `supports: ["load limit"]`). A call counts one, each fork of a call (an offer with
     * a new from-tag) one more. 0 = derive it from `rtpPorts` and `sparePairs` with
     * {@link deriveMaxSessions}, so that a node never accepts more calls than it has ports for;
     * there is no "unlimited" (a number above the derived one only turns `load limit` into
     * "Ran out of ports").
     * @default 0 (derived: 30000-39999 with 4 spare pairs gives 2496)
     */
    maxSessions: z.number().int().min(0).default(0),
    /** A call (or one fork of it) with no media and no signalling for this long is torn down, seconds. @default 60 */
    noMediaTimeoutSec: z.number().positive().default(60),
    /**
     * Hard limit on a call's duration, seconds, media or not; 0 = none. Off by default, like
     * rtpengine's `final-timeout`: a running call is never cut, `noMediaTimeoutSec` ends dead ones.
     * @default 0
     */
    maxSessionSec: z.number().min(0).default(0),
    /** Relay pairs bound ahead of need so offers do not wait for a worker; they use ports from the range. @default 4 */
    sparePairs: z.number().int().min(0).max(64).default(4),
    /** A released media port is not reused for this long, ms. @default 10000 */
    portQuarantineMs: z.number().int().min(0).default(10_000),
    /** ng reply cache generation, seconds (replies kept 1-2 generations). @default 30 */
    cookieCacheSec: z.number().positive().default(30),
    /**
     * Synthetic calls run through the ng path at start, before the first command is served, so that
     * the first real calls find it compiled (sessions/warm-up.ts; no port is taken, metrics are not
     * counted). 0 = none: the first ~2,000 calls then see a p99 of a few ms instead of under 1 ms.
     * @default 2000
     */
    warmUpCalls: z.number().int().min(0).max(100_000).default(2000),
  })
  .strict();

/** Ports one call needs per audio `m=` line: RTP and RTCP on each of its two legs. */
export const PORTS_PER_SESSION = 4;

/**
 * The session limit a port range supports: each session (one audio m= line) holds a relay pair
 * of {@link PORTS_PER_SESSION} ports (an even RTP port and RTP + 1 per leg), and `sparePairs`
 * pairs are kept bound ahead of need, so
 * `floor(even-aligned RTP/RTCP slots / 2) - sparePairs`, at least 1.
 * Calls with video (two m= lines) need twice the ports, so with those the range can run out
 * before the limit is reached ("Ran out of ports").
 */
export function deriveMaxSessions(portMin: number, portMax: number, sparePairs: number): number {
  return Math.max(1, relayPairsIn(portMin, portMax) - sparePairs);
}

/** Relay pairs (two RTP/RTCP port pairs each) a range holds, counted as PortAllocator does. */
function relayPairsIn(portMin: number, portMax: number): number {
  const base = portMin % 2 === 0 ? portMin : portMin + 1;
  const slots = Math.max(0, Math.floor((portMax - base + 1) / 2));
  return Math.floor(slots / (PORTS_PER_SESSION / 2));
}

/** `rtpPorts` as numbers. */
export function parsePortRange(rtpPorts: string): { portMin: number; portMax: number } {
  const [portMin, portMax] = rtpPorts.split('-').map(Number) as [number, number];
  return { portMin, portMax };
}

/** The session limit in force: `maxSessions` when set, else derived from the port range. */
export function effectiveMaxSessions(config: Pick<MediaConfig, 'maxSessions' | 'rtpPorts' | 'sparePairs'>): number {
  if (config.maxSessions > 0) return config.maxSessions;
  const { portMin, portMax } = parsePortRange(config.rtpPorts);
  return deriveMaxSessions(portMin, portMax, config.sparePairs);
}

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
