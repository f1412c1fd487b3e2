/**
 * The primary process of `tandem start --workers N`. It serves no SIP itself: it forks the N
 * workers (cluster module: they share the listening sockets), restarts one that dies, and holds
 * what exists once per node:
 *
 * - the shared state of the workers when there is no Redis (signalling/workers/worker-hub.ts);
 * - the cluster heartbeat and the VIP lease (with `--vip`): the lease is held once per node, and
 *   every worker binds the VIP while the node holds it;
 * - the in-process media node (the workers reach it over ng like an external one);
 * - the admin API: /metrics is the sum over the workers and this process, /signalling/status
 *   sums the workers' figures.
 */
import nodeCluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { AggregatorRegistry } from 'prom-client';
import { startAdminServer } from '../../admin/admin-server.js';
import { startOperations } from '../../admin/operations.js';
import type { Dispatcher } from '../../signalling/dispatcher/dispatcher.js';
import type { SignallingNode } from '../../signalling/signalling-node.js';
import type { HepExporter, HepExporterOptions } from '../../admin/hep/hep-exporter.js';
import { AddressTakeover } from '../../cluster/address-takeover.js';
import { RedisLeaseStore } from '../../cluster/redis-lease-store.js';
import { startMediaNode, type MediaNode } from '../../media/media-node.js';
import { randomSecret } from '../../sip/auth/digest-server.js';
import { isHubMessage, type PeersMessage, type PrimaryToWorker, type WorkerToPrimary } from '../../signalling/workers/hub-protocol.js';
import { WorkerHub } from '../../signalling/workers/worker-hub.js';
import type { ListeningPoint } from '../../sip/transport/types.js';
import { logger, setLogLevel } from '../../util/logger.js';
import { gcThreadsFor, withPoolSize } from '../../util/gc-threads.js';
import { availableParallelism } from 'node:os';
import { counter, gauge, metricsRegistry } from '../../util/metrics.js';
import { startClusterRuntime } from '../cluster-runtime.js';
import type { TandemConfig } from '../config.js';
import { loadUsers, splitHostPort } from '../commands/start.js';
import type { WorkerStatus } from './worker.js';

const restarts = counter('tandem_workers_restarts_total', 'Worker processes started again after one exited');

/**
 * Gauges that are not a sum over the processes: each worker holds the node's whole view (the
 * location replica, the dispatcher's destinations and their node-wide call counts), or each
 * process has its own Redis connection.
 */
const AGGREGATORS: Record<string, 'max' | 'min' | 'average'> = {
  tandem_location_bindings: 'max',
  tandem_dispatcher_destination_up: 'max',
  tandem_dispatcher_active_calls: 'max',
  tandem_redis_connected: 'min',
  tandem_redis_latency_seconds: 'average',
  tandem_redis_replica_lag_seconds: 'max',
};

/** Pause before a worker that exited is started again, ms (a crash loop does not spin). */
const RESTART_DELAY_MS = 200;

interface Slot {
  index: number;
  worker: Worker | undefined;
  incarnation: number;
  /** Asked for the snapshot: location writes reach it from now on. */
  hello: boolean;
  /** Listening: messages may be steered to it. */
  channelPort: number;
  lps: ListeningPoint[];
  starts: number;
  /** The worker's own admin server (loopback). */
  adminPort: number;
}

