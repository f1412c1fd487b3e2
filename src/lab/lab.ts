/**
 * `tandem lab up|down|status|kill|revive`: the published topology on one machine. Everything the
 * lab starts or writes is recorded in DIR/topology.json before it exists, so `down` removes it
 * all even after a crash of the lab itself, and nothing it did not record is touched.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LAB_ADMIN_PORT,
  LAB_CLUSTER,
  LAB_MASTER_NAME,
  LAB_NG_PORT,
  LAB_REDIS_PORT,
  LAB_SENTINEL_PORT,
  LAB_SIP_PORT,
  labPlan,
  type LabAddresses,
  type LabMode,
  type LabPart,
} from './lab-plan.js';
import { isAlive, isStopped, killPart, logTail, probe, signalPart, startPart } from './part-process.js';
import { respCall, sentinelPrimary } from './resp.js';
import type { LabNetwork } from './lab-network.js';

export interface LabTopology {
  version: 1;
  mode: LabMode;
  dir: string;
  createdAt: string;
  adminToken: string;
  addresses: LabAddresses;
  parts: LabPart[];
  /** Files the lab wrote (removed by `down`); reports are kept. */
  files: string[];
  /** Parts whose link was taken down (netns). */
  linksDown: string[];
  /** keepalived advert interval (netns). */
  advertMs?: number;
}

export interface LabUpOptions {
  mode: LabMode;
  dir: string;
  advertMs?: number;
  sentinelDownAfterMs?: number;
  /** Progress lines. */
  say?: (line: string) => void;
  timeoutMs?: number;
  network?: LabNetwork;
}

const HERE = dirname(fileURLToPath(import.meta.url));
const TANDEM_BIN = resolve(HERE, '../../bin/tandem.mjs');

export function topologyPath(dir: string): string {
  return join(dir, 'topology.json');
}

export function readTopology(dir: string): LabTopology | undefined {
  const p = topologyPath(dir);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as LabTopology;
  } catch {
    throw new Error(`${p} is not readable JSON: remove it by hand (and run \`ip netns list\` to check for leftovers)`);
  }
}

function writeTopology(t: LabTopology): void {
  writeFileSync(topologyPath(t.dir), JSON.stringify(t, null, 2) + '\n');
}

function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A TCP or UDP port some other process already holds on one of our addresses. */
async function portTaken(kind: 'tcp' | 'udp', host: string, port: number): Promise<boolean> {
  return new Promise((resolveTaken) => {
    if (kind === 'tcp') {
      const srv = net.createServer();
      srv.once('error', (e: NodeJS.ErrnoException) => resolveTaken(e.code === 'EADDRINUSE'));
      srv.listen(port, host, () => srv.close(() => resolveTaken(false)));
    } else {
      const s = dgram.createSocket('udp4');
      s.once('error', (e: NodeJS.ErrnoException) => {
        s.close();
        resolveTaken(e.code === 'EADDRINUSE');
      });
      s.bind(port, host, () => s.close(() => resolveTaken(false)));
    }
  });
}

async function loopbackPreflight(a: LabAddresses): Promise<void> {
  const checks: Array<['tcp' | 'udp', string, number]> = [
    ...a.redis.map((h) => ['tcp', h, LAB_REDIS_PORT] as ['tcp', string, number]),
    ...a.sentinels.map((h) => ['tcp', h, LAB_SENTINEL_PORT] as ['tcp', string, number]),
    ...[...a.sig, a.sigVip, ...a.pbx, a.phone, a.ringer].map((h) => ['udp', h, LAB_SIP_PORT] as ['udp', string, number]),
    ...a.mediaVips.map((h) => ['udp', h, LAB_NG_PORT] as ['udp', string, number]),
    ...[...a.sig, ...a.media].map((h) => ['tcp', h, LAB_ADMIN_PORT] as ['tcp', string, number]),
  ];
  const taken: string[] = [];
  for (const [kind, host, port] of checks) if (await portTaken(kind, host, port)) taken.push(`${kind} ${host}:${port}`);
  if (taken.length) throw new Error(`ports the lab needs are in use (${taken.join(', ')}): another lab is up (\`tandem lab down --dir ...\`) or another program holds them`);
}

