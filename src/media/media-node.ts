import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { NG_MAX_MESSAGE_BYTES } from '../ng/ng-message.js';
import { createLogger } from '../util/logger.js';
import { gauge } from '../util/metrics.js';
import type { NgRequest } from '../ng/ng-request.js';
import { RelayEngine, type RelayEngineOptions, type RelayTotals } from './relay/relay-engine.js';
import { NgServer, type NgCommandHandler, type NgSource } from './ng-server/ng-server.js';
import { SessionManager, type EndReason } from './sessions/session-manager.js';
import { warmUpNgPathOnce } from './sessions/warm-up.js';
import { effectiveMaxSessions, parseHostPort, parsePortRange, validateMediaConfig, type MediaConfig, type MediaConfigInput } from './config-schema.js';

const log = createLogger('media-node');

/** A running media node. */
export interface MediaNode {
  /** Bound ng UDP port (useful with port 0). */
  ngPort: number;
  /** ng UDP host. */
  ngHost: string;
  /** Bound ng TCP port, when TCP is on. */
  ngTcpPort?: number;
  /** Address written into SDP. */
  advertisedAddress: string;
  config: MediaConfig;
  sessions: SessionManager;
  relay: RelayEngine;
  /** Adds `GET /sessions`, `GET /media/statistics`, ng over HTTP (`POST /ng`, `POST /ng-plain`, `GET /ping`) and WebSocket (`ng.rtpengine.com`) to an admin HTTP server. */
  adminRoutes: (app: FastifyInstance) => void;
  /** Stops ng, ends all calls, stops the relay workers. */
  close: () => Promise<void>;
}

/** Hooks of {@link createMediaCore} for a node in a media cluster (cluster/media-cluster-node.ts). */
export interface MediaCoreHooks {
  /** Passed to the SessionManager: every change of a call (replication). */
  onSessionChange?: (callId: string, ended: EndReason | undefined) => void;
  /** Calls served by this node (`sessionsown`), when it runs several cores (VIPs). @default the core's calls */
  ownSessions?: () => number;
  /** Calls mirrored from other nodes and not served here (`sessionsforeign`). @default 0 */
  foreignSessions?: () => number;
  /** Extra `statistics` keys (cluster state). */
  extraStatistics?: () => Record<string, unknown>;
  /** Call-IDs of calls mirrored from other nodes, listed by `list` after this node's own. */
  foreignCallIds?: () => string[];
  /** Commands are served only once this resolves (a takeover still binding its calls' ports). */
  gate?: () => Promise<void> | undefined;
}

/** Relay + sessions + the ng command handler, without the ng sockets. */
export interface MediaCore {
  config: MediaConfig;
  relay: RelayEngine;
  sessions: SessionManager;
  handler: NgCommandHandler;
  statistics: () => Promise<Record<string, unknown>>;
  /** The ng server whose counters `statistics` reports (set once it runs). */
  setNgServer: (server: NgServer | undefined) => void;
  close: () => Promise<void>;
}