export async function runPrimary(cfg: Readonly<TandemConfig>, hepOptions: Omit<HepExporterOptions, 'nodeName'> | undefined, count: number): Promise<void> {
  setLogLevel(cfg.logLevel);
  const s = cfg.signalling;
  // Read once here so a bad users file fails the start, not N workers.
  const users = loadUsers(cfg);
  if (s.auth.enabled && !users) logger.warn('authentication is on but no users file is configured: every local user will be refused');
  const cluster = await startClusterRuntime(cfg.cluster, cfg.state, s.auth.secret, s.auth, { role: 'signalling', sip: s.listen.join(' '), workers: String(count) });
  const nodeId = cluster.nodeId;
  // One secret for every worker: nonces, flow tokens and route tokens of one are valid at all.
  const secret = s.auth.secret ?? cluster.secret ?? randomSecret();
  const token = randomBytes(8).toString('hex');
  const adminToken = randomBytes(24).toString('base64url');

  let mediaNode: MediaNode | undefined;
  if (s.mediaControl.enabled && s.mediaControl.ng.length === 0) {
    mediaNode = await startMediaNode({ ...cfg.media, ng: cfg.media.ng === '127.0.0.1:2223' ? '127.0.0.1:0' : cfg.media.ng });
  }
  const mediaNg = mediaNode ? `${mediaNode.ngHost}:${mediaNode.ngPort}` : undefined;

  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({ index, worker: undefined, incarnation: 0, hello: false, channelPort: 0, lps: [], starts: 0, adminPort: 0 }));
  let nextIncarnation = 1;
  let stopping = false;
  const send = (index: number, msg: PrimaryToWorker): boolean => {
    const w = slots[index]?.worker;
    if (!w || !w.isConnected()) return false;
    w.send(msg);
    return true;
  };
  const hub = new WorkerHub({ send, live: () => slots.filter((x) => x.hello && x.worker).map((x) => x.index), auth: s.auth, keepBindings: !cfg.state.redis });
  gauge('tandem_workers', 'Worker processes serving SIP', [], function () {
    this.set(slots.filter((x) => x.channelPort > 0).length);
  });
  const peers = (): PeersMessage => ({
    t: 'peers',
    ports: slots.map((x) => (x.worker ? x.channelPort : 0)),
    incarnations: slots.filter((x) => x.worker && x.hello).map((x) => [x.incarnation, x.index] as [number, number]),
  });
  const broadcastPeers = (): void => {
    const m = peers();
    for (const x of slots) send(x.index, m);
  };

  let takeover: AddressTakeover | undefined;
  let firstReady: (() => void) | undefined;
  const allReady = new Promise<void>((resolve) => (firstReady = resolve));

  const fork = (slot: Slot): void => {
    const incarnation = nextIncarnation++;
    const w = nodeCluster.fork({ TANDEM_WORKER_INDEX: String(slot.index) });
    slot.worker = w;
    slot.incarnation = incarnation;
    slot.hello = false;
    slot.channelPort = 0;
    const firstStart = slot.starts++ === 0;
    w.on('message', (m: unknown) => {
      if (!isHubMessage(m)) return;
      const msg = m as WorkerToPrimary;
      // Asked once the worker has loaded (a message sent before it listens would be lost).
      if (msg.t === 'boot') {
        w.send({ t: 'init', index: slot.index, count, incarnation, token, nodeId, secret, ...(mediaNg ? { mediaNg } : {}), firstStart, adminToken } satisfies PrimaryToWorker);
        return;
      }
      if (msg.t === 'hello') {
        slot.hello = true;
        const snap = hub.snapshot();
        w.send({ t: 'reply', id: msg.id, value: { entries: snap.t === 'locSnapshot' ? snap.entries : [], peers: peers() } } satisfies PrimaryToWorker);
        return;
      }
      if (msg.t === 'ready') {
        slot.channelPort = msg.channelPort;
        slot.lps = msg.lps;
        slot.adminPort = msg.adminPort;
        broadcastPeers();
        // A worker (re)started while the node holds VIPs serves them too.
        for (const h of takeover?.held() ?? []) void hub.request(slot.index, { t: 'listen', vip: h.vip, epoch: 0 }).catch((err: unknown) => logger.error({ err, vip: h.vip, worker: slot.index }, 'worker could not bind a held VIP'));
        if (slots.every((x) => x.channelPort > 0)) firstReady?.();
        return;
      }
      hub.handle(slot.index, msg);
    });
    w.on('exit', (code, signal) => {
      if (slot.worker !== w) return;
      slot.worker = undefined;
      slot.hello = false;
      slot.channelPort = 0;
      hub.workerGone(slot.index);
      broadcastPeers();
      if (stopping) return;
      logger.error({ worker: slot.index, pid: w.process.pid, code, signal }, 'worker exited; starting it again');
      restarts.inc();
      // Not unref'd: with every worker gone this timer is what keeps the primary alive.
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, RESTART_DELAY_MS);
    });
  };

  // Each worker's garbage-collection helpers: the cores the other workers leave (src/util/gc-threads.ts).
  const gcThreads = cfg.signalling.gcThreads ?? gcThreadsFor(availableParallelism(), count);
  nodeCluster.setupPrimary({ serialization: 'advanced', execArgv: withPoolSize(process.execArgv, gcThreads) });
  for (const slot of slots) fork(slot);
  const startTimeout = setTimeout(() => {
    logger.error('workers did not all start within 30 s');
    process.exit(1);
  }, 30_000);
  await allReady;
  clearTimeout(startTimeout);

  const vips = cfg.cluster.vips;
  if (vips.length) {
    takeover = new AddressTakeover({
      nodeId,
      vips: [...vips],
      mode: cfg.cluster.takeover,
      ...(cluster.state ? { leases: new RedisLeaseStore(cluster.state.commands, cfg.cluster.name) } : {}),
      ttlMs: cfg.cluster.leaseTtlMs,
      pollMs: cfg.cluster.leasePollMs,
      // keepalived mode: the address arrived, so callers may retransmit a dead peer's INVITEs.
      onArrived: () => {
        for (const x of slots) if (x.worker) send(x.index, { t: 'peerTakeover' });
      },
      bind: async (vip, epoch) => {
        const r = await Promise.allSettled(slots.filter((x) => x.worker).map((x) => hub.request(x.index, { t: 'listen', vip, epoch })));
        const failed = r.find((x) => x.status === 'rejected');
        if (failed) {
          await Promise.allSettled(slots.filter((x) => x.worker).map((x) => hub.request(x.index, { t: 'unlisten', vip })));
          throw (failed as PromiseRejectedResult).reason;
        }
      },
      unbind: async (vip) => {
        await Promise.allSettled(slots.filter((x) => x.worker).map((x) => hub.request(x.index, { t: 'unlisten', vip })));
      },
    });
    await takeover.start();
  }

  // The node's figures, summed over the workers (refreshed each second for the operations API).
  // The PBX table: the first answering worker's view (probing results and shared call counts).
  let dispatcherView: WorkerStatus['dispatcher'];
  let figures = { bindings: 0, aors: 0, transactions: 0, invites: 0, dialogs: { early: 0, confirmed: 0, perDestination: {} as Record<string, number> }, traceSent: 0 };
  let traceEnabled = hepOptions !== undefined;
  const refreshFigures = async (): Promise<typeof figures> => {
    const st = await hub.requestAll<WorkerStatus>({ t: 'status' });
    const perDestination: Record<string, number> = {};
    let early = 0;
    let confirmed = 0;
    for (const { value } of st) {
      early += value.dialogs.early;
      confirmed += value.dialogs.confirmed;
      for (const [k, v] of Object.entries(value.dialogs.perDestination)) perDestination[k] = (perDestination[k] ?? 0) + v;
    }
    dispatcherView = st.find((x) => x.value.dispatcher)?.value.dispatcher;
    figures = {
      bindings: cluster.state ? Math.max(0, ...st.map((x) => x.value.bindings)) : hub.bindingCount,
      aors: cluster.state ? Math.max(0, ...st.map((x) => x.value.aors)) : hub.aorCount,
      transactions: st.reduce((a, x) => a + x.value.transactions, 0),
      // A restarted worker starts from 0: never let the node's total go back (calls/s would dip).
      invites: Math.max(figures.invites, st.reduce((a, x) => a + (x.value.invites ?? 0), 0)),
      dialogs: { early, confirmed, perDestination },
      traceSent: st.reduce((a, x) => a + (x.value.trace?.sent ?? 0), 0),
    };
    return figures;
  };
  const figuresTimer = setInterval(() => void refreshFigures().catch(() => undefined), 1000);
  figuresTimer.unref();
  await refreshFigures().catch(() => undefined);
  /** What the operations side reads of a signalling node, answered from the workers' sum. */
  const nodeView = {
    dialogs: { counts: () => figures.dialogs, get: () => undefined },
    location: { size: () => figures.bindings, aorCount: () => figures.aors, getBindings: async (aor: string) => (cluster.locationStore ? cluster.locationStore.getBindings(aor) : hub.bindingsOf(aor)) },
    transactions: {
      get size() {
        return figures.transactions;
      },
    },
    get draining() {
      return stopping;
    },
    transport: { listeningPoints: slots[0]!.lps },
  } as unknown as SignallingNode;
  const ops = startOperations({
    nodeId, clusterName: cfg.cluster.name, vips: [...vips], takeover: cfg.cluster.takeover,
    ...(cluster.state ? { state: cluster.state } : {}), ...(cluster.registry ? { registry: cluster.registry } : {}), ...(cfg.state.redis ? { redisUrl: cfg.state.redis } : {}),
    held: () => takeover?.held().map((h) => h.vip) ?? [], signalling: nodeView,
    dispatcher: () => (dispatcherView ? ({ view: () => dispatcherView } as unknown as Dispatcher) : undefined),
    invitesTotal: () => figures.invites,
    ...(cluster.dialogStore ? { dialogStore: cluster.dialogStore } : {}), ...(mediaNode ? { mediaNode } : {}), ...(cfg.admin ? { admin: cfg.admin } : {}),
    summary: { role: 'signalling', sip: [...s.listen], domains: [...s.domains], vips: [...vips], takeover: cfg.cluster.takeover, media: s.mediaControl.enabled, workers: count },
    // Each worker exports the messages it handles; the switch reaches them all.
    ...(hepOptions
      ? {
          hep: {
            target: hepOptions.target,
            get enabled() {
              return traceEnabled;
            },
            get sent() {
              return figures.traceSent;
            },
            setEnabled(on: boolean) {
              traceEnabled = on;
              for (const x of slots) send(x.index, { t: 'trace', enabled: on });
            },
          } as unknown as HepExporter,
        }
      : {}),
  });

  const aggregateMetrics = async (): Promise<string> => {
    type MetricJson = Awaited<ReturnType<typeof metricsRegistry.getMetricsAsJSON>>;
    const per = await hub.requestAll<MetricJson>({ t: 'metrics' });
    const lists = [await metricsRegistry.getMetricsAsJSON(), ...per.map((p) => p.value)];
    for (const list of lists) for (const m of list as Array<{ name: string; aggregator?: string }>) if (AGGREGATORS[m.name]) m.aggregator = AGGREGATORS[m.name];
    return AggregatorRegistry.aggregate(lists).metrics();
  };
  const routeList: NonNullable<Parameters<typeof startAdminServer>[0]['routes']> = [];
  if (mediaNode) routeList.push(mediaNode.adminRoutes);
  routeList.push(...ops.routes);
  routeList.push((app) => {
    app.get('/signalling/status', async () => {
      const f = await refreshFigures();
      return {
        ...f,
        draining: stopping,
        workers: slots.map((x) => ({ index: x.index, pid: x.worker?.process.pid, serving: x.channelPort > 0, restarts: Math.max(0, x.starts - 1) })),
        cluster: { nodeId, vips: [...vips], held: takeover?.held() ?? [], takeover: cfg.cluster.takeover, redis: cfg.state.redis !== undefined },
      };
    });
  });
  // Everything else (dispatcher) is the workers': reads from the first serving
  // worker, writes to every worker (each holds its own dispatcher), answered with the first's.
  routeList.push((app) => {
    app.all('/*', async (req, reply) => {
      const serving = slots.filter((x) => x.worker && x.adminPort > 0);
      if (serving.length === 0) return reply.code(503).send({ error: 'no worker is serving' });
      const write = req.method !== 'GET' && req.method !== 'HEAD';
      const body = req.body === undefined || req.body === null ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
      const ask = (port: number) =>
        fetch(`http://127.0.0.1:${port}${req.url}`, {
          method: req.method,
          headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': String(req.headers['content-type'] ?? 'application/json') } : {}) },
          ...(body !== undefined ? { body } : {}),
          signal: AbortSignal.timeout(5000),
        });
      const answers = await Promise.allSettled((write ? serving : serving.slice(0, 1)).map((x) => ask(x.adminPort)));
      const first = answers[0]!;
      if (first.status === 'rejected') return reply.code(502).send({ error: 'worker did not answer' });
      const res = first.value;
      reply.code(res.status);
      const ct = res.headers.get('content-type');
      if (ct) reply.header('content-type', ct);
      return reply.send(Buffer.from(await res.arrayBuffer()));
    });
  });
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  if (cfg.admin) {
    const a = splitHostPort(cfg.admin);
    admin = await startAdminServer({ host: a.host, port: a.port, routes: routeList, metrics: aggregateMetrics, ...(cfg.adminToken ? { token: cfg.adminToken } : {}) });
  }

  const lps = slots[0]!.lps;
  const first = lps[0]!;
  const domains = [...s.domains];
  const realm = s.auth.realm ?? domains[0] ?? first.host;
  const where = lps.map((lp) => `${lp.transport}:${lp.address}:${lp.port}`).join(' ');
  const mediaText = !s.mediaControl.enabled ? 'off' : mediaNode ? `in-process ng 127.0.0.1:${mediaNode.ngPort}` : s.mediaControl.ng.join(',');
  process.stdout.write(
    `tandem: listening ${where} domain=${domains[0] ?? first.host} auth=${s.auth.enabled ? 'on' : 'off'} media=${mediaText}${admin ? ` admin=http://${cfg.admin?.split(':')[0]}:${admin.port}` : ''} node=${nodeId}${vips.length ? ` vips=${vips.join(',')} takeover=${cfg.cluster.takeover}` : ''} pid=${process.pid} workers=${count}\n`,
  );
  process.stdout.write(
    `tandem: point a softphone at it: SIP server ${vips[0] ?? first.host}:${first.sentByPort} (${first.transport.toUpperCase()}), domain ${domains[0] ?? first.host}, auth realm ${realm}` +
      `${users ? `, users from ${s.users} (${users.size} users)` : ''}\n`,
  );

  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: workers refuse new calls and let transactions finish');
    const hard = setTimeout(() => process.exit(0), s.shutdownGraceMs + 3000);
    hard.unref();
    try {
      // Leases first: the peer takes the VIPs over at once instead of after their TTL.
      await takeover?.stop();
      const exits = slots.flatMap((x) => (x.worker ? [new Promise<void>((r) => x.worker!.once('exit', () => r()))] : []));
      for (const x of slots) send(x.index, { t: 'shutdown', graceMs: s.shutdownGraceMs });
      await Promise.all(exits);
      clearInterval(figuresTimer);
      await ops.close();
      hub.close();
      await cluster.close();
      await admin?.close();
      await mediaNode?.close();
    } catch (err) {
      logger.error({ err }, 'error while shutting down');
    }
    process.stdout.write('tandem: stopped\n');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
