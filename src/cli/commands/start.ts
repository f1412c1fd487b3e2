import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { startAdminServer } from '../../admin/admin-server.js';
import { dispatcherRoutes } from '../../admin/dispatcher-routes.js';
import { startOperations } from '../../admin/operations.js';
import { HepExporter, parseHepTarget, type HepExporterOptions } from '../../admin/hep/hep-exporter.js';
import { startMediaNode, type MediaNode } from '../../media/media-node.js';
import { parseListen } from '../../signalling/config-schema.js';
import { DispatcherService, DISPATCHER_SERVICE } from '../../signalling/dispatcher/service.js';
import { loadUsersFile, MapUserDirectory } from '../../signalling/auth/user-file.js';
import { NgMediaControl } from '../../signalling/media-control/ng-media-control.js';
import type { RouteHook } from '../../signalling/proxy/types.js';
import { SignallingNode } from '../../signalling/signalling-node.js';
import type { ListenSpec } from '../../sip/transport/types.js';
import { logger, setLogLevel } from '../../util/logger.js';
import { gcThreadsFor, poolSizeOf } from '../../util/gc-threads.js';
import { readConfigFile, setPath, validateConfig, type TandemConfig } from '../config.js';
import { startClusterRuntime } from '../cluster-runtime.js';
import { Accounting } from '../../signalling/accounting/accounting.js';
import type { SignallingNodeOptions } from '../../signalling/signalling-node.js';
import type { AuthFailureStore, DialogStore, LocationStore, NonceCountStore } from '../../state/store.js';
import type { TransportOptions } from '../../sip/transport/types.js';
import nodeCluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { runPrimary } from '../workers/primary.js';
import { runWorker } from '../workers/worker.js';
import { DialogClaimer } from '../../signalling/dialogs/dialog-claimer.js';

interface StartCliOptions {
  config?: string;
  sip?: string[];
  domain?: string[];
  users?: string;
  auth?: boolean;
  admin?: string;
  adminToken?: string;
  logLevel?: string;
  mediaNg?: string[];
  media?: boolean;
  route?: string;
  tlsCert?: string;
  tlsKey?: string;
  nodeId?: string;
  vip?: string[];
  takeover?: string;
  redis?: string;
  cdr?: string;
  hep?: string;
  hepId?: string;
  hepPassword?: string;
  workers?: string;
  gcThreads?: string;
}

/** HEP export options from the flags (`--hep udp:HOST:PORT`, `--hep-id`, `--hep-password`). */
function hepFlags(o: StartCliOptions): Omit<HepExporterOptions, 'nodeName'> | undefined {
  if (!o.hep) return undefined;
  const t = parseHepTarget(o.hep);
  if (!t.ok) throw new Error(t.reason);
  const id = o.hepId === undefined ? undefined : Number(o.hepId);
  if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) throw new Error(`--hep-id must be an integer 0..4294967295, got ${o.hepId}`);
  const password = o.hepPassword ?? process.env['TANDEM_HEP_PASSWORD'];
  return { target: o.hep, ...(id !== undefined ? { captureId: id } : {}), ...(password ? { password } : {}) };
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** Applies flags over the file's values (flags win), before validation. */
function applyFlags(raw: Record<string, unknown>, o: StartCliOptions): void {
  if (o.sip?.length) setPath(raw, ['signalling', 'listen'], o.sip);
  if (o.domain?.length) setPath(raw, ['signalling', 'domains'], o.domain);
  if (o.users) setPath(raw, ['signalling', 'users'], o.users);
  if (o.auth === false) setPath(raw, ['signalling', 'auth', 'enabled'], false);
  if (o.admin) raw['admin'] = o.admin;
  const token = o.adminToken ?? process.env['TANDEM_ADMIN_TOKEN'];
  if (token) raw['adminToken'] = token;
  if (o.logLevel) raw['logLevel'] = o.logLevel;
  if (o.mediaNg?.length) setPath(raw, ['signalling', 'mediaControl', 'ng'], o.mediaNg);
  if (o.media === false) setPath(raw, ['signalling', 'mediaControl', 'enabled'], false);
  if (o.route) setPath(raw, ['signalling', 'routeScript'], o.route);
  if (o.tlsCert || o.tlsKey) setPath(raw, ['signalling', 'tls'], { cert: o.tlsCert ?? '', key: o.tlsKey ?? '' });
  if (o.nodeId) setPath(raw, ['cluster', 'nodeId'], o.nodeId);
  if (o.vip?.length) setPath(raw, ['cluster', 'vips'], o.vip);
  if (o.takeover) setPath(raw, ['cluster', 'takeover'], o.takeover);
  if (o.redis) setPath(raw, ['state', 'redis'], o.redis);
  if (o.cdr) setPath(raw, ['signalling', 'accounting', 'file'], o.cdr);
  // Digits become a number; anything else goes as written, for validation to name it.
  const count = (v: string): number | string => (/^\d+$/.test(v) ? Number(v) : v);
  if (o.workers !== undefined) setPath(raw, ['signalling', 'workers'], count(o.workers));
  if (o.gcThreads !== undefined) setPath(raw, ['signalling', 'gcThreads'], count(o.gcThreads));
}

