import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { keepalivedConfig, validateKeepalivedOptions, type KeepalivedOptionsInput } from '../../cluster/keepalived-config.js';
import { parseListen } from '../../signalling/config-schema.js';
import { readConfigFile, validateConfig } from '../config.js';

interface KeepalivedCliOptions {
  config?: string;
  role: string;
  nodeId?: string;
  clusterName?: string;
  vip?: string[];
  standbyVip?: string[];
  dev?: string;
  src?: string;
  peer?: string[];
  priority?: string;
  standbyPriority?: string;
  advertInterval?: string;
  routerId?: string;
  prefixLength?: string;
  admin?: string;
  health?: boolean;
  preempt?: string;
  preemptDelay?: string;
  notify?: string;
  rtPriority?: string;
  standbyGrace?: string;
  out?: string;
  check?: boolean;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), ...v.split(',').filter(Boolean)];

/** The network device that holds `address` on this host, if any. */
function deviceOf(address: string): string | undefined {
  for (const [dev, addrs] of Object.entries(networkInterfaces())) if (addrs?.some((a) => a.address === address)) return dev;
  return undefined;
}

/**
 * Flags over the node's Tandem config (the YAML of `tandem start`, or the flags of `tandem media`)
 * into keepalived options; the node's own address defaults to its first SIP listening address
 * that is not a VIP, the health URL to its admin address.
 */
function keepalivedOptions(o: KeepalivedCliOptions): { ok: true; value: KeepalivedOptionsInput } | { ok: false; errors: string[] } {
  const file = readConfigFile(o.config);
  if (!file.ok) return file;
  const cfg = validateConfig(file.value);
  if (!cfg.ok) return { ok: false, errors: cfg.errors.map((e) => `${o.config ?? 'config'}: ${e}`) };
  const c = cfg.value;
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const vips = o.vip?.length ? o.vip : [...c.cluster.vips];
  const own = c.signalling.listen.map((l) => parseListen(l)?.address).find((a) => a && !vips.includes(a) && a !== '0.0.0.0' && !a.startsWith('127.'));
  const src = o.src ?? own;
  const dev = o.dev ?? (src ? deviceOf(src) : undefined);
  const errors: string[] = [];
  if (!src) errors.push('--src: this node\'s own address on the VRRP network is needed (no SIP listening address in the config to take it from)');
  if (!dev) errors.push(`--dev: name the network device the VIPs go on (${src ?? 'the source address'} is not on this host, so it cannot be looked up)`);
  const nodeId = o.nodeId ?? c.cluster.nodeId;
  if (!nodeId) errors.push('--node-id: the node\'s id is needed (or cluster.nodeId in --config)');
  const admin = o.admin ?? c.admin;
  let healthUrl: string | undefined;
  if (admin && o.health !== false) {
    const host = admin.replace(/:\d+$/, '').replace(/^0\.0\.0\.0$/, '127.0.0.1').replace(/^\[::\]$/, '[::1]');
    healthUrl = `http://${host}:${admin.slice(admin.lastIndexOf(':') + 1)}/health`;
  }
  if (errors.length) return { ok: false, errors };
  const value: KeepalivedOptionsInput = {
    nodeId: nodeId!,
    clusterName: o.clusterName ?? c.cluster.name,
    role: o.role,
    vips,
    standbyVips: o.standbyVip ?? [],
    dev: dev!,
    sourceAddress: src!,
    peers: o.peer ?? [],
    ...(o.priority !== undefined ? { priority: num(o.priority) } : {}),
    ...(o.standbyPriority !== undefined ? { standbyPriority: num(o.standbyPriority) } : {}),
    ...(o.advertInterval !== undefined ? { advertIntervalMs: num(o.advertInterval) } : {}),
    ...(o.routerId !== undefined ? { virtualRouterId: num(o.routerId) } : {}),
    ...(o.prefixLength !== undefined ? { vipPrefixLength: num(o.prefixLength) } : {}),
    ...(o.preempt !== undefined ? { preempt: o.preempt as 'never' } : {}),
    ...(o.preemptDelay !== undefined ? { preemptDelaySec: num(o.preemptDelay), ...(o.preempt === undefined ? { preempt: 'delay' as const } : {}) } : {}),
    ...(healthUrl ? { healthUrl } : {}),
    ...(o.notify ? { notify: o.notify } : {}),
    ...(o.rtPriority !== undefined ? { rtPriority: num(o.rtPriority) } : {}),
    ...(o.standbyGrace !== undefined ? { standbyGraceSec: num(o.standbyGrace) } : {}),
  };
  const v = validateKeepalivedOptions(value);
  return v.ok ? { ok: true, value } : v;
}