/** Starts the relay workers and the session manager of a media node; ng is the caller's. `relayOptions`: what a cluster node adds (`sharedPorts`). */
export async function createMediaCore(config: MediaConfig, hooks: MediaCoreHooks = {}, relayOptions: Pick<RelayEngineOptions, 'sharedPorts'> = {}): Promise<MediaCore> {
  const { portMin, portMax } = parsePortRange(config.rtpPorts);
  let sessionsRef: SessionManager | undefined;
  const relay = new RelayEngine({
    onEvent: (e) => {
      if (e.type === 'worker-exit') sessionsRef?.onWorkerExit(e.worker);
      else if (e.type === 'latched') sessionsRef?.onLatched(e.id, e.side, e.kind, e.endpoint);
    },
    interface: config.interface,
    ...(config.advertise ? { advertisedAddress: config.advertise } : {}),
    portMin,
    portMax,
    ...(config.workers ? { workers: config.workers } : {}),
    ...(config.forwarder ? { forwarder: config.forwarder } : {}),
    quarantineMs: config.portQuarantineMs,
    ...relayOptions,
  });
  // The warm-up yields between its calls, so it runs while the relay's threads start.
  const warm = config.warmUpCalls > 0 ? warmUpNgPathOnce({ calls: config.warmUpCalls, advertisedAddress: config.advertise ?? config.interface, sparePairs: config.sparePairs }) : undefined;
  try {
    await relay.start();
  } finally {
    const w = await warm?.catch((err: unknown) => log.warn({ err }, 'ng warm-up failed'));
    if (w) log.info({ calls: w.calls, ms: Math.round(w.ms) }, 'ng path warmed up');
  }
  const sessions = new SessionManager({
    relay,
    maxSessions: effectiveMaxSessions(config),
    sparePairs: config.sparePairs,
    noMediaTimeoutMs: config.noMediaTimeoutSec * 1000,
    maxSessionMs: config.maxSessionSec * 1000,
    ...(hooks.onSessionChange ? { onChange: hooks.onSessionChange } : {}),
  });
  sessionsRef = sessions;
  const startedMs = Date.now();
  let lastSample: { atMs: number; totals: RelayTotals } | undefined;
  let ngServer: NgServer | undefined;

  const statistics = async (): Promise<Record<string, unknown>> => {
    const t = await relay.totals();
    const now = Date.now();
    const prev = lastSample;
    lastSample = { atMs: now, totals: t };
    const dt = prev ? Math.max(0.001, (now - prev.atMs) / 1000) : Math.max(0.001, (now - startedMs) / 1000);
    const p0 = prev?.totals;
    const packets = t.rtp.packets + t.rtcp.packets;
    const bytes = t.rtp.bytes + t.rtcp.bytes;
    const errors = t.rtp.errors + t.rtcp.errors;
    const pp = p0 ? p0.rtp.packets + p0.rtcp.packets : 0;
    const pb = p0 ? p0.rtp.bytes + p0.rtcp.bytes : 0;
    const pe = p0 ? p0.rtp.errors + p0.rtcp.errors : 0;
    const counts = Object.fromEntries(ngServer?.commandCounts ?? []);
    const foreign = hooks.foreignSessions?.() ?? 0;
    const own = hooks.ownSessions?.() ?? sessions.size;
    return {
      result: 'ok',
      statistics: {
        currentstatistics: {
          sessionsown: own,
          sessionsforeign: foreign,
          sessionstotal: own + foreign,
          sessionstakenover: sessions.adoptedCount,
          transcodedmedia: 0,
          packetrate: Math.round((packets - pp) / dt),
          byterate: Math.round((bytes - pb) / dt),
          errorrate: Math.round((errors - pe) / dt),
        },
        totalstatistics: {
          uptime: Math.round((now - startedMs) / 1000),
          managedsessions: sessions.totals.managed,
          takenoversessions: sessions.totals.adopted,
          rejectedsessions: sessions.totals.rejected,
          timeoutsessions: sessions.totals.timeout,
          finaltimeoutsessions: sessions.totals.hardLimit,
          regularterminatedsessions: sessions.totals.deleted,
          relayedpackets: packets,
          relayedbytes: bytes,
          relayedpacketerrors: errors,
          forwardedpackets: t.forwarded,
          portsexhausted: t.exhausted,
          portsinuse: t.ports.inUse,
        },
        controlstatistics: {
          proxies: [
            {
              proxy: 'all',
              pingcount: counts['ping'] ?? 0,
              offercount: counts['offer'] ?? 0,
              answercount: counts['answer'] ?? 0,
              deletecount: counts['delete'] ?? 0,
              querycount: counts['query'] ?? 0,
              listcount: counts['list'] ?? 0,
              statisticscount: counts['statistics'] ?? 0,
              errorcount: ngServer?.errorCount ?? 0,
            },
          ],
        },
        ...(hooks.extraStatistics?.() ?? {}),
      },
    };
  };

  type Reply = Record<string, unknown>;
  // Synchronous where the command is (no promise turn on the way back to the ng server).
  const serve = (req: NgRequest): Reply | Promise<Reply> => {
    switch (req.command) {
      case 'ping':
        return { result: 'pong' };
      case 'offer':
        return sessions.offer(req);
      case 'answer':
        return sessions.answer(req);
      case 'delete':
        return sessions.delete(req);
      case 'query':
        return sessions.query(req);
      case 'list': {
        const own = sessions.list(req);
        if (!hooks.foreignCallIds) return own;
        const limit = req.limit ?? 32;
        const calls = own['calls'] as string[];
        for (const id of hooks.foreignCallIds()) {
          if (calls.length >= limit) break;
          if (!calls.includes(id)) calls.push(id);
        }
        return own;
      }
      case 'statistics':
        return statistics();
      default:
        return { result: 'error', 'error-reason': 'Unrecognized command' };
    }
  };
  const handler = (req: NgRequest, _source: NgSource): Reply | Promise<Reply> => {
    const gate = hooks.gate?.();
    return gate ? gate.then(() => serve(req)) : serve(req);
  };

  let closing: Promise<void> | undefined;
  return {
    config,
    relay,
    sessions,
    handler,
    statistics,
    setNgServer: (server) => (ngServer = server),
    close: () =>
      (closing ??= (async () => {
        if (metricsRelay === relay) metricsRelay = undefined;
        sessions.close();
        await relay.stop();
      })()),
  };
}

