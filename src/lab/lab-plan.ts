/**
 * The published HA topology (two signalling nodes, two media nodes, Redis primary + replica +
 * 3 Sentinels, phones and two back-end PBXs) as a list of parts with their addresses and command
 * lines. Pure: building the plan starts nothing, so it is unit-tested and `tandem lab up` only
 * has to start what it lists.
 */
import { join } from 'node:path';

export type LabMode = 'loopback' | 'netns';
export type PartRole = 'redis' | 'sentinel' | 'signalling' | 'media' | 'pbx' | 'phone' | 'keepalived';

/** How `tandem lab up` knows a part is ready. */
export type HealthCheck =
  | { kind: 'http'; url: string; token?: string }
  | { kind: 'redis'; host: string; port: number }
  | { kind: 'log'; pattern: string };

export interface LabPart {
  name: string;
  role: PartRole;
  /** Node address (in its namespace in netns mode). */
  address: string;
  /** VIPs this part serves or stands by for. */
  vips: string[];
  /** Network namespace (netns mode). */
  namespace?: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  health: HealthCheck;
  adminUrl?: string;
  /** Files a killed instance leaves that would stop a new one from starting (pid files). */
  staleFiles?: string[];
  /** Filled in once started. */
  pid?: number;
  log: string;
}

export interface LabAddresses {
  prefix: string;
  sigVip: string;
  sig: [string, string];
  mediaVips: [string, string];
  media: [string, string];
  redis: [string, string];
  sentinels: [string, string, string];
  pbx: [string, string];
  phone: string;
  ringer: string;
  /** Where the experiments' load generator (the calling phones) sends from. */
  caller: string;
}

export const LAB_DOMAIN = 'lab.test';
export const LAB_SIP_PORT = 5060;
export const LAB_NG_PORT = 2223;
export const LAB_ADMIN_PORT = 8080;
export const LAB_REDIS_PORT = 6379;
export const LAB_SENTINEL_PORT = 26379;
export const LAB_MASTER_NAME = 'tandem-lab';
export const LAB_CLUSTER = 'lab';
/** The phone answering calls of sig-fail, media-fail, half-dead and redis-fail. */
export const PHONE_USER = 'phone';
/** A phone that rings for `RING_DELAY_MS` before answering (ringing-fail). */
export const RINGER_USER = 'ringer';
export const RING_DELAY_MS = 3000;
/** Request-URI users starting with this go to the PBX pair through the dispatcher. */
export const PBX_PREFIX = '9';
export const LAB_USERS = 10_000;

/**
 * Addresses: 127.18.0.x on loopback (every 127/8 address is local on Linux, so each part gets its
 * own and the standard ports), 198.18.0.x in namespaces (the benchmarking range, RFC 2544, never
 * a real network).
 */
export function labAddresses(mode: LabMode): LabAddresses {
  const p = mode === 'loopback' ? '127.18.0.' : '198.18.0.';
  return {
    prefix: p,
    sigVip: `${p}10`,
    sig: [`${p}11`, `${p}12`],
    mediaVips: [`${p}20`, `${p}25`],
    media: [`${p}21`, `${p}22`],
    redis: [`${p}31`, `${p}32`],
    sentinels: [`${p}33`, `${p}34`, `${p}35`],
    pbx: [`${p}41`, `${p}42`],
    phone: `${p}51`,
    ringer: `${p}52`,
    caller: mode === 'loopback' ? `${p}50` : `${p}1`,
  };
}

export interface LabPlanOptions {
  mode: LabMode;
  dir: string;
  /** Node binary and the tandem entry point. */
  node: string;
  tandemBin: string;
  adminToken: string;
  /** keepalived advert interval (netns). @default 20 */
  advertMs: number;
  /** Sentinel's down-after-milliseconds. @default 1000 */
  sentinelDownAfterMs: number;
  /** Namespace name of a part (netns mode). */
  namespaceOf?: (part: string) => string;
}

export function usersFile(dir: string): string {
  return join(dir, 'users.csv');
}

export function userName(i: number): string {
  return `u${String(i).padStart(5, '0')}`;
}

export function userPassword(i: number): string {
  return `pw-${userName(i)}`;
}

