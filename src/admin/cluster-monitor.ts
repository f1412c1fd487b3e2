/**
 * What a node knows of its cluster, refreshed every second: the live nodes (node registry), each
 * node's figures (published by every node in Redis with a short TTL), who holds each VIP (the
 * lease store), the Redis connection and its replicas. Changes become events on the timeline
 * (node down, VIP moved, lease taken, Redis down or failed over, PBX down/up) and cluster
 * metrics. Without Redis the cluster is this node alone.
 *
 * Every round is bounded: one SET, one registry read, one MGET for at most `maxNodes` nodes, one
 * GET per VIP; INFO replication every fifth round.
 */
import type { LeaseGrant } from '../cluster/lease-store.js';
import { RedisNodeRegistry } from '../state/redis/redis-node-registry.js';
import type { RedisState } from '../state/redis/redis-state.js';
import type { NodeInfo, NodeRegistry } from '../state/store.js';
import { createLogger } from '../util/logger.js';
import { counter, gauge } from '../util/metrics.js';
import type { EventLog } from './event-log.js';

const log = createLogger('admin/cluster');

const vipMoves = counter('tandem_cluster_vip_moves_total', 'VIP holder changes seen by this node (takeovers), by address', ['vip']);
const leaseChanges = counter('tandem_cluster_lease_changes_total', 'New lease epochs seen by this node, by address', ['vip']);
const nodesDown = counter('tandem_cluster_nodes_down_total', 'Nodes whose heartbeat lapsed, as seen by this node');
const statsErrors = counter('tandem_cluster_monitor_errors_total', 'Cluster monitor rounds that could not read or write Redis');

/** A PBX (dispatcher destination) as one node sees it. */
export interface PbxStat {
  set: string;
  uri: string;
  up: boolean;
  state: string;
  activeCalls: number;
}

/** Figures a node publishes about itself every round. */
export interface NodeFigures {
  /** INVITEs received since start (calls/s is its rate). */
  invitesTotal: number;
  /** Dialogs: confirmed and early. */
  activeCalls: number;
  earlyCalls: number;
  /** Registered contacts and AORs as this node sees them. */
  registrations: number;
  aors: number;
  transactions: number;
  mediaSessions: number;
  /** RTP + RTCP packets received by this node's relay since start (packets/s is its rate). */
  mediaPacketsTotal: number;
  draining: boolean;
  /** SIP listening points, `udp:addr:port`. */
  sip: string[];
  /** Admin address, `host:port`. */
  admin?: string;
  /** ng addresses (media nodes). */
  ng?: string[];
  /** Dialog records in the shared store as this node sees them. */
  replicatedDialogs?: number;
  pbx: PbxStat[];
}

export interface NodeStats extends NodeFigures {
  nodeId: string;
  atMs: number;
  /** VIPs this node holds by its own account. */
  held: string[];
}

/** One point of a node's live series. */
export interface SeriesPoint {
  t: number;
  callsPerSec: number;
  activeCalls: number;
  registrations: number;
  mediaPacketsPerSec: number;
}

export interface ClusterNodeView {
  nodeId: string;
  self: boolean;
  live: boolean;
  startedAtMs?: number;
  heartbeatAtMs?: number;
  heartbeatAgeMs?: number;
  /** What the node publishes with its heartbeat (role, SIP addresses). */
  meta?: Record<string, string>;
  /** VIPs whose lease names this node. */
  vips: string[];
  stats?: NodeStats;
}

export interface VipView {
  vip: string;
  holder?: string;
  epoch?: number;
}

export interface RedisView {
  configured: boolean;
  /** `single` or `sentinel`. */
  mode?: string;
  /** Sentinels named in the URL (Sentinel mode), `host:port`. */
  sentinels?: string[];
  connected: boolean;
  /** Primary connected to. */
  address?: string;
  subscriberConnected: boolean;
  outboxDepth: number;
  resyncs: number;
  /** Round trip of this round's write, ms. */
  latencyMs?: number;
  role?: string;
  replicas: Array<{ address: string; state: string; lagSec: number; offsetBehind: number }>;
}

export interface ClusterSnapshot {
  cluster: string;
  nodeId: string;
  atMs: number;
  nodes: ClusterNodeView[];
  vips: VipView[];
  redis: RedisView;
}

