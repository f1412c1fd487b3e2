/**
 * The `signalling` section of the Tandem config (registrar, auth, proxy, transports).
 * Validated once at start by src/cli/config.ts; flags of `tandem start` feed the same schema.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:0.0.0.0:5061`. */
export function parseListen(text: string): { transport: 'udp' | 'tcp' | 'tls'; address: string; port: number } | undefined {
  const m = /^(udp|tcp|tls):(\[[^\]]+\]|[^:]+):(\d{1,5})$/i.exec(text.trim());
  if (!m) return undefined;
  const address = m[2]!.replace(/^\[|\]$/g, '');
  const port = Number(m[3]);
  if (port > 65535 || isIP(address) === 0) return undefined;
  return { transport: m[1]!.toLowerCase() as 'udp' | 'tcp' | 'tls', address, port };
}

const listenSchema = z.string().refine((s) => parseListen(s) !== undefined, { message: 'expected transport:address:port, e.g. udp:127.0.0.1:5060 (transport udp, tcp or tls; address an IP literal)' });
const hostPortSchema = z.string().regex(/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port');

export const signallingConfigSchema = z
  .object({
    /** SIP listening points. @default ['udp:127.0.0.1:5060'] */
    listen: z.array(listenSchema).min(1).default(['udp:127.0.0.1:5060']),
    /** Host written into Via/Record-Route instead of the bound address (VIP). @default the bound address */
    advertise: z.string().optional(),
    /** Certificate and key files (PEM) for tls listening points. */
    tls: z.object({ cert: z.string(), key: z.string() }).strict().optional(),
    /** SIP domains served; the listening addresses are always served too. @default [] */
    domains: z.array(z.string().min(1)).default([]),
    /** Users file (CSV `user,password` / `user,ha1`, or YAML). */
    users: z.string().optional(),
    /** Routing script: a TypeScript/JavaScript module exporting `route(request, context)`. */
    routeScript: z.string().optional(),
    auth: z
      .object({
        /** Challenge REGISTER (401) and requests from local users (407). @default true */
        enabled: z.boolean().default(true),
        /** Digest realm. @default the first domain, else the first listening address */
        realm: z.string().optional(),
        /**
         * The cluster secret: HMAC key of stateless nonces, flow tokens and route tokens (the
         * proof in our Record-Route that an in-dialog request follows a route we issued). Share it
         * across a cluster; without it, calls set up before a restart cannot be ended through
         * the restarted node. @default random per process
         */
        secret: z.string().min(16, 'at least 16 characters').optional(),
        /** Nonce lifetime, seconds; older nonces get stale=true. @default 300 */
        nonceLifetimeSec: z.number().int().min(1).max(86_400).default(300),
        /**
         * Digest algorithms offered, one challenge each, in this order (RFC 8760 §2.4: a UAC uses
         * the first it supports). MD5 comes first by default for older UAs. Some (libre-based UAs
         * such as Debian's baresip 1.0) fail on any SHA-256 challenge at all: use `[MD5]` for them,
         * `[SHA-256]` when every phone supports it.
         * @default ['MD5', 'SHA-256']
         */
        algorithms: z.array(z.enum(['SHA-256', 'MD5', 'SHA-256-sess', 'MD5-sess'])).min(1).default(['MD5', 'SHA-256']),
        /** Failed authentications per source within failureWindowSec before it is blocked. @default 10 */
        maxFailures: z.number().int().min(1).default(10),
        /** @default 60 */
        failureWindowSec: z.number().int().min(1).default(60),
        /** How long a blocked source is ignored, seconds. @default 300 */
        blockSec: z.number().int().min(1).default(300),
        /**
         * Accept digest credentials without qop (RFC 2069 clients). Each nonce then serves one
         * request only, the replay protection qop's nonce-count gives otherwise. @default false
         */
        allowNoQop: z.boolean().default(false),
        /**
         * Bind each nonce to the IP address the challenge went to, so a spoofed source cannot be
         * made to fail authentication (and be blocked). Turn off only for clients whose address
         * changes between challenge and answer. @default true
         */
        bindNonceToSource: z.boolean().default(true),
        /**
         * Networks (CIDR) never blocked after failed authentications, besides the dispatcher's
         * destinations: NAT gateways, SBCs, peer nodes. Trust here exempts from blocking only,
         * never from authentication. @default []
         */
        trustedNetworks: z.array(z.string().refine((x) => isIP(x.split('/')[0] ?? '') !== 0, { message: 'expected an IP address or CIDR network' })).default([]),
      })
      .strict()
      .default({ enabled: true, nonceLifetimeSec: 300, algorithms: ['MD5', 'SHA-256'], maxFailures: 10, failureWindowSec: 60, blockSec: 300, allowNoQop: false, bindNonceToSource: true, trustedNetworks: [] }),
    registrar: z
      .object({
        /** Shorter non-zero registrations get 423 Interval Too Brief. @default 60 */
        minExpiresSec: z.number().int().min(1).default(60),
        /** Longer registrations are shortened to this. @default 3600 */
        maxExpiresSec: z.number().int().min(1).default(3600),
        /** When the REGISTER gives no expiry. @default 3600 */
        defaultExpiresSec: z.number().int().min(1).default(3600),
        /** Contacts per address-of-record. @default 10 */
        maxContactsPerAor: z.number().int().min(1).max(1000).default(10),
        /**
         * Plain REGISTERs over UDP are answered from the datagram's text, without building a
         * message object; the rest take the generic path. Off: every REGISTER takes the generic
         * path (same answers, more CPU). @default true
         */
        fastPath: z.boolean().default(true),
      })
      .strict()
      .default({ minExpiresSec: 60, maxExpiresSec: 3600, defaultExpiresSec: 3600, maxContactsPerAor: 10, fastPath: true }),
    proxy: z
      .object({
        /** Record-Route dialog-creating requests. @default true */
        recordRoute: z.boolean().default(true),
        /** Timer C: a ringing branch without a final response is cancelled after this, ms. @default 180000 */
        timerCMs: z.number().int().min(1000).default(180_000),
        /**
         * Cluster with ringing calls shared: provisional responses to an INVITE wait at most this
         * long for its record to reach Redis, ms (a peer can then finish the call). @default 100
         */
        earlyDurableWaitMs: z.number().int().min(0).max(60_000).default(100),
      })
      .strict()
      .default({ recordRoute: true, timerCMs: 180_000, earlyDurableWaitMs: 100 }),
    transaction: z
      .object({
        /** @default 500 */
        t1Ms: z.number().int().min(10).default(500),
        /** @default 4000 */
        t2Ms: z.number().int().min(10).default(4000),
        /** @default 5000 */
        t4Ms: z.number().int().min(10).default(5000),
        /**
         * How long finished transactions absorb retransmissions (Timers J, L, M, D), ms. Kamailio
         * keeps them 5 s (tm's wt_timer). @default 64*T1 (32 s, RFC 3261)
         */
        lingerMs: z.number().int().min(1000).max(600_000).optional(),
      })
      .strict()
      .default({ t1Ms: 500, t2Ms: 4000, t4Ms: 5000 }),
    mediaControl: z
      .object({
        /** Relay every call's media through a media node. @default true */
        enabled: z.boolean().default(true),
        /** External media nodes (ng UDP host:port); empty means the in-process node. @default [] */
        ng: z.array(hostPortSchema).default([]),
        /** ng request timeout, ms. @default 2000 */
        timeoutMs: z.number().int().min(100).default(2000),
      })
      .strict()
      .default({ enabled: true, ng: [], timeoutMs: 2000 }),
    accounting: z
      .object({
        /** JSON-lines file every call record is appended to (besides the Redis stream in a cluster). */
        file: z.string().optional(),
      })
      .strict()
      .default({}),
    /**
     * Worker processes sharing the listening points (`--workers N`); each call is held by one,
     * chosen by its Call-ID. 1 runs everything in one process. @default the number of cores
     * (1 when dispatcher sets are configured: rotation and call-load limits are per process)
     */
    workers: z.number().int().min(1).max(64).optional(),
    /**
     * Garbage-collection helper threads per process (Node's `--v8-pool-size`, src/util/gc-threads.ts):
     * forked workers are started with it; a single process reports when it was started with more.
     * @default the cores each process can count on less one, 1 to 4
     */
    gcThreads: z.number().int().min(1).max(16).optional(),
    /** SIGTERM: how long live transactions get to finish, ms. @default 3000 */
    shutdownGraceMs: z.number().int().min(0).max(60_000).default(3000),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const needsTls = cfg.listen.some((l) => l.toLowerCase().startsWith('tls:'));
    if (needsTls && !cfg.tls) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls listening point needs tls.cert and tls.key' });
    if (cfg.registrar.minExpiresSec > cfg.registrar.maxExpiresSec) {
      ctx.addIssue({ code: 'custom', path: ['registrar', 'minExpiresSec'], message: 'must not exceed registrar.maxExpiresSec' });
    }
  });

export type SignallingConfig = z.infer<typeof signallingConfigSchema>;
export type SignallingConfigInput = z.input<typeof signallingConfigSchema>;