/** The users file every signalling node loads: 10,000 callers plus the phones. */
export function usersCsv(): string {
  const rows = ['phone,pw-phone', 'ringer,pw-ringer'];
  for (let i = 0; i < LAB_USERS; i++) rows.push(`${userName(i)},${userPassword(i)}`);
  return rows.join('\n') + '\n';
}

/** YAML of the signalling nodes: domain, users, the PBX pair behind the dispatcher. */
export function signallingYaml(a: LabAddresses, dir: string): string {
  return [
    'cluster:',
    `  name: ${LAB_CLUSTER}`,
    'signalling:',
    `  domains: [${LAB_DOMAIN}, ${a.sigVip}]`,
    `  users: ${usersFile(dir)}`,
    '  auth:',
    '    enabled: true',
    `    realm: ${LAB_DOMAIN}`,
    '    algorithms: [MD5]',
    // The lab's callers are one address sending thousands of users' requests.
    '    maxFailures: 1000000',
    `    trustedNetworks: [${a.prefix}0/24]`,
    'dispatcher:',
    '  sets:',
    '    pbx:',
    '      algorithm: round-robin',
    '      destinations:',
    ...a.pbx.map((x) => `        - uri: sip:${x}:${LAB_SIP_PORT}`),
    '  routes:',
    `    - { prefix: '${PBX_PREFIX}', set: pbx }`,
    '  probing:',
    '    enabled: true',
    '    intervalSec: 1',
    '    downAfter: 2',
    '    upAfter: 2',
    '',
  ].join('\n');
}

function redisUrl(a: LabAddresses): string {
  return `redis-sentinel://${a.sentinels.map((s) => `${s}:${LAB_SENTINEL_PORT}`).join(',')}/${LAB_MASTER_NAME}`;
}

export function sentinelConf(a: LabAddresses, address: string, dir: string, downAfterMs: number): string {
  return [
    `port ${LAB_SENTINEL_PORT}`,
    `bind ${address}`,
    'daemonize no',
    'protected-mode no',
    `dir ${dir}`,
    'sentinel resolve-hostnames no',
    `sentinel announce-ip ${address}`,
    `sentinel monitor ${LAB_MASTER_NAME} ${a.redis[0]} ${LAB_REDIS_PORT} 2`,
    `sentinel down-after-milliseconds ${LAB_MASTER_NAME} ${downAfterMs}`,
    `sentinel failover-timeout ${LAB_MASTER_NAME} 2000`,
    `sentinel parallel-syncs ${LAB_MASTER_NAME} 1`,
    '',
  ].join('\n');
}

