/**
 * A lab network of Linux network namespaces: one namespace holding a bridge, one namespace per
 * node joined to it by a veth pair (both ends created inside namespaces), and one veth from the
 * root namespace so the host (and tools on it: SIPp, softphones, a browser) reaches the nodes and
 * their VIPs. Each node namespace has `lo` up and `net.ipv4.ip_nonlocal_bind=1`, so a node binds
 * its VIPs before it holds them (`--takeover keepalived`).
 *
 * Every name carries the lab's prefix `tdm-<id>` (id from the lab dir) and is written to
 * `DIR/netns/state.json` *before* it is made, so {@link teardownNetwork} removes exactly what
 * was made, also after a crash halfway; it never touches a namespace, link or address it did not
 * record (or, with the state file gone, one without the lab's exact prefix).
 *
 * Root only. Set-up of a few namespaces takes ~0.15 s, teardown ~0.4 s (../../../../shared/HA-NOTES.md).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';

/** Error codes of this module (stable strings). */
export type NetnsErrorCode = 'NETNS_ERR_NOT_ROOT' | 'NETNS_ERR_MISSING_TOOL' | 'NETNS_ERR_LEFTOVER' | 'NETNS_ERR_ADDRESS_IN_USE' | 'NETNS_ERR_COMMAND' | 'NETNS_ERR_BAD_SPEC' | 'NETNS_ERR_UNKNOWN_NODE';

export class NetnsError extends Error {
  constructor(
    readonly code: NetnsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NetnsError';
  }
}

/** One node of the network: its own namespace and address. */
export interface NetnsNodeSpec {
  /** Part name: letters, digits, `-`, `_` (at most 24). */
  name: string;
  /** Its address on the lab subnet. */
  address: string;
}

export interface NetnsNetworkSpec {
  /** The host's address on the bridge (root namespace). */
  hostAddress: string;
  /** Prefix length of the lab subnet. @default 24 */
  prefixLength?: number;
  nodes: NetnsNodeSpec[];
}

/** What the network is, as recorded in `DIR/netns/state.json`. */
export interface NetnsState {
  version: 1;
  /** `tdm-<id>`: every name made starts with it. */
  prefix: string;
  bridgeNamespace: string;
  /** The veth in the root namespace (the host's side), when made. */
  hostLink?: string;
  hostAddress?: string;
  prefixLength: number;
  /** Node name -> its namespace, address and the bridge-side end of its veth. */
  nodes: Record<string, { namespace: string; address: string; bridgePort: string }>;
  /** Every namespace made (also a half-made one), in order. */
  namespaces: string[];
  /** Processes started in the namespaces by {@link spawnInNamespace}. */
  processes: Array<{ namespace: string; pid: number; command: string }>;
}

const NODE_NAME = /^[A-Za-z0-9_-]{1,24}$/;

/** The lab's short id: the same dir gives the same names (so `down` finds them with no state file). */
export function labId(dir: string): string {
  return createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 6);
}

/** Prefix of every name the lab in `dir` makes. */
export function labPrefix(dir: string): string {
  return `tdm-${labId(dir)}`;
}

/** Namespace name of a node of the lab in `dir`. */
export function namespaceName(dir: string, node: string): string {
  return `${labPrefix(dir)}-${node}`;
}

/** The folder of the network's files: state, keepalived configs and pid files, VRRP events. */
export function netnsDir(dir: string): string {
  return join(resolve(dir), 'netns');
}

function statePath(dir: string): string {
  return join(netnsDir(dir), 'state.json');
}

export function readNetnsState(dir: string): NetnsState | undefined {
  const p = statePath(dir);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as NetnsState;
  } catch {
    return undefined;
  }
}

function writeState(dir: string, s: NetnsState): void {
  mkdirSync(netnsDir(dir), { recursive: true });
  writeFileSync(statePath(dir), JSON.stringify(s, null, 2) + '\n');
}

/** Runs a command; throws NETNS_ERR_COMMAND with its stderr. */
export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new NetnsError('NETNS_ERR_COMMAND', `${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new NetnsError('NETNS_ERR_COMMAND', `${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.status}`}`);
  return r.stdout;
}

function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Namespaces on this host now. */
export function listNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean) : [];
}

/** Links of the root namespace. */
function rootLinks(): string[] {
  const r = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return r.stdout.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((x): x is string => !!x);
}

/** Whether `address` is on any interface of the root namespace. */
function rootHasAddress(address: string): boolean {
  const r = spawnSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8' });
  return r.stdout.split('\n').some((l) => new RegExp(`inet6? ${address.replace(/\./g, '\\.')}/`).test(l));
}

