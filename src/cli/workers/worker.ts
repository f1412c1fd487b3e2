/**
 * One worker process of `tandem start --workers N` (forked by primary.ts through the cluster
 * module, same command line). It runs a whole signalling node on the listening sockets all
 * workers share, steers each message to the worker its Call-ID belongs to
 * (signalling/workers/worker-steering.ts) and shares registrations, nonce counts and blocks with
 * the others (through the primary, or Redis with `--redis`). The primary holds what exists once
 * per node: the admin API, the in-process media node, the cluster lease and heartbeat.
 */
import { HepExporter, type HepExporterOptions } from '../../admin/hep/hep-exporter.js';
import { startAdminServer } from '../../admin/admin-server.js';
import { dispatcherRoutes } from '../../admin/dispatcher-routes.js';
import { Accounting } from '../../signalling/accounting/accounting.js';
import { DialogClaimer } from '../../signalling/dialogs/dialog-claimer.js';
import { DispatcherService, DISPATCHER_SERVICE } from '../../signalling/dispatcher/service.js';
import type { Dispatcher } from '../../signalling/dispatcher/dispatcher.js';
import { NgMediaControl } from '../../signalling/media-control/ng-media-control.js';
import { SignallingNode } from '../../signalling/signalling-node.js';
import { HubClient } from '../../signalling/workers/hub-client.js';
import { isHubMessage, type HubLink, type InitMessage, type PeersMessage, type PrimaryToWorker, type WorkerToPrimary } from '../../signalling/workers/hub-protocol.js';
import { WorkerChannel } from '../../signalling/workers/worker-channel.js';
import { NodeCallLoad } from '../../signalling/workers/node-call-load.js';
import { WorkerSteering } from '../../signalling/workers/worker-steering.js';
import { HubAuthFailureStore, HubNonceCountStore, ReplicatedLocationStore } from '../../signalling/workers/worker-stores.js';
import type { ListeningPoint } from '../../sip/transport/types.js';
import { MemoryAccountingStore } from '../../state/memory/memory-accounting-store.js';
import { RedisAccountingStore } from '../../state/redis/redis-accounting-store.js';
import { RedisAuthFailureStore } from '../../state/redis/redis-auth-failure-store.js';
import { RedisDialogStore } from '../../state/redis/redis-dialog-store.js';
import { RedisLocationStore } from '../../state/redis/redis-location-store.js';
import { RedisNodeRegistry } from '../../state/redis/redis-node-registry.js';
import { RedisNonceCountStore } from '../../state/redis/redis-nonce-count-store.js';
import { RedisState } from '../../state/redis/redis-state.js';
import type { AuthFailureStore, DialogRecord, LocationStore, NonceCountStore } from '../../state/store.js';
import type { DialogTracker } from '../../signalling/dialogs/dialog-tracker.js';
import { logger, setLogLevel } from '../../util/logger.js';
import { counter, metricSum, metricsRegistry } from '../../util/metrics.js';
import { setWorkerIndex } from '../../util/worker-tag.js';
import type { TandemConfig } from '../config.js';
import { listenSpecs, loadRouteHook, loadUsers, signallingNodeOptions, splitHostPort } from '../commands/start.js';

const lostWrites = counter('tandem_workers_connection_writes_lost_total', 'Writes another worker asked for on a connection that had closed');

/** Status one worker reports to the primary (summed there for /signalling/status). */
export interface WorkerStatus {
  index: number;
  pid: number;
  bindings: number;
  aors: number;
  transactions: number;
  dialogs: { early: number; confirmed: number; perDestination: Record<string, number> };
  draining: boolean;
  /** INVITEs this worker received (the operations API's calls/s is their sum's rate). */
  invites: number;
  /** The dispatcher's sets as this worker sees them (the operations API's PBX table). */
  dispatcher?: ReturnType<Dispatcher['view']>;
  /** HEP export, when configured. */
  trace?: { enabled: boolean; sent: number };
}


function ipcLink(): HubLink {
  return {
    send: (m: WorkerToPrimary) => {
      if (process.connected) process.send?.(m);
    },
    onMessage: (fn) => {
      process.on('message', (m: unknown) => {
        if (isHubMessage(m)) fn(m as PrimaryToWorker);
      });
    },
  };
}