/**
 * Starts a media node: relay workers, session manager and ng server (UDP, optionally TCP).
 * Used by `tandem media` and in-process by `tandem start`, which then talks to it with
 * `NgClient` from src/ng/ng-client.ts (signalling and media only ever talk over ng):
 *
 * ```ts
 * const node = await startMediaNode({ ng: '127.0.0.1:0', interface: '127.0.0.1', rtpPorts: '30000-39999' });
 * const ng = new NgClient({ host: node.ngHost, port: node.ngPort });
 * ```
 * Throws on invalid config (all problems listed) or when a port cannot be bound.
 */
export async function startMediaNode(input: MediaConfigInput = {}): Promise<MediaNode> {
  const v = validateMediaConfig(input);
  if (!v.ok) throw new Error(v.reason);
  const config = v.value;
  const core = await createMediaCore(config);
  const { relay, sessions, handler, statistics } = core;

  const udp = parseHostPort(config.ng)!;
  const tcp = config.ngTcp ? parseHostPort(config.ngTcp) : undefined;
  const started = await NgServer.start({ udp, ...(tcp ? { tcp } : {}), allow: config.ngAllow, cookieCacheMs: config.cookieCacheSec * 1000, handler });
  if (!started.ok) {
    await core.close();
    throw new Error(started.reason);
  }
  const ngServer = started.value;
  core.setNgServer(ngServer);
  registerRelayMetrics(relay);
  log.info({ ng: `${udp.host}:${ngServer.udpPort}`, ngTcp: ngServer.tcpPort, interface: config.interface, advertise: relay.advertisedAddress, rtpPorts: config.rtpPorts, maxSessions: sessions.limits.maxSessions, maxSessionSec: config.maxSessionSec || 'off' }, 'media node started');

  const wsServers: WebSocketServer[] = [];
  /** ng over WebSocket (subprotocols `ng.rtpengine.com` and `ng-plain.rtpengine.com`) on an HTTP server. */
  const attachWebSocket = (app: FastifyInstance): void => {
    const wss = new WebSocketServer({ noServer: true, maxPayload: NG_MAX_MESSAGE_BYTES });
    wsServers.push(wss);
    app.server.on('upgrade', (req, socket, head) => {
      const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
      const proto = offered.find((p) => p === 'ng.rtpengine.com' || p === 'ng-plain.rtpengine.com');
      if (!proto) return; // another role's upgrade, or none: not ours
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        const src: NgSource = { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0, transport: 'ws' };
        const plain = proto === 'ng-plain.rtpengine.com';
        ws.on('message', (data, isBinary) => {
          const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
          const cookie = plain ? `ws-${randomUUID()}` : '';
          const msg = plain ? Buffer.concat([Buffer.from(`${cookie} `, 'latin1'), buf]) : buf;
          void ngServer.handle(msg, src).then((out) => {
            if (!out) return ws.close(1008, 'forbidden');
            if (ws.readyState === ws.OPEN) ws.send(plain ? out.subarray(cookie.length + 1) : out, { binary: isBinary });
          });
        });
        ws.on('error', () => ws.terminate());
      });
    });
  };

  let closing: Promise<void> | undefined;
  return {
    ngPort: ngServer.udpPort!,
    ngHost: udp.host,
    ...(ngServer.tcpPort !== undefined ? { ngTcpPort: ngServer.tcpPort } : {}),
    advertisedAddress: relay.advertisedAddress,
    config,
    sessions,
    relay,
    adminRoutes: (app) => {
      // Bounded: ?offset=&limit= (limit at most 1000, default 100).
      app.get<{ Querystring: { offset?: string; limit?: string } }>('/sessions', async (req) => {
        const offset = Math.max(0, Number(req.query.offset) || 0);
        const limit = Math.min(1000, Math.max(1, Number(req.query.limit) || 100));
        return { total: sessions.size, offset, limit, sessions: sessions.summaries(offset, limit) };
      });
      app.get('/media/statistics', async () => (await statistics())['statistics']);
      // ng over HTTP as rtpengine serves it: POST /ng (cookie + dictionary), POST /ng-plain (dictionary
      // only, bencode or JSON), GET /ping. Same allow-list, cache and metrics as UDP.
      app.get('/ping', async (_req, reply) => reply.type('text/plain').send('pong'));
      attachWebSocket(app);
      void app.register(async (sub) => {
        sub.removeAllContentTypeParsers();
        sub.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: NG_MAX_MESSAGE_BYTES }, (_req, body, done) => done(null, body));
        const source = (req: FastifyRequest): NgSource => ({ address: req.ip, port: req.socket.remotePort ?? 0, transport: 'http' });
        sub.post('/ng', async (req, reply) => {
          const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const out = await ngServer.handle(body, source(req));
          if (!out) return reply.code(403).send();
          return reply.type('application/x-rtpengine-ng').send(out);
        });
        sub.post('/ng-plain', async (req, reply) => {
          const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const cookie = `http-${randomUUID()}`;
          const out = await ngServer.handle(Buffer.concat([Buffer.from(`${cookie} `, 'latin1'), body]), source(req));
          if (!out) return reply.code(403).send();
          const dict = out.subarray(cookie.length + 1);
          return reply.type(dict[0] === 0x7b ? 'application/json' : 'application/x-rtpengine-ng').send(dict);
        });
      });
    },
    close: () =>
      (closing ??= (async () => {
        await ngServer.close();
        for (const wss of wsServers) {
          for (const c of wss.clients) c.terminate();
          wss.close();
        }
        await core.close();
        log.info('media node stopped');
      })()),
  };
}