/**
 * Checks what a lab network needs before anything is made: root, `ip`, keepalived (unless
 * `keepalived: false`), curl (keepalived's health check), no namespace left from a crashed run
 * of this lab (or, without `dir`, of any lab), and the host address not in use.
 */
export function preflightNetns(o: { dir?: string; hostAddress?: string; keepalived?: boolean } = {}): void {
  if (process.getuid?.() !== 0) throw new NetnsError('NETNS_ERR_NOT_ROOT', 'network namespaces need root: run as root, or use --loopback');
  if (!commandExists('ip')) throw new NetnsError('NETNS_ERR_MISSING_TOOL', '`ip` (iproute2) is missing: apt-get install iproute2');
  if (o.keepalived !== false && !commandExists('keepalived')) throw new NetnsError('NETNS_ERR_MISSING_TOOL', 'keepalived is missing: apt-get install keepalived (scripts/ensure-system-deps.sh does it as root)');
  if (o.keepalived !== false && !commandExists('curl')) throw new NetnsError('NETNS_ERR_MISSING_TOOL', 'curl is missing (keepalived checks each node\'s /health with it): apt-get install curl');
  const prefix = o.dir ? `${labPrefix(o.dir)}-` : 'tdm-';
  const left = listNamespaces().filter((n) => n.startsWith(prefix));
  if (left.length) {
    const how = o.dir ? `\`tandem lab down --dir ${o.dir}\`` : '`tandem lab down --dir <that lab\'s dir>` (or `ip netns del NAME`)';
    throw new NetnsError('NETNS_ERR_LEFTOVER', `network namespaces left from a lab that did not end cleanly: ${left.join(', ')}; run ${how}`);
  }
  if (o.hostAddress && rootHasAddress(o.hostAddress)) {
    throw new NetnsError('NETNS_ERR_ADDRESS_IN_USE', `${o.hostAddress} is already on an interface of this host (another lab is up, or the address is used): \`tandem lab down\` that lab first`);
  }
}

/**
 * Makes the network: the bridge namespace, the host's veth with `hostAddress`, and per node a
 * namespace with `lo` up, `ip_nonlocal_bind=1` and `eth0` carrying its address. Every name is
 * recorded before it is made; on failure what was made is removed and the error thrown.
 */
