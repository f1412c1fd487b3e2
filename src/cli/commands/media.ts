import type { Command } from 'commander';
import { startAdminServer } from '../../admin/admin-server.js';
import { logger, setLogLevel } from '../../util/logger.js';
import { parseHostPort, type MediaConfigInput } from '../../media/config-schema.js';
import { startMediaNode } from '../../media/media-node.js';

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
      let stopping = false;
      const stop = async (signal: string): Promise<void> => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping media node');
        const force = setTimeout(() => process.exit(1), 5000);
        force.unref();
        await adminServer?.close().catch(() => undefined);
        await node.close().catch(() => undefined);
        logger.flush();
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
    });
}
