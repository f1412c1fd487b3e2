/**
 * Wires the operations side of a node: the cluster monitor, the event timeline, the operations
 * API, the dashboard and (when configured) the HEP exporter. `tandem start` calls it once and
 * adds the returned routes to its admin server.
 */
import type { FastifyInstance } from 'fastify';
import { RedisLeaseStore } from '../cluster/redis-lease-store.js';
import type { MediaNode } from '../media/media-node.js';
import type { Dispatcher } from '../signalling/dispatcher/dispatcher.js';
import type { SignallingNode } from '../signalling/signalling-node.js';
import type { RedisState } from '../state/redis/redis-state.js';
import { parseRedisUrl } from '../state/redis/redis-url.js';
import type { DialogStore, NodeRegistry } from '../state/store.js';
import { metricSum } from '../util/metrics.js';
import { operationsRoutes } from './api/operations-routes.js';
import { ClusterMonitor, type NodeFigures, type PbxStat } from './cluster-monitor.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import { EventLog } from './event-log.js';
import type { HepExporter } from './hep/hep-exporter.js';

export interface OperationsOptions {
  nodeId: string;
  clusterName: string;
  state?: RedisState;
  registry?: NodeRegistry;
  /** Redis URL as configured (only its kind is used: single or Sentinel). */
  redisUrl?: string;
  vips: string[];
  takeover: 'lease' | 'keepalived';
  /** VIPs held now (AddressTakeover.held()). */
  held: () => string[];
  signalling: SignallingNode;
  dispatcher: () => Dispatcher | undefined;
  dialogStore?: DialogStore;
  mediaNode?: MediaNode;
  /** Admin address `host:port` as configured. */
  admin?: string;
  /** HEP export, when configured: `/api/trace` shows it and turns it off and on. */
  hep?: HepExporter;
  /** Configuration summary shown by /api/node. */
  summary: Record<string, unknown>;
  /** INVITEs received by the node, when its SIP work runs elsewhere (workers); else this process's counter. */
  invitesTotal?: () => number;
}

export interface Operations {
  monitor: ClusterMonitor;
  events: EventLog;
  routes: Array<(app: FastifyInstance) => void>;
  close(): Promise<void>;
}


/** Mode and Sentinels of a Redis URL (never its credentials). */
function redisShape(url: string | undefined): { redisMode?: string; sentinels?: string[] } {
  if (!url) return {};
  const p = parseRedisUrl(url);
  if (!p.ok) return {};
  if (p.value.kind === 'single') return { redisMode: 'single' };
  return { redisMode: 'sentinel', sentinels: p.value.sentinels.map((s) => `${s.host}:${s.port}`) };
}

