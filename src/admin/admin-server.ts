import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { counter, metricsRegistry } from '../util/metrics.js';
import { startRuntimeMetrics } from '../util/runtime-metrics.js';
import { createLogger, rateLimitedLog } from '../util/logger.js';

const log = createLogger('admin');
const unauthorized = counter('tandem_admin_unauthorized_total', 'Admin API requests refused for a missing or wrong bearer token', ['reason']);

export interface AdminServerOptions {
  /** Address to listen on, e.g. 127.0.0.1. Off loopback a token is required. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /**
   * Bearer token (`Authorization: Bearer <token>`). Required for every write (POST, PUT, PATCH,
   * DELETE, WebSocket upgrades) and, when the server is bound off loopback, for every read but
   * `/health`. Without a token the API is read-only.
   */
  token?: string;
  /** Called before listening so each role can add its routes (status, dispatcher sets, sessions). */
  routes?: Array<(app: FastifyInstance) => void>;
  /**
   * The Prometheus text /metrics serves. @default this process's registry (a node of several
   * worker processes passes the sum over them)
   */
  metrics?: () => Promise<string>;
}

/** Whether an address (or host name `localhost`) is a loopback one. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * Checks the bearer token of an admin request (HTTP or WebSocket upgrade). `write`: the request
 * changes something (or drives a media node); reads need the token only off loopback.
 */
export class AdminAuth {
  readonly #tokenHash: Buffer | undefined;
  readonly #readsNeedToken: boolean;

  constructor(token: string | undefined, loopbackOnly: boolean) {
    // Compared as hashes: equal lengths for timingSafeEqual whatever the client sends.
    this.#tokenHash = token ? sha256(token) : undefined;
    this.#readsNeedToken = !loopbackOnly;
  }

  /** undefined when allowed, else why not (`missing`, `wrong`, `no-token-configured`). */
  refuse(req: Pick<IncomingMessage, 'headers'>, write: boolean, url: string): string | undefined {
    if (!write && (!this.#readsNeedToken || isPublicPath(url))) return undefined;
    if (!this.#tokenHash) return 'no-token-configured';
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !/^bearer\s+/i.test(h)) return 'missing';
    const given = sha256(h.replace(/^bearer\s+/i, '').trim());
    return timingSafeEqual(given, this.#tokenHash) ? undefined : 'wrong';
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * WebSocket paths that only read (the dashboard's live feed): allowed like a GET. Every other
 * upgrade (ng over WebSocket drives a media node) counts as a write.
 */
const READ_UPGRADE_PATHS = new Set(['/api/live']);

/**
 * Paths readable off loopback without a token: the health probe and the dashboard's static page
 * and assets, which hold no data (the data comes from /api/*, which needs the token there).
 */
function isPublicPath(url: string): boolean {
  return url === '/health' || url === '/' || /^\/dashboard\/[\w.-]+$/.test(url);
}

/**
 * HTTP admin API shared by every role: /health, /metrics (Prometheus) plus role routes. Bound to
 * loopback unless told otherwise; off loopback it refuses to start without a token.
 */
export async function startAdminServer(opts: AdminServerOptions): Promise<{ app: FastifyInstance; port: number; close: () => Promise<void> }> {
  startRuntimeMetrics();
  const loopback = isLoopbackHost(opts.host);
  if (!loopback && !opts.token) {
    throw new Error(`admin API on ${opts.host} (not loopback) needs a token: set admin.token / --admin-token / TANDEM_ADMIN_TOKEN`);
  }
  const auth = new AdminAuth(opts.token, loopback);
  const app = Fastify({ logger: false });
  app.addHook('onRequest', async (req, reply) => {
    const url = req.url.split('?')[0] ?? req.url;
    const why = auth.refuse(req.raw, !READ_METHODS.has(req.method), url);
    if (!why) return;
    unauthorized.inc({ reason: why });
    rateLimitedLog('admin-unauthorized', (s) => log.warn({ method: req.method, url, source: req.ip, reason: why, suppressed: s }, 'admin request refused'));
    await reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="tandem-admin"')
      .send({ error: why === 'no-token-configured' ? 'this admin API is read-only: configure a token to allow changes' : 'bearer token required' });
  });
  app.get('/health', async () => ({ status: 'ok', pid: process.pid, uptimeSec: Math.round(process.uptime()) }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metricsRegistry.contentType);
    return opts.metrics ? opts.metrics() : metricsRegistry.metrics();
  });
  for (const add of opts.routes ?? []) add(app);
  guardUpgrades(app, auth);
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return { app, port, close: () => app.close() };
}

/**
 * WebSocket upgrades (ng over WebSocket on a media node) bypass Fastify's hooks: the role's
 * upgrade listeners are put behind the same token check (an upgrade counts as a write, except
 * the read-only live feed of the dashboard).
 */
function guardUpgrades(app: FastifyInstance, auth: AdminAuth): void {
  const listeners = app.server.listeners('upgrade') as Array<(req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
  if (listeners.length === 0) return;
  app.server.removeAllListeners('upgrade');
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const why = auth.refuse(withSubprotocolToken(req), !READ_UPGRADE_PATHS.has(path), path);
    if (why) {
      unauthorized.inc({ reason: why });
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="tandem-admin"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    for (const l of listeners) l.call(app.server, req, socket, head);
  });
}

/**
 * A browser cannot set headers on a WebSocket: the dashboard offers its token as a subprotocol
 * `bearer.<base64url(token)>` (next to `tandem-live`, the one the server picks), read here as if
 * it were the Authorization header.
 */
function withSubprotocolToken(req: IncomingMessage): Pick<IncomingMessage, 'headers'> {
  if (req.headers.authorization) return req;
  const protocols = req.headers['sec-websocket-protocol'];
  if (typeof protocols !== 'string') return req;
  const p = protocols.split(',').map((x) => x.trim()).find((x) => x.startsWith('bearer.'));
  if (!p) return req;
  const token = Buffer.from(p.slice('bearer.'.length), 'base64url').toString('utf8');
  return { headers: { ...req.headers, authorization: `Bearer ${token}` } };
}