async function waitHealthy(parts: LabPart[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  const pending = new Map(parts.map((p) => [p.name, p]));
  let last = new Map<string, string>();
  while (pending.size) {
    const now = new Map<string, string>();
    for (const p of pending.values()) {
      if (!isAlive(p.pid)) throw new Error(`${p.name} exited while starting; its log (${p.log}):\n${logTail(p.log)}`);
      const why = await probe(p.health, p.log);
      if (why === undefined) pending.delete(p.name);
      else now.set(p.name, why);
    }
    last = now;
    if (!pending.size) return;
    if (Date.now() > until) {
      const detail = [...last].map(([n, why]) => `${n}: ${why}\n${logTail(pending.get(n)!.log, 5)}`).join('\n');
      throw new Error(`parts not healthy after ${timeoutMs} ms:\n${detail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until every Sentinel names the primary and sees the replica (a failover needs both). */
async function waitSentinels(a: LabAddresses, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let ok = true;
    for (const s of a.sentinels) {
      const r = await respCall(s, LAB_SENTINEL_PORT, ['SENTINEL', 'replicas', LAB_MASTER_NAME], 300).catch(() => undefined);
      const others = await respCall(s, LAB_SENTINEL_PORT, ['SENTINEL', 'sentinels', LAB_MASTER_NAME], 300).catch(() => undefined);
      if (!Array.isArray(r) || r.length < 1 || !Array.isArray(others) || others.length < a.sentinels.length - 1) ok = false;
    }
    if (ok) return;
    if (Date.now() > until) throw new Error('the Sentinels did not find the replica and each other in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until every Redis but the primary is its replica with the link up and no sync running: a
 * revived Redis starts empty, and a failover to it before it synced would lose every record (a
 * second fault the experiment did not ask for).
 */
async function waitReplicasInSync(topo: LabTopology, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const primary = await sentinelPrimary(topo.addresses.sentinels.map((host) => ({ host, port: LAB_SENTINEL_PORT })), LAB_MASTER_NAME);
    let ok = primary !== undefined;
    for (const host of topo.addresses.redis) {
      if (!ok || host === primary!.host) continue;
      const info = await respCall(host, LAB_REDIS_PORT, ['INFO', 'replication'], 300).catch(() => undefined);
      const text = typeof info === 'string' ? info : '';
      if (!/role:slave/.test(text) || !/master_link_status:up/.test(text) || /master_sync_in_progress:1/.test(text) || !text.includes(`master_host:${primary!.host}`)) ok = false;
    }
    if (ok) return;
    if (Date.now() > until) throw new Error('the revived Redis did not become an in-sync replica in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Builds the topology and returns once every part is healthy. On failure everything made is removed. */
export async function labUp(o: LabUpOptions): Promise<LabTopology> {
  const dir = resolve(o.dir);
  const say = o.say ?? (() => undefined);
  const existing = readTopology(dir);
  if (existing) {
    const live = existing.parts.filter((p) => isAlive(p.pid)).map((p) => p.name);
    throw new Error(
      live.length
        ? `a lab is already up in ${dir} (${live.join(', ')} running): \`tandem lab down --dir ${dir}\` first`
        : `${topologyPath(dir)} is left from a lab that did not end cleanly: \`tandem lab down --dir ${dir}\` removes what it made`,
    );
  }
  if (!commandExists('redis-server')) throw new Error('redis-server is missing: apt-get install redis-server (the test command installs it when run as root)');
  if (o.mode === 'netns') {
    if (!o.network) throw new Error('netns mode needs the namespace layer');
    await o.network.preflight(dir);
  }
  const adminToken = randomBytes(16).toString('hex');
  const plan = labPlan({
    mode: o.mode,
    dir,
    node: process.execPath,
    tandemBin: TANDEM_BIN,
    adminToken,
    advertMs: o.advertMs ?? 20,
    sentinelDownAfterMs: o.sentinelDownAfterMs ?? 1000,
    ...(o.network ? { namespaceOf: (n: string) => o.network!.namespaceOf(dir, n) } : {}),
  });
  if (o.mode === 'loopback') await loopbackPreflight(plan.addresses);
  mkdirSync(join(dir, 'run'), { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const topo: LabTopology = {
    version: 1,
    mode: o.mode,
    dir,
    createdAt: new Date().toISOString(),
    adminToken,
    addresses: plan.addresses,
    parts: plan.parts,
    files: Object.keys(plan.files),
    linksDown: [],
    advertMs: o.advertMs ?? 20,
  };
  writeTopology(topo);
  try {
    for (const [path, text] of Object.entries(plan.files)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
    }
    if (o.network) {
      say('network: namespaces, bridge, keepalived configuration');
      topo.parts.push(...(await o.network.create(dir, topo)));
      writeTopology(topo);
    }
    const groups: Array<[string, (p: LabPart) => boolean]> = [
      ['redis', (p) => p.role === 'redis'],
      ['sentinels', (p) => p.role === 'sentinel'],
      ['pbx pair', (p) => p.role === 'pbx'],
      ['media nodes', (p) => p.role === 'media'],
      ['signalling nodes', (p) => p.role === 'signalling'],
      ['keepalived', (p) => p.role === 'keepalived'],
      ['phones', (p) => p.role === 'phone'],
    ];
    for (const [label, pick] of groups) {
      const group = topo.parts.filter(pick);
      if (!group.length) continue;
      for (const p of group) {
        p.pid = startPart(p);
        writeTopology(topo);
      }
      await waitHealthy(group, o.timeoutMs ?? 30_000);
      if (label === 'sentinels') {
        await waitSentinels(plan.addresses, o.timeoutMs ?? 30_000);
        await waitReplicasInSync(topo, o.timeoutMs ?? 30_000);
      }
      // Lease mode: the nodes take their VIPs themselves; netns: keepalived moves them in.
      if (o.mode === 'loopback' && (label === 'media nodes' || label === 'signalling nodes')) await waitVipsHeld(topo, pick, o.timeoutMs ?? 30_000);
      if (label === 'keepalived') await waitVipsHeld(topo, (p) => p.role === 'media' || p.role === 'signalling', o.timeoutMs ?? 30_000, o.network);
      say(`${label}: ${group.map((p) => `${p.name} (pid ${p.pid})`).join(', ')} healthy`);
    }
    return topo;
  } catch (err) {
    say(`lab up failed, removing what was made: ${(err as Error).message.split('\n')[0]}`);
    await labDown(dir, o.network).catch(() => undefined);
    throw err;
  }
}

/** Every VIP of a role has a holder. */
async function waitVipsHeld(topo: LabTopology, pick: (p: LabPart) => boolean, timeoutMs: number, network?: LabNetwork): Promise<void> {
  const vips = new Set(topo.parts.filter(pick).flatMap((p) => p.vips));
  const until = Date.now() + timeoutMs;
  for (;;) {
    const holders = await vipHolders(topo, network);
    if ([...vips].every((v) => holders[v])) return;
    if (Date.now() > until) throw new Error(`no holder for ${[...vips].filter((v) => !holders[v]).join(', ')} in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Who holds each VIP now: the Redis lease (loopback) or the address on an interface (netns). */
export async function vipHolders(topo: LabTopology, network?: LabNetwork): Promise<Record<string, string | undefined>> {
  const a = topo.addresses;
  const out: Record<string, string | undefined> = {};
  const vips: Array<[string, string]> = [[a.sigVip, a.sigVip], ...a.mediaVips.map((v) => [v, `media-${v}`] as [string, string])];
  if (topo.mode === 'netns' && network) {
    for (const [vip] of vips) out[vip] = network.addressHolder(topo.dir, topo, vip);
    return out;
  }
  const primary = await sentinelPrimary(a.sentinels.map((host) => ({ host, port: LAB_SENTINEL_PORT })), LAB_MASTER_NAME);
  for (const [vip, key] of vips) {
    if (!primary) {
      out[vip] = undefined;
      continue;
    }
    const v = await respCall(primary.host, primary.port, ['GET', `tandem:${LAB_CLUSTER}:lease:${key}`], 300).catch(() => undefined);
    out[vip] = typeof v === 'string' ? v.split('|')[0] : undefined;
  }
  return out;
}

export function findPart(topo: LabTopology, name: string): LabPart {
  const p = topo.parts.find((x) => x.name === name);
  if (!p) throw new Error(`no part named ${name}; parts: ${topo.parts.map((x) => x.name).join(', ')}`);
  return p;
}

export type KillHow = 'sigkill' | 'sigstop' | 'link-down';

/**
 * Fails a part. `sigkill` of a node in netns mode also kills its keepalived: the host is gone, as
 * when the published experiments switched a VM off.
 */
export async function labKill(dir: string, name: string, how: KillHow = 'sigkill', network?: LabNetwork): Promise<void> {
  await labKillMany(dir, [{ name, how }], network);
}

/** Fails several parts at once (one topology write: concurrent kills must not lose each other's state). */
export async function labKillMany(dir: string, targets: Array<{ name: string; how: KillHow }>, network?: LabNetwork): Promise<void> {
  const topo = mustTopology(dir);
  const linkDown = (name: string): void => {
    if (topo.mode !== 'netns' || !network) throw new Error('link-down needs a lab made with --netns');
    network.setLink(dir, topo, name, false);
    if (!topo.linksDown.includes(name)) topo.linksDown.push(name);
  };
  await Promise.all(
    targets.map(async ({ name, how }) => {
      const p = findPart(topo, name);
      const companions = topo.parts.filter((x) => x.role === 'keepalived' && x.name === `keepalived-${name}`);
      if (how === 'sigkill') {
        await Promise.all([p, ...companions].map((x) => killPart(x.pid)));
        // A switched-off host also stops answering ARP for the VIP its dead keepalived left configured.
        if (topo.mode === 'netns' && network && companions.length) linkDown(name);
      } else if (how === 'sigstop') {
        signalPart(p.pid, 'SIGSTOP');
      } else {
        linkDown(name);
      }
    }),
  );
  writeTopology(topo);
}

/** Brings a part back: link up, SIGCONT, or a fresh start with the same command line. */
export async function labRevive(dir: string, name: string, network?: LabNetwork): Promise<void> {
  const topo = mustTopology(dir);
  const p = findPart(topo, name);
  if (isStopped(p.pid)) signalPart(p.pid, 'SIGCONT');
  const restart = [p, ...topo.parts.filter((x) => x.role === 'keepalived' && x.name === `keepalived-${name}`)].filter((x) => !isAlive(x.pid));
  if (topo.linksDown.includes(name) && network) {
    // Link up first clears the VIPs a dead keepalived left behind (see the netns layer).
    network.setLink(dir, topo, name, true);
    topo.linksDown = topo.linksDown.filter((n) => n !== name);
  }
  for (const x of restart) x.pid = startPart(x);
  writeTopology(topo);
  if (restart.length) await waitHealthy(restart, 30_000);
}

/**
 * Brings every failed part back (after an experiment) and waits until the Sentinels again see
 * a replica, so the next experiment starts from the full topology. Returns the parts revived.
 */
export async function labHeal(dir: string, network?: LabNetwork): Promise<string[]> {
  const topo = mustTopology(dir);
  const failed = topo.parts.filter((p) => p.role !== 'keepalived' && (topo.linksDown.includes(p.name) || !isAlive(p.pid) || isStopped(p.pid))).map((p) => p.name);
  for (const name of failed) await labRevive(dir, name, network);
  if (failed.length) {
    await waitSentinels(topo.addresses, 30_000);
    await waitReplicasInSync(topo, 30_000);
  }
  return failed;
}

function mustTopology(dir: string): LabTopology {
  const t = readTopology(resolve(dir));
  if (!t) throw new Error(`no lab in ${resolve(dir)} (no topology.json): \`tandem lab up --dir ${dir}\``);
  return t;
}

/** Removes every process, namespace and file the lab made; reports stay. */
export async function labDown(dir: string, network?: LabNetwork): Promise<string[]> {
  const abs = resolve(dir);
  const topo = readTopology(abs);
  const removed: string[] = [];
  if (topo) {
    for (const p of [...topo.parts].reverse()) {
      if (isAlive(p.pid)) {
        await killPart(p.pid);
        removed.push(`process ${p.name} (pid ${p.pid})`);
      }
    }
    for (const f of topo.files) rmSync(f, { force: true });
  }
  if (network) removed.push(...(await network.teardown(abs)));
  for (const sub of ['run', 'logs']) rmSync(join(abs, sub), { recursive: true, force: true });
  if (topo) rmSync(topologyPath(abs), { force: true });
  return removed;
}

export interface PartStatus {
  name: string;
  role: string;
  state: 'up' | 'stopped' | 'dead' | 'link-down';
  pid?: number;
  address: string;
  namespace?: string;
  holds: string[];
  adminUrl?: string;
}

export async function labStatus(dir: string, network?: LabNetwork): Promise<{ topology: LabTopology; parts: PartStatus[]; holders: Record<string, string | undefined>; redisPrimary?: string }> {
  const topo = mustTopology(dir);
  const holders = await vipHolders(topo, network);
  const primary = await sentinelPrimary(topo.addresses.sentinels.map((host) => ({ host, port: LAB_SENTINEL_PORT })), LAB_MASTER_NAME);
  const parts = topo.parts.map((p): PartStatus => ({
    name: p.name,
    role: p.role,
    state: topo.linksDown.includes(p.name) ? 'link-down' : !isAlive(p.pid) ? 'dead' : isStopped(p.pid) ? 'stopped' : 'up',
    ...(p.pid ? { pid: p.pid } : {}),
    address: p.address,
    ...(p.namespace ? { namespace: p.namespace } : {}),
    holds: [
      ...Object.entries(holders).filter(([, h]) => h === p.name).map(([v]) => v),
      ...(primary && primary.host === p.address && p.role === 'redis' ? ['redis primary'] : []),
    ],
    ...(p.adminUrl ? { adminUrl: p.adminUrl } : {}),
  }));
  return { topology: topo, parts, holders, ...(primary ? { redisPrimary: `${primary.host}:${primary.port}` } : {}) };
}