/** keepalived's own syntax check (`keepalived -t`): undefined when it passed or is not installed. */
function keepalivedCheck(text: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-ka-'));
  try {
    const f = join(dir, 'keepalived.conf');
    writeFileSync(f, text);
    const r = spawnSync('keepalived', ['-t', '-f', f], { encoding: 'utf8', timeout: 10_000 });
    if (r.error) return `keepalived not found: ${r.error.message} (apt-get install keepalived)`;
    return r.status === 0 ? undefined : (r.stderr || r.stdout || `exit ${r.status}`).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `tandem cluster ...`: cluster tooling (`keepalived-config`). */
export function registerClusterCommand(program: Command): void {
  const cluster = program.command('cluster').description('cluster tooling: configuration for the address manager (keepalived)');
  cluster
    .command('keepalived-config')
    .description('print the keepalived configuration (VRRPv3, unicast peers, health check, nopreempt) for a node in --takeover keepalived mode')
    .option('--config <file>', 'the node\'s Tandem YAML (cluster.nodeId, cluster.vips, cluster.name, admin, signalling.listen)')
    .option('--role <role>', 'signalling or media (instance names, router id)', 'signalling')
    .option('--node-id <name>', 'the node\'s id (default cluster.nodeId)')
    .option('--cluster-name <name>', 'cluster name (default cluster.name)')
    .option('--vip <addr>', 'VIP this node serves and prefers, as given to tandem start/media (repeatable; default cluster.vips)', collect)
    .option('--standby-vip <addr>', 'VIP this node only stands by for (active/active media; repeatable)', collect)
    .option('--dev <name>', 'network device VRRP runs on and the VIPs are added to (default: the one holding --src)')
    .option('--src <addr>', 'this node\'s own address on that network (default: its first SIP listening address that is not a VIP)')
    .option('--peer <addr>', 'the peer node\'s own address (repeatable)', collect)
    .option('--priority <n>', 'VRRP priority for the own VIPs, 1-254 (the higher starts as master; default 150)')
    .option('--standby-priority <n>', 'VRRP priority for standby VIPs (default 100)')
    .option('--advert-interval <ms>', 'VRRP advert interval, multiple of 10 ms (default 20)')
    .option('--router-id <n>', 'virtual router id 1-255 (default: derived from cluster name, role and VIPs)')
    .option('--prefix-length <n>', 'prefix length of the VIPs (default 32)')
    .option('--admin <host:port>', 'the node\'s admin address: track_script checks its /health (default: admin from --config)')
    .option('--no-health', 'no track_script')
    .option('--preempt <when>', 'never (nopreempt: a returning node does not take the VIP back; default), delay, always')
    .option('--preempt-delay <sec>', 'with --preempt delay: seconds (default 60)')
    .option('--notify <command>', 'command run at each VRRP state change (keepalived appends: INSTANCE name state priority)')
    .option('--standby-grace <sec>', 'seconds after start before a --standby-vip may be taken, so each node of a pair takes its own VIP first (default 3, 0 = none)')
    .option('--rt-priority <n>', 'realtime priority of the VRRP process (vrrp_rt_priority, 0 = none; default 50)')
    .option('--out <file>', 'write the configuration to this file instead of stdout')
    .option('--check', 'also run keepalived\'s own syntax check (keepalived -t) on it')
    .action((o: KeepalivedCliOptions) => {
      const opts = keepalivedOptions(o);
      if (!opts.ok) {
        console.error(`tandem cluster keepalived-config:\n${opts.errors.join('\n')}`);
        process.exit(2);
      }
      const text = keepalivedConfig(opts.value);
      const file = o.config ? readConfigFile(o.config) : undefined;
      const takeover = file?.ok ? (file.value['cluster'] as { takeover?: string } | undefined)?.takeover : undefined;
      if (takeover === 'lease') console.error(`tandem cluster keepalived-config: warning: ${o.config} has cluster.takeover: lease; with keepalived moving the VIPs the node needs takeover: keepalived (sockets bound in advance)`);
      if (o.check) {
        const problem = keepalivedCheck(text);
        if (problem) {
          console.error(`tandem cluster keepalived-config: keepalived -t: ${problem}`);
          process.exit(1);
        }
      }
      if (o.out) writeFileSync(o.out, text);
      else process.stdout.write(text);
    });
}
