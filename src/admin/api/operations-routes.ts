/**
 * The operations API of a node (installs on the admin server through its `routes` option). Every
 * list is paginated, every page bounded (`limit` at most 100); no request runs unbounded work.
 *
 * - `GET /api/node`                               this node: id, pid, uptime, figures, VIPs held
 * - `GET /api/cluster`                            the cluster as this node sees it: nodes, heartbeats, VIP holders, Redis
 * - `GET /api/events?after=SEQ&limit=N`           the timeline (node down, VIP moved, lease taken, PBX, Redis)
 * - `GET /api/series?points=N`                    live series per node (calls/s, active calls, registrations, media packets/s)
 * - `GET /api/dialogs?cursor=C&limit=N`           dialogs of the cluster (shared store); `?callId=` looks one up on this node
 * - `GET /api/registrations?aor=AOR`              bindings of one AOR; `?q=TEXT&cursor=C&limit=N` pages through AORs containing TEXT
 * - `GET /api/media/sessions?offset=O&limit=N`    media sessions of this node's relay
 * - `GET /api/trace`, `POST /api/trace/enable|disable`   SIP tracing (HEP export) state and switch (the POSTs need the token)
 * - WebSocket `/api/live`                         a snapshot and the latest points every second, events as they happen
 */
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RedisState } from '../../state/redis/redis-state.js';
import type { Binding, DialogRecord } from '../../state/store.js';
import { counter } from '../../util/metrics.js';
import type { ClusterMonitor, ClusterSnapshot, SeriesPoint } from '../cluster-monitor.js';
import type { ClusterEvent, EventLog } from '../event-log.js';
import { intParam, limitParam, MAX_PAGE, strParam } from './paging.js';
import { scanRecords } from './shared-records-scan.js';

/** Path of the dashboard's live feed; a read (see admin-server.ts READ_UPGRADE_PATHS). */
export const LIVE_PATH = '/api/live';
/** Subprotocol of the live feed. */
export const LIVE_PROTOCOL = 'tandem-live';

const liveDropped = counter('tandem_admin_live_dropped_total', 'Live-feed messages not sent to a dashboard that did not keep up');

/** A tracer the API can show and switch (HepExporter). */
export interface TraceControl {
  readonly target: string;
  readonly enabled: boolean;
  readonly sent: number;
  setEnabled(on: boolean): void;
}

/** What a media node offers the API (`MediaNode.sessions`). */
export interface MediaSessionsSource {
  readonly size: number;
  callIds(limit?: number): string[];
  summaries(): Array<{ callId: string } & Record<string, unknown>>;
}

export interface OperationsRoutesOptions {
  monitor: ClusterMonitor;
  events: EventLog;
  /** This node's identity and configuration summary. */
  node: () => Record<string, unknown>;
  /** Dialogs this node tracks (lookup by Call-ID) and their counts. */
  dialogs?: { get(callId: string): DialogRecord | undefined; counts(): unknown };
  /** Location service (any store): bindings of one AOR. */
  location?: { getBindings(aor: string): Promise<Binding[]> };
  /** Shared state: dialogs and AORs of the whole cluster are paged from it. */
  state?: RedisState;
  media?: MediaSessionsSource;
  /** SIP tracing (HEP export), switchable at run time. */
  trace?: TraceControl;
  /** Live-feed clients at most. @default 32 */
  maxLiveClients?: number;
}

/** Summaries are built for one page only while the relay holds at most this many calls. */
const MAX_SUMMARY_SCAN = 5000;

