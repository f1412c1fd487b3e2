import type { Command } from 'commander';
import type { ClusterSnapshot } from '../../admin/cluster-monitor.js';
import type { ClusterEvent } from '../../admin/event-log.js';

interface StatusCliOptions {
  admin: string;
  token?: string;
  json?: boolean;
  events: string;
  timeout: string;
}

/** What `tandem status --json` prints. */
export interface StatusReport {
  admin: string;
  cluster: ClusterSnapshot;
  events: ClusterEvent[];
}

async function getJson<T>(base: string, path: string, token: string | undefined, timeoutMs: number): Promise<T> {
  const res = await fetch(new URL(path, base), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status === 401) throw new Error(`${base}: 401: the admin API wants a bearer token (--token or TANDEM_ADMIN_TOKEN)`);
  if (!res.ok) throw new Error(`${base}${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function age(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** The human-readable report. */
export function formatStatus(r: StatusReport): string {
  const c = r.cluster;
  const out: string[] = [];
  const live = c.nodes.filter((n) => n.live).length;
  out.push(`cluster ${c.cluster}: ${live} live node${live === 1 ? '' : 's'} (seen by ${c.nodeId} at ${new Date(c.atMs).toISOString()})`);
  const redis = c.redis;
  out.push(
    `redis: ${!redis.configured ? 'not configured (single node)' : redis.connected ? `${redis.mode ?? ''} ${redis.address ?? ''} connected${redis.latencyMs !== undefined ? `, ${redis.latencyMs} ms` : ''}, outbox ${redis.outboxDepth}${redis.replicas.length ? `, replicas ${redis.replicas.map((x) => `${x.address} lag ${x.lagSec}s`).join(', ')}` : ''}` : 'UNREACHABLE'}`,
  );
  out.push('');
  const rows = [['NODE', 'STATE', 'ROLE', 'VIPS', 'HEARTBEAT', 'CALLS', 'EARLY', 'REGS', 'MEDIA', 'TX']];
  for (const n of c.nodes) {
    const s = n.stats;
    rows.push([
      `${n.nodeId}${n.self ? '*' : ''}`,
      n.live ? (s?.draining ? 'draining' : 'up') : 'DOWN',
      n.meta?.['role'] ?? 'signalling',
      n.vips.join(',') || '-',
      age(n.heartbeatAgeMs),
      String(s?.activeCalls ?? '-'),
      String(s?.earlyCalls ?? '-'),
      String(s?.registrations ?? '-'),
      String(s?.mediaSessions ?? '-'),
      String(s?.transactions ?? '-'),
    ]);
  }
  out.push(table(rows));
  if (c.vips.length) {
    out.push('');
    out.push(table([['VIP', 'HOLDER', 'EPOCH'], ...c.vips.map((v) => [v.vip, v.holder ?? 'nobody', v.epoch !== undefined ? String(v.epoch) : '-'])]));
  }
  const pbx = c.nodes.find((n) => n.self)?.stats?.pbx ?? [];
  if (pbx.length) {
    out.push('');
    out.push(table([['PBX', 'SET', 'STATE', 'CALLS'], ...pbx.map((p) => [p.uri, p.set, p.state, String(p.activeCalls)])]));
  }
  out.push('');
  out.push('last events:');
  if (r.events.length === 0) out.push('  (none)');
  for (const e of r.events) out.push(`  ${new Date(e.atMs).toISOString().slice(11, 19)}  ${e.kind.padEnd(14)} ${e.text}`);
  return out.join('\n');
}

/** `tandem status`: the cluster at a glance, from any node's admin API. */
export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the cluster at a glance: nodes, roles, VIPs, calls, registrations, last events (from a node\'s admin API)')
    .option('--admin <url>', 'admin API of any node', 'http://127.0.0.1:8080')
    .option('--token <token>', 'admin bearer token (needed off loopback); also TANDEM_ADMIN_TOKEN')
    .option('--json', 'print JSON for scripts')
    .option('--events <n>', 'last events shown', '10')
    .option('--timeout <ms>', 'HTTP timeout', '5000')
    .action(async (o: StatusCliOptions) => {
      const base = /^https?:\/\//.test(o.admin) ? o.admin : `http://${o.admin}`;
      const token = o.token ?? process.env['TANDEM_ADMIN_TOKEN'];
      const timeoutMs = Math.max(100, Number(o.timeout) || 5000);
      const n = Math.min(100, Math.max(0, Number(o.events) || 0));
      try {
        const [cluster, ev] = await Promise.all([
          getJson<ClusterSnapshot>(base, '/api/cluster', token, timeoutMs),
          n > 0 ? getJson<{ events: ClusterEvent[] }>(base, `/api/events?limit=${n}`, token, timeoutMs) : Promise.resolve({ events: [] }),
        ]);
        const report: StatusReport = { admin: base, cluster, events: ev.events };
        process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
      } catch (err) {
        const msg = err instanceof Error ? (err.name === 'TimeoutError' ? `${base}: no answer within ${timeoutMs} ms` : err.message) : String(err);
        console.error(`tandem status: ${msg}${err instanceof TypeError && 'cause' in err ? ` (${String((err.cause as Error)?.message ?? err.cause)})` : ''}`);
        process.exit(1);
      }
    });
}