export async function loadRouteHook(path: string): Promise<RouteHook> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown; route?: unknown };
  const fn = typeof mod.route === 'function' ? mod.route : mod.default;
  if (typeof fn !== 'function') throw new Error(`${path}: expected an exported function route(request, context) (named "route" or default)`);
  return fn as RouteHook;
}

export function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/**
 * `tandem start`: the single-machine node — registrar, digest auth, stateful proxy, dispatcher,
 * and (unless --no-media or --media-ng) an in-process media node relaying every call's RTP.
 * Prints `tandem: listening ...` on stdout once it serves. SIGTERM/SIGINT: new calls get 503,
 * live transactions finish, the process exits within a few seconds.
 */
export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('run the signalling node (registrar, proxy) with an in-process media relay')
    .option('--config <file>', 'YAML config file')
    .option('--sip <transport:addr:port>', 'SIP listening point, e.g. udp:127.0.0.1:5060 (repeatable)', collect)
    .option('--domain <name>', 'SIP domain served (repeatable)', collect)
    .option('--users <file>', 'users file (CSV user,password or YAML)')
    .option('--no-auth', 'do not challenge requests (digest authentication off)')
    .option('--admin <host:port>', 'admin HTTP: /health, /metrics, dispatcher API (loopback unless a token is set)')
    .option('--admin-token <token>', 'bearer token for admin writes (and reads off loopback); also TANDEM_ADMIN_TOKEN')
    .option('--log-level <level>', 'trace, debug, info, warn, error')
    .option('--media-ng <host:port>', 'external media node ng address (repeatable; one chosen per call)', collect)
    .option('--no-media', 'do not relay media (SDP passes unchanged)')
    .option('--route <file>', 'routing script exporting route(request, context)')
    .option('--tls-cert <file>', 'certificate (PEM) for tls listening points')
    .option('--tls-key <file>', 'private key (PEM) for tls listening points')
    .option('--node-id <name>', 'this node\'s name in its cluster (default: host name and pid)')
    .option('--vip <addr>', 'shared address of the cluster, served while this node holds it (repeatable)', collect)
    .option('--takeover <mode>', 'how a --vip moves: keepalived (bound in advance; needs ip_nonlocal_bind) or lease (elected through Redis)')
    .option('--cdr <file>', 'append one JSON line per call (accounting) to this file')
    .option('--redis <url>', 'shared state: redis://host:port[/db] or redis-sentinel://h1:p1,h2:p2/mastername')
    .option('--hep <udp:host:port>', 'send every SIP message to a Homer collector as HEPv3 (heplify-server)')
    .option('--hep-id <n>', 'HEP capture agent id of this node (default 2001)')
    .option('--hep-password <password>', 'HEP auth key; also TANDEM_HEP_PASSWORD')
    .option('--workers <n>', 'worker processes sharing the SIP listening points, each call held by one (default: the number of cores, 1 with dispatcher sets; 1: a single process)')
    .option('--gc-threads <n>', 'garbage-collection helper threads per worker process (node --v8-pool-size; default: cores per process less one, 1 to 4)')
    .action(async (o: StartCliOptions) => {
      const file = readConfigFile(o.config);
      if (!file.ok) {
        for (const e of file.errors) console.error(`tandem start: config: ${e}`);
        process.exit(2);
      }
      const raw = file.value;
      applyFlags(raw, o);
      const v = validateConfig(raw);
      if (!v.ok) {
        console.error(`tandem start: invalid configuration${o.config ? ` in ${o.config}` : ''}:`);
        for (const e of v.errors) console.error(`  ${e}`);
        process.exit(2);
      }
      try {
        const hep = hepFlags(o);
        const workers = defaultWorkers(v.value);
        if (nodeCluster.isWorker) await runWorker(v.value, hep);
        else if (workers > 1) await runPrimary(v.value, hep, workers);
        else await run(v.value, hep);
      } catch (err) {
        console.error(`tandem start: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      }
    });
}

/**
 * A single process cannot change its garbage-collection thread pool once Node has started: it
 * says so when it was started with more helpers than this machine leaves it (src/util/gc-threads.ts).
 */
function checkGcThreads(wanted: number): void {
  const have = poolSizeOf(process.execArgv, process.env['NODE_OPTIONS']);
  if (have > wanted) {
    logger.warn({ gcThreads: have, wanted }, `garbage-collection helper threads: ${have}, more than the ${wanted} this machine leaves a single process; they preempt the event loop during major collections (start node with --v8-pool-size=${wanted})`);
  }
}

/**
 * Worker processes: as configured, else one per core. The dispatcher rotates and counts calls per
 * process (src/signalling/workers/README.md, limits), so a node with dispatcher sets runs one
 * process unless told otherwise.
 */
export function defaultWorkers(cfg: Readonly<TandemConfig>): number {
  if (cfg.signalling.workers !== undefined) {
    if (cfg.signalling.workers > 1 && Object.keys(cfg.dispatcher.sets).length > 0 && !nodeCluster.isWorker) {
      logger.warn({ workers: cfg.signalling.workers }, 'dispatcher sets with several workers: round-robin rotates and call-load limits count per worker');
    }
    return cfg.signalling.workers;
  }
  return Object.keys(cfg.dispatcher.sets).length > 0 ? 1 : availableParallelism();
}

/** What `signallingNodeOptions` needs besides the config. */
export interface NodeDeps {
  users: MapUserDirectory | undefined;
  listen: ListenSpec[];
  secret: string | undefined;
  nodeId: string;
  isTrustedSource: (address: string) => boolean;
  routeHook: RouteHook | undefined;
  media: NgMediaControl | undefined;
  services: Record<string, unknown>;
  locationStore: LocationStore | undefined;
  dialogStore: DialogStore | undefined;
  nonceCounts: NonceCountStore | undefined;
  authFailures: AuthFailureStore | undefined;
  accounting: Accounting;
  transport?: TransportOptions;
}

/** The signalling node's options from the config (one process, or one worker of several). */
export function signallingNodeOptions(cfg: Readonly<TandemConfig>, d: NodeDeps): SignallingNodeOptions {
  const s = cfg.signalling;
  return {
    listen: d.listen,
    domains: [...s.domains],
    auth: {
      enabled: s.auth.enabled,
      ...(s.auth.realm ? { realm: s.auth.realm } : {}),
      ...(d.secret ? { secret: d.secret } : {}),
      nonceLifetimeSec: s.auth.nonceLifetimeSec,
      algorithms: [...s.auth.algorithms],
      maxFailures: s.auth.maxFailures,
      failureWindowSec: s.auth.failureWindowSec,
      blockSec: s.auth.blockSec,
      allowNoQop: s.auth.allowNoQop,
      bindNonceToSource: s.auth.bindNonceToSource,
      trustedNetworks: [...s.auth.trustedNetworks],
    },
    // The dispatcher's PBXs are never blocked after failed authentications (spoofable UDP).
    isTrustedSource: d.isTrustedSource,
    ...(d.users ? { users: d.users } : {}),
    registrar: { minExpiresSec: s.registrar.minExpiresSec, maxExpiresSec: s.registrar.maxExpiresSec, defaultExpiresSec: s.registrar.defaultExpiresSec, maxContactsPerAor: s.registrar.maxContactsPerAor },
    fastRegister: s.registrar.fastPath,
    proxy: { ...s.proxy },
    transaction: { ...s.transaction },
    ...(d.routeHook ? { routeHook: d.routeHook } : {}),
    ...(d.media ? { media: d.media } : {}),
    services: d.services,
    nodeName: d.nodeId,
    clusterAddresses: [...cfg.cluster.vips],
    ...(d.locationStore ? { locationStore: d.locationStore } : {}),
    ...(d.dialogStore ? { dialogStore: d.dialogStore, shareEarlyDialogs: cfg.cluster.keepRingingCalls } : {}),
    ...(d.nonceCounts ? { nonceCounts: d.nonceCounts } : {}),
    accounting: d.accounting,
    ...(d.authFailures ? { authFailures: d.authFailures } : {}),
    ...(d.transport ? { transport: d.transport } : {}),
  };
}

/** The users file of the config, loaded (throws with the reason when it cannot be). */
export function loadUsers(cfg: Readonly<TandemConfig>): MapUserDirectory | undefined {
  if (!cfg.signalling.users) return undefined;
  const r = loadUsersFile(cfg.signalling.users);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

/** Listening points of the config, with TLS material and the advertised host. */
export function listenSpecs(cfg: Readonly<TandemConfig>): { listen: ListenSpec[]; tls: ListenSpec['tls'] } {
  const s = cfg.signalling;
  let tls: ListenSpec['tls'];
  if (s.tls) tls = { cert: readFileSync(s.tls.cert), key: readFileSync(s.tls.key) };
  const listen: ListenSpec[] = s.listen.map((l) => {
    const p = parseListen(l)!;
    // Record-Route carries the cluster's shared address (the proxy is told below); Via carries the
    // address a request leaves from: the VIP while this node holds it (its sockets are preferred
    // then), else the node's own, so responses come back to the node holding the transaction.
    return { ...p, ...(p.transport === 'tls' && tls ? { tls } : {}), ...(s.advertise ? { advertise: s.advertise } : {}) };
  });
  return { listen, tls };
}

/** `tandem start` in one process (`--workers 1`). */
async function run(cfg: Readonly<TandemConfig>, hepOptions?: Omit<HepExporterOptions, 'nodeName'>): Promise<void> {
  setLogLevel(cfg.logLevel);
  const s = cfg.signalling;
  checkGcThreads(s.gcThreads ?? gcThreadsFor(availableParallelism(), 1));
  const users = loadUsers(cfg);
  const cluster = await startClusterRuntime(cfg.cluster, cfg.state, s.auth.secret, s.auth, { role: 'signalling', sip: s.listen.join(' ') });
  // Tracing starts before the node listens, so its first message is exported too.
  const hep = hepOptions ? new HepExporter({ ...hepOptions, nodeName: cluster.nodeId }) : undefined;
  await hep?.start();
  const vips = cfg.cluster.vips;
  if (s.auth.enabled && !users) logger.warn('authentication is on but no users file is configured: every local user will be refused');
  const { listen, tls } = listenSpecs(cfg);

  let mediaNode: MediaNode | undefined;
  let mediaControl: NgMediaControl | undefined;
  if (s.mediaControl.enabled) {
    let nodes = s.mediaControl.ng.map(splitHostPort);
    if (nodes.length === 0) {
      // Port 0 for ng by default in-process: nothing else needs to reach it.
      mediaNode = await startMediaNode({ ...cfg.media, ng: cfg.media.ng === '127.0.0.1:2223' ? '127.0.0.1:0' : cfg.media.ng });
      nodes = [{ host: mediaNode.ngHost, port: mediaNode.ngPort }];
    }
    mediaControl = new NgMediaControl({ nodes, timeoutMs: s.mediaControl.timeoutMs });
  }

  const routeHook = s.routeScript ? await loadRouteHook(s.routeScript) : undefined;
  const services: Record<string, unknown> = {};
  let ds: DispatcherService | undefined;
  const domains = s.domains.length ? [...s.domains] : [];
  const node = new SignallingNode(
    signallingNodeOptions(cfg, {
      users,
      listen,
      secret: s.auth.secret ?? cluster.secret,
      nodeId: cluster.nodeId,
      isTrustedSource: (address) => ds?.isDestinationAddress(address) ?? false,
      routeHook,
      media: mediaControl,
      services,
      locationStore: cluster.locationStore,
      dialogStore: cluster.dialogStore,
      nonceCounts: cluster.nonceCounts,
      authFailures: cluster.authFailures,
      accounting: new Accounting({ store: cluster.accountingStore, nodeId: cluster.nodeId, ...(s.accounting.file ? { file: s.accounting.file } : {}) }),
    }),
  );
  // The node's own listening points (the VIPs' are added and removed as they move).
  const lps = [...(await node.start())];
  await cluster.startTakeover(node, lps, tls);
  // A dead node's dialogs (counts, timeouts) are claimed by a live one.
  const claimer = cluster.dialogStore && cluster.registry ? new DialogClaimer({ nodeId: cluster.nodeId, store: cluster.dialogStore, registry: cluster.registry, tracker: node.dialogs, onPeerDead: () => node.notePeerTakeover(), onRinging: (rec) => void node.resumeRinging(rec) }) : undefined;
  claimer?.start();
  ds = new DispatcherService({ config: cfg.dispatcher, stack: node.stack, callLoad: node.dialogs });
  services[DISPATCHER_SERVICE] = ds;

  const routes = [dispatcherRoutes(ds.dispatcher, ds.prober)];
  if (mediaNode) routes.push(mediaNode.adminRoutes);
  const dispatcher = ds.dispatcher;
  const ops = startOperations({
    nodeId: cluster.nodeId, clusterName: cfg.cluster.name, vips: [...vips], takeover: cfg.cluster.takeover,
    ...(cluster.state ? { state: cluster.state } : {}), ...(cluster.registry ? { registry: cluster.registry } : {}), ...(cfg.state.redis ? { redisUrl: cfg.state.redis } : {}),
    held: () => cluster.takeover?.held().map((h) => h.vip) ?? [], signalling: node, dispatcher: () => dispatcher,
    ...(cluster.dialogStore ? { dialogStore: cluster.dialogStore } : {}), ...(mediaNode ? { mediaNode } : {}), ...(cfg.admin ? { admin: cfg.admin } : {}),
    ...(hep ? { hep } : {}),
    summary: { role: 'signalling', sip: [...s.listen], domains, vips: [...vips], takeover: cfg.cluster.takeover, media: s.mediaControl.enabled },
  });
  routes.push(...ops.routes);
  routes.push((app) => {
    app.get('/signalling/status', async () => ({
      bindings: node.location.size(),
      aors: node.location.aorCount(),
      transactions: node.transactions.size,
      dialogs: node.dialogs.counts(),
      draining: node.draining,
      cluster: { nodeId: cluster.nodeId, vips: [...vips], held: cluster.takeover?.held() ?? [], takeover: cfg.cluster.takeover, redis: cfg.state.redis !== undefined },
    }));
  });
  let admin: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  if (cfg.admin) {
    const a = splitHostPort(cfg.admin);
    admin = await startAdminServer({ host: a.host, port: a.port, routes, ...(cfg.adminToken ? { token: cfg.adminToken } : {}) });
  }

  const realm = s.auth.realm ?? domains[0] ?? lps[0]?.host ?? 'tandem';
  const first = lps[0]!;
  const where = lps.map((lp) => `${lp.transport}:${lp.address}:${lp.port}`).join(' ');
  const mediaText = !mediaControl ? 'off' : mediaNode ? `in-process ng 127.0.0.1:${mediaNode.ngPort}` : mediaControl.nodeNames.join(',');
  process.stdout.write(
    `tandem: listening ${where} domain=${domains[0] ?? first.host} auth=${s.auth.enabled ? 'on' : 'off'} media=${mediaText}${admin ? ` admin=http://${cfg.admin?.split(':')[0]}:${admin.port}` : ''} node=${cluster.nodeId}${vips.length ? ` vips=${vips.join(',')} takeover=${cfg.cluster.takeover}` : ''} pid=${process.pid}\n`,
  );
  process.stdout.write(
    `tandem: point a softphone at it: SIP server ${vips[0] ?? first.host}:${first.sentByPort} (${first.transport.toUpperCase()}), domain ${domains[0] ?? first.host}, auth realm ${realm}` +
      `${users ? `, users from ${s.users} (${users.size} users)` : ''}\n`,
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: refusing new calls, letting transactions finish');
    const hard = setTimeout(() => process.exit(0), s.shutdownGraceMs + 2000);
    hard.unref();
    try {
      ds?.close();
      claimer?.stop();
      // Leases first: the peer takes the VIPs over at once instead of after their TTL.
      await cluster.takeover?.stop();
      await node.shutdown(s.shutdownGraceMs);
      await ops.close();
      hep?.close();
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