let metricsRelay: RelayEngine | undefined;

/** Exposes relay counters on /metrics (read from the engine at scrape time). */
export function registerRelayMetrics(relay: RelayEngine): void {
  metricsRelay = relay;
  const read = async (pick: (t: RelayTotals) => number, g: { set: (v: number) => void }): Promise<void> => {
    if (!metricsRelay) return;
    try {
      g.set(pick(await metricsRelay.totals()));
    } catch {
      /* relay stopping */
    }
  };
  const defs: Array<[string, string, (t: RelayTotals) => number]> = [
    ['tandem_media_rtp_packets', 'RTP packets received and accepted (counter)', (t) => t.rtp.packets],
    ['tandem_media_rtp_bytes', 'RTP bytes received and accepted (counter)', (t) => t.rtp.bytes],
    ['tandem_media_rtcp_packets', 'RTCP packets received and accepted (counter)', (t) => t.rtcp.packets],
    ['tandem_media_forwarded_packets', 'packets forwarded (counter)', (t) => t.forwarded],
    ['tandem_media_dropped_packets', 'packets dropped: malformed, no peer, strict source, send error (counter)', (t) => Object.values(t.dropped).reduce((a, b) => a + b, 0)],
    ['tandem_media_ports_in_use', 'media ports allocated', (t) => t.ports.inUse],
    ['tandem_media_ports_exhausted', 'allocations refused for lack of ports (counter)', (t) => t.exhausted],
  ];
  for (const [name, help, pick] of defs) {
    gauge(name, help, [], async function collect() {
      await read(pick, this);
    });
  }
}