export interface ClusterMonitorOptions {
  nodeId: string;
  /** Cluster name (Redis key prefix). */
  cluster: string;
  state?: RedisState;
  /** Default: a RedisNodeRegistry on `state`, started and closed by the monitor. */
  registry?: NodeRegistry;
  /** What the default registry publishes with each heartbeat (`role`, addresses). */
  meta?: Record<string, string>;
  vips: string[];
  /** Who holds a VIP's lease (lease takeover); undefined: only what this node holds is known. */
  leaseHolder?: (vip: string) => Promise<LeaseGrant | undefined>;
  /** VIPs this node holds now. */
  held: () => string[];
  /** This node's figures. */
  collect: () => Promise<NodeFigures>;
  events: EventLog;
  /** `single` or `sentinel`. */
  redisMode?: string;
  /** Sentinels of the URL, `host:port`. */
  sentinels?: string[];
  /** @default 1000 */
  intervalMs?: number;
  /** Points kept per node (a point per round). @default 300 */
  historyPoints?: number;
  /** Nodes listed at most. @default 64 */
  maxNodes?: number;
}

interface NodeTrack {
  last?: NodeStats;
  series: SeriesPoint[];
  lastSeenMs: number;
}

/** Figures older than this are not shown as current. */
const STATS_TTL_MS = 5000;

export class ClusterMonitor {
  readonly #o: ClusterMonitorOptions;
  readonly #registry: NodeRegistry | undefined;
  readonly #ownRegistry: boolean;
  readonly #intervalMs: number;
  readonly #historyPoints: number;
  readonly #maxNodes: number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #round = 0;
  #snapshot: ClusterSnapshot;
  #tracks = new Map<string, NodeTrack>();
  #liveIds: Set<string> | undefined;
  #holders = new Map<string, LeaseGrant | undefined>();
  #lastOwners = new Map<string, string>();
  #redisUp: boolean | undefined;
  #redisAddress: string | undefined;
  #pbxUp = new Map<string, boolean>();
  #replicas: RedisView['replicas'] = [];
  #role: string | undefined;
  #listeners: Array<(s: ClusterSnapshot) => void> = [];