function waitForInit(): Promise<InitMessage> {
  return new Promise((resolve) => {
    const f = (m: unknown): void => {
      if (isHubMessage(m) && m.t === 'init') {
        process.off('message', f);
        resolve(m as InitMessage);
      }
    };
    process.on('message', f);
    process.send?.({ t: 'boot' } satisfies WorkerToPrimary);
  });
}

export async function runWorker(cfg: Readonly<TandemConfig>, hepOptions?: Omit<HepExporterOptions, 'nodeName'>): Promise<void> {
  setLogLevel(cfg.logLevel);
  // The primary tells each worker to stop; a terminal's Ctrl-C reaches every process of the group.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  // Primary gone (killed): nothing steers, nothing to serve for.
  process.on('disconnect', () => process.exit(0));
  const init = await waitForInit();
  setWorkerIndex(init.index);
  const s = cfg.signalling;
  const hub = new HubClient(ipcLink());
  const users = loadUsers(cfg);
  const { listen } = listenSpecs(cfg);

  let node: SignallingNode | undefined;
  const channel = new WorkerChannel(Buffer.from(init.token, 'hex'), {
    onMessage: (data, source) => node?.transport.inject(data, source),
    onWrite: (id, data) => {
      if (!node?.transport.writeToConnection(id, data)) lostWrites.inc();
    },
  });
  const channelPort = await channel.open();
  const steering = new WorkerSteering(init.index, init.count, channel);
  steering.onReader = (reads) => node?.transport.setUdpReceiving(reads);
  hub.on('peers', (m) => steering.setPeers(m));

  // Shared state: Redis (the workers are peers of the cluster store), else through the primary.
  let redis: RedisState | undefined;
  let locationStore: LocationStore;
  let nonceCounts: NonceCountStore;
  let authFailures: AuthFailureStore;
  let replica: ReplicatedLocationStore | undefined;
  if (cfg.state.redis) {
    redis = new RedisState({ url: cfg.state.redis, nodeId: init.nodeId, cluster: cfg.cluster.name });
    // A write waits for Redis through the outbox; the other workers see it at once through the primary.
    locationStore = new ReplicatedLocationStore(hub, new RedisLocationStore({ state: redis }), 5000);
    nonceCounts = new RedisNonceCountStore({ state: redis });
    authFailures = new RedisAuthFailureStore({ state: redis, maxFailures: s.auth.maxFailures, windowSec: s.auth.failureWindowSec, blockSec: s.auth.blockSec });
  } else {
    replica = new ReplicatedLocationStore(hub);
    locationStore = replica;
    nonceCounts = new HubNonceCountStore(hub);
    authFailures = new HubAuthFailureStore(hub, s.auth);
  }
  const dialogStore = redis ? new RedisDialogStore({ state: redis }) : undefined;
  const accountingStore = redis ? new RedisAccountingStore({ state: redis }) : new MemoryAccountingStore();
  const hep = hepOptions ? new HepExporter({ ...hepOptions, nodeName: init.nodeId }) : undefined;
  await hep?.start();

  let media: NgMediaControl | undefined;
  if (s.mediaControl.enabled) {
    const nodes = init.mediaNg ? [splitHostPort(init.mediaNg)] : s.mediaControl.ng.map(splitHostPort);
    media = new NgMediaControl({ nodes, timeoutMs: s.mediaControl.timeoutMs });
  }
  const routeHook = s.routeScript ? await loadRouteHook(s.routeScript) : undefined;
  const services: Record<string, unknown> = {};
  let ds: DispatcherService | undefined;
  node = new SignallingNode(
    signallingNodeOptions(cfg, {
      users,
      listen,
      secret: init.secret,
      nodeId: init.nodeId,
      isTrustedSource: (address) => ds?.isDestinationAddress(address) ?? false,
      routeHook,
      media,
      services,
      locationStore,
      dialogStore,
      nonceCounts,
      authFailures,
      accounting: new Accounting({ store: accountingStore, nodeId: init.nodeId, ...(s.accounting.file ? { file: s.accounting.file } : {}) }),
      transport: steering.transportOptions(init.incarnation),
    }),
  );
  const sn = node;

  // Registrations and peers before serving: a restarted worker answers with the node's state.
  const hello = await hub.request<{ entries: Array<[string, import('../../state/store.js').Binding[]]>; peers: PeersMessage }>({ t: 'hello', channelPort });
  if (replica) await replica.load(hello.entries);
  steering.setPeers(hello.peers);

  const vipLps = new Map<string, ListeningPoint[]>();
  let ownLps: ListeningPoint[] = [];
  hub.on('metrics', () => metricsRegistry.getMetricsAsJSON());
  hub.on('status', async (): Promise<WorkerStatus> => ({
    index: init.index,
    pid: process.pid,
    bindings: sn.location.size(),
    aors: sn.location.aorCount(),
    transactions: sn.transactions.size,
    dialogs: sn.dialogs.counts(),
    draining: sn.draining,
    invites: await metricSum('tandem_signalling_requests_total', { method: 'INVITE' }),
    ...(ds ? { dispatcher: ds.dispatcher.view() } : {}),
    ...(hep ? { trace: { enabled: hep.enabled, sent: hep.sent } } : {}),
  }));
  hub.on('trace', (m) => hep?.setEnabled(m.enabled));
  // The primary holds the lease; the VIP is served by every worker (on the shared sockets).
  hub.on('listen', async (m) => {
    const own = ownLps;
    const lps: ListeningPoint[] = [];
    const { tls } = listenSpecs(cfg);
    try {
      for (const lp of own) lps.push(await sn.transport.listen({ transport: lp.transport, address: m.vip, port: lp.port, advertise: m.vip, preferred: true, ...(lp.transport === 'tls' && tls ? { tls } : {}) }));
    } catch (err) {
      for (const lp of lps) await sn.transport.unlisten(lp);
      throw err;
    }
    vipLps.set(m.vip, lps);
    if (m.epoch > 1) sn.notePeerTakeover();
    return true;
  });
  hub.on('unlisten', async (m) => {
    for (const lp of vipLps.get(m.vip) ?? []) await sn.transport.unlisten(lp);
    vipLps.delete(m.vip);
    return true;
  });
  hub.on('peerTakeover', () => sn.notePeerTakeover());

  const handOver = (record: DialogRecord): void => {
    if (record.state === 'confirmed') sn.dialogs.adopt(record);
    else void sn.resumeRinging(record);
  };
  hub.on('adopt', (m) => handOver(m.record));
  const lps = [...(await sn.start())];
  ownLps = lps;
  // Dialogs of a dead peer node are claimed by one worker (its own node's at the node's first start).
  let claimer: DialogClaimer | undefined;
  let claimTimer: NodeJS.Timeout | undefined;
  if (redis && dialogStore && init.index === 0) {
    const registry = new RedisNodeRegistry({ state: redis, meta: {} });
    // A claimed dialog goes to the worker its Call-ID is steered to (its BYE arrives there).
    const adopt = (record: DialogRecord): void => {
      const owner = steering.ownerOfCallId(record.callId);
      if (owner === init.index) handOver(record);
      else hub.send({ t: 'adopt', index: owner, record });
    };
    const tracker = { adopt } as unknown as DialogTracker;
    claimer = new DialogClaimer({ nodeId: init.nodeId, store: dialogStore, registry, tracker, onPeerDead: () => sn.notePeerTakeover(), onRinging: adopt });
    if (init.firstStart) claimer.start();
    else {
      claimTimer = setInterval(() => void claimer!.tick(), 1000);
      claimTimer.unref();
    }
  }
  // call-load counts and limits see every worker's calls.
  const callLoad = Object.keys(cfg.dispatcher.sets).length > 0 ? new NodeCallLoad({ hub, own: sn.dialogs }) : undefined;
  ds = new DispatcherService({ config: cfg.dispatcher, stack: sn.stack, callLoad: callLoad ?? sn.dialogs });
  services[DISPATCHER_SERVICE] = ds;

  hub.on('shutdown', async (m) => {
    try {
      ds?.close();
      callLoad?.close();
      await admin.close();
      claimer?.stop();
      clearInterval(claimTimer);
      await sn.shutdown(m.graceMs);
      hep?.close();
      channel.close();
      await dialogStore?.close();
      await nonceCounts.close();
      await authFailures.close();
      await redis?.close();
    } catch (err) {
      logger.error({ err }, 'error while shutting down a worker');
    }
    setImmediate(() => process.exit(0));
    return true;
  });
  // The worker's own admin API (loopback, the primary's token): the primary forwards the
  // dispatcher routes here (the operations API is the primary's: it is the node's).
  const admin = await startAdminServer({ host: '127.0.0.1', port: 0, token: init.adminToken, routes: [dispatcherRoutes(ds.dispatcher, ds.prober)] });
  hub.send({ t: 'ready', channelPort, lps, adminPort: admin.port });
}