export function operationsRoutes(o: OperationsRoutesOptions): (app: FastifyInstance) => void {
  return (app) => {
    app.get('/api/node', async () => {
      const snap = o.monitor.snapshot;
      const me = snap.nodes.find((n) => n.self);
      return { ...o.node(), nodeId: snap.nodeId, cluster: snap.cluster, pid: process.pid, uptimeSec: Math.round(process.uptime()), stats: me?.stats, vips: me?.vips ?? [] };
    });

    app.get('/api/cluster', async () => o.monitor.snapshot);

    app.get<{ Querystring: Record<string, string> }>('/api/events', async (req) => {
      const after = intParam(req.query['after'], 0, 0, Number.MAX_SAFE_INTEGER);
      return { events: o.events.since(after, limitParam(req.query['limit'])) };
    });

    app.get<{ Querystring: Record<string, string> }>('/api/series', async (req) => ({ series: o.monitor.series(intParam(req.query['points'], 300, 1, 300)) }));

    app.get<{ Querystring: Record<string, string> }>('/api/dialogs', async (req, reply) => {
      const callId = strParam(req.query['callId'], 512);
      if (callId) {
        const d = o.dialogs?.get(callId);
        return { items: d ? [d] : [] };
      }
      const counts = o.dialogs?.counts();
      if (!o.state) return reply.code(501).send({ error: 'listing every dialog needs shared state (--redis); look one up with ?callId=', counts });
      if (!o.state.commands.ready) return reply.code(503).send({ error: 'Redis unreachable', counts });
      const page = await scanRecords<DialogRecord & { owner?: string }>(o.state, 'dlg', strParam(req.query['cursor'], 32) ?? '0', limitParam(req.query['limit']), (f, meta) => {
        const text = f.get('rec');
        if (!text) return undefined;
        try {
          return { ...(JSON.parse(text) as DialogRecord), ...(meta.owner ? { owner: meta.owner } : {}) };
        } catch {
          return undefined;
        }
      });
      return { ...page, counts };
    });

    app.get<{ Querystring: Record<string, string> }>('/api/registrations', async (req, reply) => {
      const aor = strParam(req.query['aor'], 512);
      if (aor) {
        if (!o.location) return reply.code(501).send({ error: 'no registrar on this node' });
        const bindings = (await o.location.getBindings(aor)).slice(0, MAX_PAGE);
        return { items: bindings.length ? [{ aor, bindings }] : [] };
      }
      if (!o.state) return reply.code(501).send({ error: 'listing every registration needs shared state (--redis); search one AOR with ?aor=sip:user@domain' });
      if (!o.state.commands.ready) return reply.code(503).send({ error: 'Redis unreachable' });
      const now = Date.now();
      return scanRecords(
        o.state,
        'loc',
        strParam(req.query['cursor'], 32) ?? '0',
        limitParam(req.query['limit']),
        (f, meta) => {
          const bindings: Binding[] = [];
          for (const [k, v] of f) {
            if (!k.startsWith('b:') || bindings.length >= MAX_PAGE) continue;
            try {
              const b = JSON.parse(v) as Binding;
              if (b.expiresAtMs > now) bindings.push(b);
            } catch {
              /* a field this version cannot read */
            }
          }
          return bindings.length ? { aor: meta.id, owner: meta.owner, bindings } : undefined;
        },
        strParam(req.query['q'], 256),
      );
    });

    app.get<{ Querystring: Record<string, string> }>('/api/media/sessions', async (req, reply) => {
      const m = o.media;
      if (!m) return reply.code(501).send({ error: 'no media relay in this process' });
      const offset = intParam(req.query['offset'], 0, 0, 1_000_000);
      const limit = limitParam(req.query['limit']);
      const ids = m.callIds(offset + limit).slice(offset);
      let items: unknown[] = ids.map((callId) => ({ callId }));
      if (m.size <= MAX_SUMMARY_SCAN) {
        const want = new Set(ids);
        items = m.summaries().filter((s) => want.has(s.callId));
      }
      return { total: m.size, offset, items, ...(offset + ids.length < m.size ? { nextOffset: offset + ids.length } : {}) };
    });

    const traceView = () => (o.trace ? { configured: true, target: o.trace.target, enabled: o.trace.enabled, sent: o.trace.sent } : { configured: false, enabled: false });
    app.get('/api/trace', async () => traceView());
    // A write: needs the token like every POST.
    app.post<{ Params: { action: string } }>('/api/trace/:action', async (req, reply) => {
      if (!o.trace) return reply.code(409).send({ error: 'no tracing configured (start with --hep udp:HOST:PORT)' });
      if (req.params.action !== 'enable' && req.params.action !== 'disable') return reply.code(400).send({ error: 'action must be enable or disable' });
      o.trace.setEnabled(req.params.action === 'enable');
      return traceView();
    });

    attachLiveFeed(app, o);
  };
}

/** Payload of one live-feed message. */
export type LiveMessage =
  | { type: 'hello'; snapshot: ClusterSnapshot; series: Record<string, SeriesPoint[]>; events: ClusterEvent[] }
  | { type: 'tick'; snapshot: ClusterSnapshot; points: Record<string, SeriesPoint> }
  | { type: 'event'; event: ClusterEvent };

/** The dashboard's WebSocket: pushes, never reads (incoming messages are ignored). */
function attachLiveFeed(app: FastifyInstance, o: OperationsRoutesOptions): void {
  // The dashboard asks for `tandem-live` (and may carry its token as a `bearer.` subprotocol).
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024, handleProtocols: (protocols) => (protocols.has(LIVE_PROTOCOL) ? LIVE_PROTOCOL : false) });
  const max = o.maxLiveClients ?? 32;
  const send = (ws: WebSocket, msg: LiveMessage): void => {
    // A dashboard that does not read cannot make the node buffer without bound.
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > 1_000_000) {
      liveDropped.inc();
      return;
    }
    ws.send(JSON.stringify(msg));
  };
  const offSnapshot = o.monitor.onSnapshot((snapshot) => {
    if (wss.clients.size === 0) return;
    const points: Record<string, SeriesPoint> = {};
    for (const [id, s] of Object.entries(o.monitor.series(1))) if (s[0]) points[id] = s[0];
    for (const ws of wss.clients) send(ws, { type: 'tick', snapshot, points });
  });
  const onEvent = (event: ClusterEvent): void => {
    for (const ws of wss.clients) send(ws, { type: 'event', event });
  };
  o.events.on('event', onEvent);
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? '').split('?')[0] !== LIVE_PATH) return; // another role's upgrade
    if (wss.clients.size >= max) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate());
      ws.on('message', () => undefined);
      send(ws, { type: 'hello', snapshot: o.monitor.snapshot, series: o.monitor.series(), events: o.events.since(0, 100) });
    });
  });
  app.addHook('onClose', async () => {
    offSnapshot();
    o.events.off('event', onEvent);
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
}