export function createNetwork(dir: string, spec: NetnsNetworkSpec): NetnsState {
  const plen = spec.prefixLength ?? 24;
  if (isIP(spec.hostAddress) !== 4) throw new NetnsError('NETNS_ERR_BAD_SPEC', `hostAddress: expected an IPv4 address, got ${spec.hostAddress}`);
  const seen = new Set<string>([spec.hostAddress]);
  for (const n of spec.nodes) {
    if (!NODE_NAME.test(n.name)) throw new NetnsError('NETNS_ERR_BAD_SPEC', `node name ${JSON.stringify(n.name)}: letters, digits, - _ (at most 24)`);
    if (isIP(n.address) !== 4) throw new NetnsError('NETNS_ERR_BAD_SPEC', `${n.name}: expected an IPv4 address, got ${n.address}`);
    if (seen.has(n.address)) throw new NetnsError('NETNS_ERR_BAD_SPEC', `${n.name}: address ${n.address} is used twice`);
    seen.add(n.address);
  }
  preflightNetns({ dir, hostAddress: spec.hostAddress, keepalived: false });
  const prefix = labPrefix(dir);
  const s: NetnsState = {
    version: 1,
    prefix,
    bridgeNamespace: `${prefix}-bridge`,
    prefixLength: plen,
    nodes: {},
    namespaces: [],
    processes: [],
  };
  try {
    const br = s.bridgeNamespace;
    s.namespaces.push(br);
    writeState(dir, s);
    run('ip', ['netns', 'add', br]);
    run('ip', ['-n', br, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', br, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    run('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
    // The host's side: the only name made in the root namespace (15 characters at most).
    s.hostLink = `${prefix.replace(/-/g, '')}h`;
    s.hostAddress = spec.hostAddress;
    writeState(dir, s);
    run('ip', ['link', 'add', s.hostLink, 'type', 'veth', 'peer', 'name', 'host', 'netns', br]);
    run('ip', ['-n', br, 'link', 'set', 'host', 'master', 'br0', 'up']);
    run('ip', ['addr', 'add', `${spec.hostAddress}/${plen}`, 'dev', s.hostLink]);
    run('ip', ['link', 'set', s.hostLink, 'up']);
    spec.nodes.forEach((n, i) => {
      const ns = namespaceName(dir, n.name);
      const port = `p${i}`;
      s.namespaces.push(ns);
      s.nodes[n.name] = { namespace: ns, address: n.address, bridgePort: port };
      writeState(dir, s);
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1']);
      run('ip', ['-n', br, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run('ip', ['-n', br, 'link', 'set', port, 'master', 'br0', 'up']);
      run('ip', ['-n', ns, 'addr', 'add', `${n.address}/${plen}`, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    });
    return s;
  } catch (err) {
    teardownNetwork(dir);
    throw err;
  }
}

function node(dir: string, name: string): NetnsState['nodes'][string] & { state: NetnsState } {
  const s = readNetnsState(dir);
  const n = s?.nodes[name];
  if (!s || !n) throw new NetnsError('NETNS_ERR_UNKNOWN_NODE', `no node ${name} in the lab network of ${resolve(dir)}`);
  return { ...n, state: s };
}

/**
 * Spawns a process inside a node's namespace (`ip netns exec NS ...`, which execs in place: the
 * pid is the command's) and records its pid, so teardown ends it even if the caller crashed.
 */
export function spawnInNamespace(dir: string, nodeName: string, command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const n = node(dir, nodeName);
  const child = spawn('ip', ['netns', 'exec', n.namespace, command, ...args], options);
  child.on('error', () => undefined);
  if (child.pid !== undefined) {
    const s = n.state;
    s.processes.push({ namespace: n.namespace, pid: child.pid, command });
    writeState(dir, s);
  }
  return child;
}

/** Runs a command inside a node's namespace and returns its stdout (throws on failure). */
export function execInNamespace(dir: string, nodeName: string, command: string, args: string[]): string {
  return run('ip', ['netns', 'exec', node(dir, nodeName).namespace, command, ...args]);
}

/**
 * Takes a node's link down (`up: false`) or up: the bridge side of its veth, as a cable pulled at
 * the switch (the node's `eth0` loses carrier; its addresses stay).
 */
export function setNodeLink(dir: string, nodeName: string, up: boolean): void {
  const n = node(dir, nodeName);
  run('ip', ['-n', n.state.bridgeNamespace, 'link', 'set', n.bridgePort, up ? 'up' : 'down']);
}

/** IPv4 addresses on a node's interfaces now. */
export function nodeAddresses(dir: string, nodeName: string): string[] {
  const n = node(dir, nodeName);
  const r = spawnSync('ip', ['-n', n.namespace, '-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  return [...r.stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!);
}

/** The node whose namespace holds `address` now (several: the first; none: undefined). */
export function addressHolderOf(dir: string, address: string, among?: string[]): string | undefined {
  const s = readNetnsState(dir);
  if (!s) return undefined;
  for (const name of among ?? Object.keys(s.nodes)) {
    if (!s.nodes[name]) continue;
    if (nodeAddresses(dir, name).includes(address)) return name;
  }
  return undefined;
}

/** A live process (a zombie waiting for its parent counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

function killNamespacePids(ns: string): number {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  const pids = r.status === 0 ? r.stdout.split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid) : [];
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return pids.length;
}

/**
 * Removes the lab network of `dir`: kills every process in its namespaces (`ip netns pids`),
 * deletes the namespaces (their veths go with them) and the host's veth, then the state folder.
 * Uses the state file; without one (or beyond it) also namespaces carrying this lab's exact
 * prefix. Returns what it removed. Safe to call twice, and after a crash halfway.
 */
export function teardownNetwork(dir: string): string[] {
  const s = readNetnsState(dir);
  const prefix = labPrefix(dir);
  const removed: string[] = [];
  const existing = new Set(listNamespaces());
  const ours = new Set([...(s?.namespaces ?? []), ...[...existing].filter((n) => n.startsWith(`${prefix}-`))]);
  // Node namespaces first, the bridge last (its veth ends go with the node namespaces).
  const order = [...ours].sort((a, b) => Number(a === s?.bridgeNamespace || a.endsWith('-bridge')) - Number(b === s?.bridgeNamespace || b.endsWith('-bridge')));
  for (const ns of order) {
    if (!existing.has(ns)) continue;
    const killed = killNamespacePids(ns);
    // A process just killed may hold the namespace a moment; `ip netns del` only unmounts it.
    spawnSync('ip', ['netns', 'del', ns]);
    removed.push(`namespace ${ns}${killed ? ` (${killed} process${killed > 1 ? 'es' : ''} killed)` : ''}`);
  }
  for (const p of s?.processes ?? []) {
    if (!alive(p.pid)) continue;
    try {
      process.kill(p.pid, 'SIGKILL');
      removed.push(`process ${p.command} (pid ${p.pid})`);
    } catch {
      /* gone with its namespace */
    }
  }
  const hostLink = s?.hostLink ?? `${prefix.replace(/-/g, '')}h`;
  if (rootLinks().includes(hostLink)) {
    spawnSync('ip', ['link', 'del', hostLink]);
    removed.push(`link ${hostLink}`);
  }
  rmSync(netnsDir(dir), { recursive: true, force: true });
  return removed;
}