/** Every part of the topology, in start order (Redis first, phones last). */
export function labPlan(o: LabPlanOptions): { addresses: LabAddresses; parts: LabPart[]; files: Record<string, string> } {
  const a = labAddresses(o.mode);
  const ns = (name: string): { namespace?: string } => (o.mode === 'netns' && o.namespaceOf ? { namespace: o.namespaceOf(name) } : {});
  const log = (name: string): string => join(o.dir, 'logs', `${name}.log`);
  const takeover = o.mode === 'netns' ? 'keepalived' : 'lease';
  // Many hosts on one machine: each process gets one garbage-collection helper thread, not Node's
  // 4, which would preempt the other parts' event loops at every major collection (src/util/gc-threads.ts).
  const tandem = (sub: string[]): { command: string; args: string[] } => ({ command: o.node, args: ['--v8-pool-size=1', o.tandemBin, ...sub] });
  const files: Record<string, string> = {
    [usersFile(o.dir)]: usersCsv(),
    [join(o.dir, 'signalling.yaml')]: signallingYaml(a, o.dir),
  };
  const parts: LabPart[] = [];

  a.redis.forEach((addr, i) => {
    const name = `redis${i + 1}`;
    const args = [
      '--port', String(LAB_REDIS_PORT), '--bind', addr, '--daemonize', 'no', '--protected-mode', 'no', '--save', '',
      '--appendonly', 'no', '--dir', join(o.dir, 'run'), '--dbfilename', `${name}.rdb`,
      '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', '--repl-ping-replica-period', '1',
      '--replica-announce-ip', addr,
    ];
    if (i > 0) args.push('--replicaof', a.redis[0], String(LAB_REDIS_PORT));
    parts.push({ name, role: 'redis', address: addr, vips: [], ...ns(name), command: 'redis-server', args, health: { kind: 'redis', host: addr, port: LAB_REDIS_PORT }, log: log(name) });
  });
  a.sentinels.forEach((addr, i) => {
    const name = `sentinel${i + 1}`;
    const conf = join(o.dir, 'run', `${name}.conf`);
    files[conf] = sentinelConf(a, addr, join(o.dir, 'run'), o.sentinelDownAfterMs);
    parts.push({ name, role: 'sentinel', address: addr, vips: [], ...ns(name), command: 'redis-server', args: [conf, '--sentinel'], health: { kind: 'redis', host: addr, port: LAB_SENTINEL_PORT }, log: log(name) });
  });
  a.pbx.forEach((addr, i) => {
    const name = `pbx${i + 1}`;
    parts.push({
      name, role: 'pbx', address: addr, vips: [], ...ns(name),
      ...tandem(['load', 'uas', '--listen', `${addr}:${LAB_SIP_PORT}`, '--rtp', 'off', '--progress', 'none']),
      health: { kind: 'log', pattern: 'tandem load uas listening' }, log: log(name),
    });
  });
  a.media.forEach((addr, i) => {
    const name = `media${i + 1}`;
    const own = a.mediaVips[i]!;
    const other = a.mediaVips[1 - i]!;
    const admin = `${addr}:${LAB_ADMIN_PORT}`;
    parts.push({
      name, role: 'media', address: addr, vips: [own, other], ...ns(name),
      ...tandem([
        'media', '--node-id', name, '--cluster-name', LAB_CLUSTER, '--vip', own, '--standby-vip', other, '--takeover', takeover,
        '--redis', redisUrl(a), '--ng', `${own}:${LAB_NG_PORT}`, '--ng-allow', o.mode === 'loopback' ? '127.0.0.0/8' : `${a.prefix}0/24`, '--interface', own,
        '--admin', admin, '--admin-token', o.adminToken, '--rtp-ports', '30000-39999', '--workers', '1',
      ]),
      health: { kind: 'http', url: `http://${admin}/health`, token: o.adminToken }, adminUrl: `http://${admin}`, log: log(name),
    });
  });
  a.sig.forEach((addr, i) => {
    const name = `sig${i + 1}`;
    const admin = `${addr}:${LAB_ADMIN_PORT}`;
    parts.push({
      name, role: 'signalling', address: addr, vips: [a.sigVip], ...ns(name),
      ...tandem([
        'start', '--config', join(o.dir, 'signalling.yaml'), '--node-id', name, '--sip', `udp:${addr}:${LAB_SIP_PORT}`,
        '--vip', a.sigVip, '--takeover', takeover, '--redis', redisUrl(a),
        ...a.mediaVips.flatMap((v) => ['--media-ng', `${v}:${LAB_NG_PORT}`]),
        '--admin', admin, '--admin-token', o.adminToken, '--cdr', join(o.dir, 'run', `${name}.cdr.jsonl`),
      ]),
      health: { kind: 'http', url: `http://${admin}/health`, token: o.adminToken }, adminUrl: `http://${admin}`, log: log(name),
    });
  });
  const phone = (name: string, addr: string, user: string, extra: string[]): LabPart => ({
    name, role: 'phone', address: addr, vips: [], ...ns(name),
    ...tandem([
      'load', 'uas', '--listen', `${addr}:${LAB_SIP_PORT}`, '--rtp', 'echo', '--workers', '1', '--progress', 'none',
      '--register', `${a.sigVip}:${LAB_SIP_PORT}`, '--user', user, '--password', `pw-${user}`, '--domain', LAB_DOMAIN, '--expires', '300', ...extra,
    ]),
    health: { kind: 'log', pattern: 'registered as' }, log: log(name),
  });
  parts.push(phone('phone', a.phone, PHONE_USER, []));
  parts.push(phone('ringer', a.ringer, RINGER_USER, ['--ring-delay', `${RING_DELAY_MS}ms`]));
  return { addresses: a, parts, files };
}