export function startOperations(o: OperationsOptions): Operations {
  const events = new EventLog(o.nodeId);
  const leases = o.state && o.takeover === 'lease' && o.vips.length ? new RedisLeaseStore(o.state.commands, o.clusterName) : undefined;
  const node = o.signalling;
  const collect = async (): Promise<NodeFigures> => {
    const counts = node.dialogs.counts();
    const pbx: PbxStat[] = [];
    for (const set of o.dispatcher()?.view() ?? []) {
      for (const d of set.destinations.slice(0, 64)) pbx.push({ set: set.name, uri: d.uri, up: d.health === 'up', state: `${d.admin}/${d.health}`, activeCalls: d.activeCalls });
    }
    let mediaPacketsTotal = 0;
    if (o.mediaNode) {
      try {
        const t = await o.mediaNode.relay.totals();
        mediaPacketsTotal = t.rtp.packets + t.rtcp.packets;
      } catch {
        /* relay stopping */
      }
    }
    return {
      invitesTotal: o.invitesTotal ? o.invitesTotal() : await metricSum('tandem_signalling_requests_total', { method: 'INVITE' }),
      activeCalls: counts.confirmed,
      earlyCalls: counts.early,
      registrations: node.location.size(),
      aors: node.location.aorCount(),
      transactions: node.transactions.size,
      mediaSessions: o.mediaNode?.sessions.size ?? 0,
      mediaPacketsTotal,
      draining: node.draining,
      sip: node.transport.listeningPoints.slice(0, 16).map((lp) => `${lp.transport}:${lp.address}:${lp.port}`),
      ...(o.admin ? { admin: o.admin } : {}),
      ...(o.dialogStore ? { replicatedDialogs: o.dialogStore.size() } : {}),
      pbx,
    };
  };
  const monitor = new ClusterMonitor({
    nodeId: o.nodeId,
    cluster: o.clusterName,
    ...(o.state ? { state: o.state } : {}),
    ...(o.registry ? { registry: o.registry } : {}),
    ...redisShape(o.redisUrl),
    vips: o.vips,
    ...(leases ? { leaseHolder: (vip: string) => leases.holder(vip) } : {}),
    held: o.held,
    collect,
    events,
  });
  monitor.start();
  const routes = [
    operationsRoutes({
      monitor,
      events,
      node: () => o.summary,
      dialogs: node.dialogs,
      location: node.location,
      ...(o.state ? { state: o.state } : {}),
      ...(o.mediaNode ? { media: o.mediaNode.sessions } : {}),
      ...(o.hep ? { trace: o.hep } : {}),
    }),
    dashboardRoutes(),
  ];
  return {
    monitor,
    events,
    routes,
    close: () => monitor.stop(),
  };
}

export interface MediaOperationsOptions {
  nodeId: string;
  clusterName: string;
  state: RedisState;
  redisUrl?: string;
  /** VIPs this media node serves or stands by for. */
  vips: string[];
  /** VIPs held now. */
  held: () => string[];
  /** ng `statistics` of the node (`{ statistics: { currentstatistics, totalstatistics } }`). */
  statistics: () => Promise<Record<string, unknown>>;
  /** ng address(es) for the node's card. */
  ng: string[];
  admin?: string;
  summary: Record<string, unknown>;
}

function numberAt(o: unknown, ...path: string[]): number {
  let v: unknown = o;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * The operations side of a media cluster node (`tandem media --vip`): it heartbeats into the node
 * registry as role `media`, so signalling nodes' dashboards and `tandem status` list it with its
 * sessions and packets/s, and it serves the same API and dashboard itself. Its VIP leases are
 * named `media-<vip>`.
 */
export function startMediaOperations(o: MediaOperationsOptions): Operations {
  const events = new EventLog(o.nodeId);
  const leases = new RedisLeaseStore(o.state.commands, o.clusterName);
  const collect = async (): Promise<NodeFigures> => {
    let st: Record<string, unknown> = {};
    try {
      st = await o.statistics();
    } catch {
      /* stopping */
    }
    return {
      invitesTotal: 0,
      activeCalls: 0,
      earlyCalls: 0,
      registrations: 0,
      aors: 0,
      transactions: 0,
      mediaSessions: numberAt(st, 'statistics', 'currentstatistics', 'sessionsown'),
      mediaPacketsTotal: numberAt(st, 'statistics', 'totalstatistics', 'relayedpackets'),
      draining: false,
      sip: [],
      ng: o.ng,
      ...(o.admin ? { admin: o.admin } : {}),
      pbx: [],
    };
  };
  const monitor = new ClusterMonitor({
    nodeId: o.nodeId,
    cluster: o.clusterName,
    state: o.state,
    meta: { role: 'media', ng: o.ng.join(' ') },
    ...redisShape(o.redisUrl),
    vips: o.vips,
    leaseHolder: (vip: string) => leases.holder(`media-${vip}`),
    held: o.held,
    collect,
    events,
  });
  monitor.start();
  return {
    monitor,
    events,
    routes: [operationsRoutes({ monitor, events, node: () => o.summary, state: o.state }), dashboardRoutes()],
    close: () => monitor.stop(),
  };
}
