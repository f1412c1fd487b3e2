import type { Command } from 'commander';
import { hostname } from 'node:os';
import { startAdminServer } from '../../admin/admin-server.js';
import { startMediaOperations } from '../../admin/operations.js';
import { logger, setLogLevel } from '../../util/logger.js';
import { parseHostPort, type MediaConfigInput } from '../../media/config-schema.js';
import { startMediaNode } from '../../media/media-node.js';
import { startMediaClusterNode } from '../../media/cluster/media-cluster-node.js';
import { clusterConfigSchema, stateConfigSchema } from '../../cluster/config-schema.js';

interface MediaCliOptions {
  ng: string;
  ngTcp?: string;
  ngAllow?: string[];
  interface: string;
  advertise?: string;
  rtpPorts: string;
  admin?: string;
  adminToken?: string;
  workers?: string;
  forwarder?: string;
  maxSessions?: string;
  timeout?: string;
  maxDuration?: string;
  logLevel?: string;
  nodeId?: string;
  vip?: string[];
  standbyVip?: string[];
  takeover?: string;
  redis?: string;
  clusterName?: string;
  leaseTtl?: string;
  leasePoll?: string;
  snapshotInterval?: string;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), ...v.split(',').filter(Boolean)];

/**
 * `tandem media`: runs a media node (ng control + RTP relay). Prints one JSON line
 * `{"event":"ready",...}` on stdout with the bound ports once it serves; SIGTERM/SIGINT stop it
 * cleanly.
 */
export function registerMediaCommand(program: Command): void {
  program
    .command('media')
    .description('run a media node: rtpengine-compatible ng control protocol and RTP/RTCP relay')
    .option('--ng <host:port>', 'ng control UDP address', '127.0.0.1:2223')
    .option('--ng-tcp <host:port>', 'ng control TCP address (off by default)')
    .option('--ng-allow <cidr>', 'networks allowed to send ng commands (repeatable; default loopback only)', collect)
    .option('--interface <addr>', 'address the media sockets bind to', '127.0.0.1')
    .option('--advertise <addr>', 'address written into SDP (default: the interface)')
    .option('--rtp-ports <min-max>', 'media port range', '30000-39999')
    .option('--admin <host:port>', 'admin HTTP (health, metrics, sessions, ng over HTTP/WebSocket); loopback unless a token is set')
    .option('--admin-token <token>', 'bearer token for admin writes, ng over HTTP/WebSocket, and reads off loopback; also TANDEM_ADMIN_TOKEN')
    .option('--workers <n>', 'forwarding worker threads (default: one per core)')
    .option('--forwarder <kind>', 'packet forwarding: auto (native if it builds, else js), native, js')
    .option('--max-sessions <n>', 'calls beyond this many get "load limit" (default and 0: as many as the port range holds)')
    .option('--timeout <sec>', 'tear down calls with no media for this long (default 60)')
    .option('--max-duration <sec>', 'hard limit on a call\'s duration (default 0: none; calls without media end after --timeout)')
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error)')
    .option('--node-id <name>', 'this node\'s name in the cluster (default: host name and pid)')
    .option('--vip <addr>', 'virtual address: ng and every media port live on it; a second node with the same --vip is the hot standby (repeatable)', collect)
    .option('--standby-vip <addr>', 'virtual address this node only stands by for (active/active: the other node\'s --vip); contested 3 lease TTLs after start (repeatable)', collect)
    .option('--takeover <mode>', 'how a VIP moves: lease (a Redis lease; the new holder binds the calls\' ports) or keepalived (VRRP moves the address; ports bound in advance, needs net.ipv4.ip_nonlocal_bind=1)', 'lease')
    .option('--redis <url>', 'shared state: redis://host:port or redis-sentinel://h1:p1,h2:p2/name (needed with --vip)')
    .option('--cluster-name <name>', 'cluster name (Redis key namespace)', 'tandem')
    .option('--lease-ttl <ms>', 'VIP lease lifetime: a dead holder\'s calls move after at most this plus --lease-poll (default 600)')
    .option('--lease-poll <ms>', 'how often a standby tries to take a VIP (default 100)')
    .option('--snapshot-interval <ms>', 'how often each call\'s record is rewritten with fresh counters', '2000')
    .action(async (o: MediaCliOptions) => {
      if (o.logLevel) setLogLevel(o.logLevel);
      const input: MediaConfigInput = {
        ng: o.ng,
        interface: o.interface,
        rtpPorts: o.rtpPorts,
        ...(o.ngTcp ? { ngTcp: o.ngTcp } : {}),
        ...(o.ngAllow?.length ? { ngAllow: o.ngAllow } : {}),
        ...(o.advertise ? { advertise: o.advertise } : {}),
        ...(o.workers ? { workers: Number(o.workers) } : {}),
        ...(o.forwarder ? { forwarder: o.forwarder as 'auto' | 'native' | 'js' } : {}),
        ...(o.maxSessions ? { maxSessions: Number(o.maxSessions) } : {}),
        ...(o.timeout ? { noMediaTimeoutSec: Number(o.timeout) } : {}),
        ...(o.maxDuration ? { maxSessionSec: Number(o.maxDuration) } : {}),
      };
      const admin = o.admin ? parseHostPort(o.admin) : undefined;
      if (o.admin && !admin) {
        console.error(`tandem media: --admin: expected host:port, got ${o.admin}`);
        process.exit(2);
      }
      if (o.vip?.length) return runCluster(o, input, admin);
      let node;
      try {
        node = await startMediaNode(input);
      } catch (err) {
        console.error(`tandem media: ${(err as Error).message}`);
        process.exit(2);
      }
      const token = o.adminToken ?? process.env['TANDEM_ADMIN_TOKEN'];
      let adminServer: Awaited<ReturnType<typeof startAdminServer>> | undefined;
      try {
        adminServer = admin ? await startAdminServer({ host: admin.host, port: admin.port, routes: [node.adminRoutes], ...(token ? { token } : {}) }) : undefined;
      } catch (err) {
        console.error(`tandem media: ${(err as Error).message}`);
        await node.close();
        process.exit(2);
      }
      process.stdout.write(
        JSON.stringify({
          event: 'ready',
          ngPort: node.ngPort,
          ngTcpPort: node.ngTcpPort ?? null,
          adminPort: adminServer?.port ?? null,
          advertisedAddress: node.advertisedAddress,
          pid: process.pid,
        }) + '\n',
      );
      stopOnSignals('stopping media node', [() => adminServer?.close(), () => node.close()]);
    });
}