  constructor(opts: ClusterMonitorOptions) {
    this.#o = opts;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#historyPoints = opts.historyPoints ?? 300;
    this.#maxNodes = opts.maxNodes ?? 64;
    this.#ownRegistry = !opts.registry && opts.state !== undefined;
    this.#registry = opts.registry ?? (opts.state ? new RedisNodeRegistry({ state: opts.state, intervalMs: 1000, ttlMs: 3000, ...(opts.meta ? { meta: opts.meta } : {}) }) : undefined);
    this.#snapshot = { cluster: opts.cluster, nodeId: opts.nodeId, atMs: Date.now(), nodes: [], vips: [], redis: this.#redisView(undefined) };
    const self = this;
    gauge('tandem_cluster_nodes_live', 'Live nodes of the cluster as this node sees them', [], function () {
      this.set(self.#snapshot.nodes.filter((n) => n.live).length);
    });
    gauge('tandem_cluster_node_heartbeat_age_seconds', 'Age of each live node\'s last heartbeat', ['node'], function () {
      this.reset();
      for (const n of self.#snapshot.nodes) if (n.heartbeatAgeMs !== undefined) this.set({ node: n.nodeId }, n.heartbeatAgeMs / 1000);
    });
    gauge('tandem_cluster_vip_holder', 'Lease holder of each VIP (1 for the holder)', ['vip', 'node'], function () {
      this.reset();
      for (const v of self.#snapshot.vips) if (v.holder) this.set({ vip: v.vip, node: v.holder }, 1);
    });
    gauge('tandem_cluster_vip_epoch', 'Lease epoch of each VIP', ['vip'], function () {
      for (const v of self.#snapshot.vips) if (v.epoch !== undefined) this.set({ vip: v.vip }, v.epoch);
    });
    gauge('tandem_redis_latency_seconds', 'Round trip of the cluster monitor\'s last Redis write', [], function () {
      const ms = self.#snapshot.redis.latencyMs;
      if (ms !== undefined) this.set(ms / 1000);
    });
    gauge('tandem_redis_replica_lag_seconds', 'Replication lag of each replica of the Redis primary (INFO replication)', ['replica'], function () {
      this.reset();
      for (const r of self.#snapshot.redis.replicas) this.set({ replica: r.address }, r.lagSec);
    });
    gauge('tandem_cluster_replicated_dialogs', 'Dialog records of the shared store as this node sees them', [], function () {
      const me = self.#tracks.get(opts.nodeId)?.last;
      this.set(me?.replicatedDialogs ?? 0);
    });
  }

  start(): void {
    if (this.#timer) return;
    this.#registry?.start();
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#ownRegistry) await this.#registry?.close();
  }

  /** Called with every new snapshot. */
  onSnapshot(fn: (s: ClusterSnapshot) => void): () => void {
    this.#listeners.push(fn);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== fn);
    };
  }

  get snapshot(): ClusterSnapshot {
    return this.#snapshot;
  }

  /** The live series of every known node, newest last, at most `points` each. */
  series(points = this.#historyPoints): Record<string, SeriesPoint[]> {
    const out: Record<string, SeriesPoint[]> = {};
    for (const [id, t] of this.#tracks) out[id] = t.series.slice(-points);
    return out;
  }

  /** One round (the timer's; tests call it directly). Never rejects. */
  async refresh(): Promise<ClusterSnapshot> {
    if (this.#running) return this.#snapshot;
    this.#running = true;
    try {
      this.#snapshot = await this.#round_();
      for (const l of this.#listeners) {
        try {
          l(this.#snapshot);
        } catch (err) {
          log.error({ err }, 'snapshot listener threw');
        }
      }
    } catch (err) {
      statsErrors.inc();
      log.warn({ err }, 'cluster monitor round failed');
    } finally {
      this.#running = false;
    }
    return this.#snapshot;
  }

  async #round_(): Promise<ClusterSnapshot> {
    const o = this.#o;
    const now = Date.now();
    this.#round++;
    const figures = await o.collect();
    const own: NodeStats = { ...figures, nodeId: o.nodeId, atMs: now, held: o.held() };
    this.#pbxEvents(own.pbx);
    const state = o.state;
    let latencyMs: number | undefined;
    let infos: NodeInfo[] = [];
    const stats = new Map<string, NodeStats>([[o.nodeId, own]]);
    const vips: VipView[] = [];
    this.#redisEvents();
    if (state && state.commands.ready) {
      try {
        const t0 = performance.now();
        await state.commands.call('SET', state.key('stats', o.nodeId), JSON.stringify(own), 'PX', STATS_TTL_MS);
        latencyMs = Math.round((performance.now() - t0) * 1000) / 1000;
      } catch {
        statsErrors.inc();
      }
    }
    if (this.#registry) {
      infos = (await this.#registry.liveNodes()).slice(0, this.#maxNodes);
      const others = infos.map((i) => i.nodeId).filter((id) => id !== o.nodeId);
      if (state && state.commands.ready && others.length) {
        try {
          const values = await state.commands.call('MGET', ...others.map((id) => state.key('stats', id)));
          if (Array.isArray(values)) {
            values.forEach((v, i) => {
              if (typeof v !== 'string') return;
              try {
                const s = JSON.parse(v) as NodeStats;
                if (s && typeof s === 'object' && s.nodeId === others[i]) stats.set(s.nodeId, s);
              } catch {
                /* unreadable figures: the node is listed without them */
              }
            });
          }
        } catch {
          statsErrors.inc();
        }
      }
      if (state && state.commands.ready && this.#round % 5 === 1) await this.#replication(state);
    }
    for (const vip of o.vips) {
      let holder: LeaseGrant | undefined;
      let known = false;
      if (o.leaseHolder && state?.commands.ready) {
        try {
          holder = await o.leaseHolder(vip);
          known = true;
        } catch {
          statsErrors.inc();
        }
      }
      if (!known) {
        if (o.leaseHolder && this.#holders.has(vip)) holder = this.#holders.get(vip);
        else holder = own.held.includes(vip) ? { owner: o.nodeId, epoch: 0 } : undefined;
      }
      this.#vipEvents(vip, holder);
      vips.push({ vip, ...(holder ? { holder: holder.owner, epoch: holder.epoch } : {}) });
    }

    const ids = new Set<string>([o.nodeId, ...infos.map((i) => i.nodeId)]);
    this.#nodeEvents(ids);
    for (const id of ids) this.#touch(id, now);
    for (const [id, s] of stats) this.#track(id, s, now);
    for (const [id, t] of this.#tracks) if (!ids.has(id) && now - t.lastSeenMs > this.#historyPoints * this.#intervalMs) this.#tracks.delete(id);
    const byId = new Map(infos.map((i) => [i.nodeId, i]));
    const nodes: ClusterNodeView[] = [];
    // Live nodes first, then nodes lately seen (shown down until their series age out).
    for (const id of new Set([...ids, ...this.#tracks.keys()])) {
      const info = byId.get(id);
      const s = stats.get(id);
      const live = ids.has(id);
      nodes.push({
        nodeId: id,
        self: id === o.nodeId,
        live,
        ...(info ? { startedAtMs: info.startedAtMs, heartbeatAtMs: info.heartbeatAtMs, heartbeatAgeMs: Math.max(0, now - info.heartbeatAtMs), meta: info.meta } : {}),
        // VIPs this node watches and the node names as holder, and those the node says it holds.
        vips: [...new Set([...vips.filter((v) => v.holder === id).map((v) => v.vip), ...(live && s ? s.held.filter((v) => !o.vips.includes(v)) : [])])],
        ...(live && s ? { stats: s } : {}),
      });
    }
    nodes.sort((a, b) => Number(b.live) - Number(a.live) || a.nodeId.localeCompare(b.nodeId));
    return { cluster: o.cluster, nodeId: o.nodeId, atMs: now, nodes, vips, redis: this.#redisView(latencyMs) };
  }

  /** A live node is tracked (and listed, down, after it lapses) even before its figures arrive. */
  #touch(id: string, now: number): NodeTrack | undefined {
    let t = this.#tracks.get(id);
    if (!t) {
      if (this.#tracks.size >= this.#maxNodes) return undefined;
      t = { series: [], lastSeenMs: now };
      this.#tracks.set(id, t);
    }
    t.lastSeenMs = now;
    return t;
  }

  #track(id: string, s: NodeStats, now: number): void {
    const t = this.#touch(id, now);
    if (!t) return;
    const prev = t.last;
    if (prev && prev.atMs === s.atMs) return;
    const dtSec = prev ? (s.atMs - prev.atMs) / 1000 : 0;
    const rate = (a: number, b: number): number => (dtSec > 0 && a >= b ? Math.round(((a - b) / dtSec) * 10) / 10 : 0);
    t.series.push({
      t: Math.round(s.atMs / 1000),
      callsPerSec: prev ? rate(s.invitesTotal, prev.invitesTotal) : 0,
      activeCalls: s.activeCalls,
      registrations: s.registrations,
      mediaPacketsPerSec: prev ? rate(s.mediaPacketsTotal, prev.mediaPacketsTotal) : 0,
    });
    if (t.series.length > this.#historyPoints) t.series.splice(0, t.series.length - this.#historyPoints);
    t.last = s;
  }

  #nodeEvents(ids: Set<string>): void {
    const before = this.#liveIds;
    this.#liveIds = ids;
    if (!before) {
      for (const id of ids) this.#o.events.add('node-up', id, `node ${id} is live${id === this.#o.nodeId ? ' (this node)' : ''}`);
      return;
    }
    for (const id of ids) if (!before.has(id)) this.#o.events.add('node-up', id, `node ${id} joined`);
    for (const id of before) {
      if (ids.has(id)) continue;
      nodesDown.inc();
      this.#o.events.add('node-down', id, `node ${id} is down (heartbeat lapsed)`);
    }
  }

  #vipEvents(vip: string, now: LeaseGrant | undefined): void {
    const had = this.#holders.has(vip);
    const before = this.#holders.get(vip);
    this.#holders.set(vip, now);
    // The last holder is remembered across a moment without one (the lease lapsed before the
    // standby took it), so the move reads "from A to B" whenever the rounds fall.
    const lastOwner = this.#lastOwners.get(vip);
    if (now) this.#lastOwners.set(vip, now.owner);
    if (!had) {
      if (now) this.#o.events.add('lease-taken', vip, `${vip} is held by ${now.owner}${now.epoch ? ` (epoch ${now.epoch})` : ''}`);
      return;
    }
    if (before?.owner === now?.owner && before?.epoch === now?.epoch) return;
    if (!now) {
      this.#o.events.add('vip-free', vip, `${vip} has no holder (was ${before?.owner ?? 'nobody'})`);
      return;
    }
    leaseChanges.inc({ vip });
    if (lastOwner !== undefined && lastOwner !== now.owner) {
      vipMoves.inc({ vip });
      this.#o.events.add('vip-moved', vip, `${vip} moved from ${lastOwner} to ${now.owner} (epoch ${now.epoch})`);
    } else if (lastOwner === undefined) {
      vipMoves.inc({ vip });
      this.#o.events.add('vip-moved', vip, `${vip} taken by ${now.owner} (epoch ${now.epoch})`);
    } else {
      this.#o.events.add('lease-taken', vip, `${vip} lease taken again by ${now.owner} (epoch ${now.epoch})`);
    }
  }

  #redisEvents(): void {
    const state = this.#o.state;
    if (!state) return;
    const up = state.commands.ready;
    const address = state.commands.address;
    if (this.#redisUp !== undefined && up !== this.#redisUp) {
      this.#o.events.add(up ? 'redis-up' : 'redis-down', address ?? this.#redisAddress ?? 'redis', up ? `Redis reachable again at ${address}` : `Redis unreachable (was ${this.#redisAddress ?? '?'})`);
    }
    if (up && address && this.#redisAddress && address !== this.#redisAddress) {
      this.#o.events.add('redis-failover', address, `Redis primary moved from ${this.#redisAddress} to ${address}`);
    }
    this.#redisUp = up;
    if (address) this.#redisAddress = address;
  }

  #pbxEvents(pbx: PbxStat[]): void {
    for (const p of pbx.slice(0, 256)) {
      const key = `${p.set} ${p.uri}`;
      const before = this.#pbxUp.get(key);
      this.#pbxUp.set(key, p.up);
      if (before === undefined || before === p.up) continue;
      this.#o.events.add(p.up ? 'pbx-up' : 'pbx-down', p.uri, `PBX ${p.uri} (set ${p.set}) is ${p.up ? 'up' : 'down'}`);
    }
  }

  async #replication(state: RedisState): Promise<void> {
    try {
      const info = await state.commands.call('INFO', 'replication');
      if (typeof info !== 'string') return;
      const f = new Map<string, string>();
      for (const line of info.split(/\r?\n/).slice(0, 200)) {
        const i = line.indexOf(':');
        if (i > 0) f.set(line.slice(0, i), line.slice(i + 1).trim());
      }
      this.#role = f.get('role');
      const masterOffset = Number(f.get('master_repl_offset') ?? 0);
      const replicas: RedisView['replicas'] = [];
      for (let n = 0; n < 16; n++) {
        const v = f.get(`slave${n}`);
        if (!v) break;
        const kv = new Map(v.split(',').map((p) => p.split('=') as [string, string]));
        replicas.push({
          address: `${kv.get('ip') ?? '?'}:${kv.get('port') ?? '?'}`,
          state: kv.get('state') ?? '?',
          lagSec: Number(kv.get('lag') ?? 0),
          offsetBehind: Math.max(0, masterOffset - Number(kv.get('offset') ?? 0)),
        });
      }
      this.#replicas = replicas;
    } catch {
      statsErrors.inc();
    }
  }

  #redisView(latencyMs: number | undefined): RedisView {
    const state = this.#o.state;
    if (!state) return { configured: false, connected: false, subscriberConnected: false, outboxDepth: 0, resyncs: 0, replicas: [] };
    return {
      configured: true,
      ...(this.#o.redisMode ? { mode: this.#o.redisMode } : {}),
      ...(this.#o.sentinels?.length ? { sentinels: this.#o.sentinels } : {}),
      connected: state.commands.ready,
      ...(state.commands.address ? { address: state.commands.address } : {}),
      subscriberConnected: state.subscriber.ready,
      outboxDepth: state.outbox.depth,
      resyncs: state.resyncs,
      ...(latencyMs !== undefined ? { latencyMs } : {}),
      ...(this.#role ? { role: this.#role } : {}),
      replicas: this.#replicas,
    };
  }
}