/**
 * SIGTERM/SIGINT: closes each part in order (a failure does not stop the others), then exits;
 * a process that does not get there within 5 s is ended with status 1.
 */
function stopOnSignals(what: string, closers: Array<() => Promise<unknown> | undefined>): void {
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, what);
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    for (const close of closers) await Promise.resolve(close()).catch(() => undefined);
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** `tandem media --vip ...`: a media cluster node (hot standby and takeover through Redis). */
async function runCluster(o: MediaCliOptions, input: MediaConfigInput, admin: { host: string; port: number } | undefined): Promise<void> {
  if (!o.redis) {
    console.error('tandem media: --vip needs shared state: give --redis URL');
    process.exit(2);
  }
  const numeric = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  // The same schema as `tandem start`'s cluster and state sections: every problem printed.
  const cluster = clusterConfigSchema.safeParse({
    ...(o.nodeId ? { nodeId: o.nodeId } : {}),
    name: o.clusterName ?? 'tandem',
    vips: [...(o.vip ?? []), ...(o.standbyVip ?? [])],
    takeover: o.takeover,
    leaseTtlMs: numeric(o.leaseTtl),
    leasePollMs: numeric(o.leasePoll),
  });
  const state = stateConfigSchema.safeParse({ redis: o.redis });
  const snapshotIntervalMs = numeric(o.snapshotInterval) ?? 2000;
  const problems = [
    ...(cluster.success ? [] : cluster.error.issues.map((i) => `cluster.${i.path.join('.')}: ${i.message}`)),
    ...(state.success ? [] : state.error.issues.map((i) => `state.${i.path.join('.')}: ${i.message}`)),
    ...(Number.isInteger(snapshotIntervalMs) && snapshotIntervalMs >= 100 ? [] : [`--snapshot-interval: expected an integer >= 100 ms, got ${o.snapshotInterval}`]),
  ];
  if (problems.length || !cluster.success) {
    console.error(`tandem media: invalid cluster options:\n${problems.join('\n')}`);
    process.exit(2);
  }
  const c = cluster.data;
  let node;
  try {
    node = await startMediaClusterNode(input, {
      nodeId: c.nodeId ?? `${hostname()}-${process.pid}`,
      vips: o.vip!,
      ...(o.standbyVip?.length ? { standbyVips: o.standbyVip } : {}),
      takeover: c.takeover,
      redis: o.redis,
      cluster: c.name,
      leaseTtlMs: c.leaseTtlMs,
      leasePollMs: c.leasePollMs,
      snapshotIntervalMs,
    });
  } catch (err) {
    console.error(`tandem media: ${(err as Error).message}`);
    process.exit(2);
  }
  const token = o.adminToken ?? process.env['TANDEM_ADMIN_TOKEN'];
  // Heartbeats as role `media` (listed by every node's dashboard and `tandem status`); /api/* and the dashboard.
  const started = node;
  const ops = startMediaOperations({
    nodeId: started.nodeId, clusterName: o.clusterName ?? 'tandem', state: started.state, vips: [...o.vip!, ...(o.standbyVip ?? [])],
    held: () => started.held(), statistics: () => started.statistics(), ng: o.vip!.map((v) => `${v}:${started.ngPort}`),
    ...(o.redis ? { redisUrl: o.redis } : {}), ...(o.admin ? { admin: o.admin } : {}), summary: { role: 'media', vips: o.vip, standbyVips: o.standbyVip ?? [] },
  });
  let adminServer: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  try {
    adminServer = admin
      ? await startAdminServer({
          host: admin.host,
          port: admin.port,
          routes: [
            ...ops.routes,
            (app) => {
              app.get('/media/cluster', async () => node.status());
              app.get('/media/statistics', async (req) => ((await node.statistics((req.query as { vip?: string }).vip)) as { statistics: unknown }).statistics);
            },
          ],
          ...(token ? { token } : {}),
        })
      : undefined;
  } catch (err) {
    console.error(`tandem media: ${(err as Error).message}`);
    await node.close();
    process.exit(2);
  }
  process.stdout.write(JSON.stringify({ event: 'ready', ngPort: node.ngPort, ngTcpPort: null, adminPort: adminServer?.port ?? null, nodeId: node.nodeId, vips: o.vip, standbyVips: o.standbyVip ?? [], pid: process.pid }) + '\n');
  stopOnSignals('stopping media cluster node', [() => ops.close(), () => adminServer?.close(), () => node.close()]);
}
