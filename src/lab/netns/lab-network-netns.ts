/**
 * The {@link LabNetwork} of `tandem lab --netns`: every part in its own namespace on one bridge,
 * the host on it at the lab's caller address, and a keepalived per signalling and media node
 * moving their VIPs (configuration from `tandem cluster keepalived-config`'s generator, so the lab
 * runs what production would).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keepalivedConfig } from '../../cluster/keepalived-config.js';
import type { LabNetwork } from '../lab-network.js';
import type { LabPart } from '../lab-plan.js';
import type { LabTopology } from '../lab.js';
import { keepalivedArgs, keepalivedFiles, notifyCommand, writeKeepalivedConfig } from './keepalived.js';
import { createNetwork, namespaceName, nodeAddresses, preflightNetns, readNetnsState, run, setNodeLink, teardownNetwork } from './netns.js';

/** Whether any process runs in a namespace (a namespace with none is a switched-off host). */
function hasProcesses(ns: string): boolean {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '';
}

/** Whether the process named in a pid file is alive. */
function pidFileAlive(path: string): boolean {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function linkUp(dir: string, node: string): boolean {
  const s = readNetnsState(dir);
  const n = s?.nodes[node];
  if (!s || !n) return false;
  const r = spawnSync('ip', ['-n', s.bridgeNamespace, '-o', 'link', 'show', n.bridgePort], { encoding: 'utf8' });
  return /[<,]UP[,>]/.test(r.stdout);
}

/**
 * keepalived parts for the nodes that have VIPs (signalling and media): unicast peers are the
 * other nodes of the same role; a node's first VIP is its own (priority 250), the rest it stands
 * by for (240); of two nodes sharing one VIP (signalling) the first listed starts as master.
 * `nopreempt`: a node that comes back does not take the address back.
 */
export function keepalivedParts(dir: string, topo: LabTopology, advertMs: number): LabPart[] {
  const out: LabPart[] = [];
  const withVips = topo.parts.filter((p) => (p.role === 'signalling' || p.role === 'media') && p.vips.length);
  for (const p of withVips) {
    const peers = withVips.filter((x) => x.role === p.role && x.name !== p.name);
    if (!peers.length) continue;
    const sameSet = peers.filter((x) => x.vips[0] === p.vips[0]);
    const rank = [p, ...sameSet].sort((a, b) => withVips.indexOf(a) - withVips.indexOf(b)).indexOf(p);
    const text = keepalivedConfig({
      nodeId: p.name,
      clusterName: 'lab',
      role: p.role,
      vips: [p.vips[0]!],
      standbyVips: p.vips.slice(1),
      dev: 'eth0',
      sourceAddress: p.address,
      peers: peers.map((x) => x.address),
      priority: 250 - rank * 10,
      standbyPriority: 240,
      advertIntervalMs: advertMs,
      ...(p.adminUrl ? { healthUrl: `${p.adminUrl}/health` } : {}),
      notify: notifyCommand(dir, p.name),
    });
    writeKeepalivedConfig(dir, p.name, text);
    const name = `keepalived-${p.name}`;
    out.push({
      name,
      role: 'keepalived',
      address: p.address,
      vips: p.vips,
      namespace: namespaceName(dir, p.name),
      command: 'keepalived',
      args: keepalivedArgs(dir, p.name),
      // A SIGKILLed keepalived leaves its pid files: a new one would say "daemon is already running".
      staleFiles: (({ pid, vrrpPid, checkersPid, bfdPid }) => [pid, vrrpPid, checkersPid, bfdPid])(keepalivedFiles(dir, p.name)),
      // keepalived logs each instance's first state ("Entering BACKUP STATE (init)") once its config is read.
      health: { kind: 'log', pattern: 'Entering BACKUP STATE' },
      log: join(resolve(dir), 'logs', `${name}.log`),
    });
  }
  return out;
}

/** The namespace layer for `tandem lab --netns`. */
export function netnsLabNetwork(): LabNetwork & { preflight(dir?: string): Promise<void> } {
  return {
    async preflight(dir?: string) {
      preflightNetns({ ...(dir ? { dir } : {}), keepalived: true });
    },
    namespaceOf(dir, part) {
      return namespaceName(dir, part);
    },
    async create(dir, topo) {
      const nodes = topo.parts.filter((p) => p.namespace && p.role !== 'keepalived').map((p) => ({ name: p.name, address: p.address }));
      createNetwork(dir, { hostAddress: topo.addresses.caller, nodes });
      return keepalivedParts(dir, topo, (topo as LabTopology & { advertMs?: number }).advertMs ?? 20);
    },
    setLink(dir, topo, part, up) {
      if (up) {
        // A node whose keepalived died (SIGKILL) left its VIPs on eth0: drop them before the link
        // returns, or two nodes would answer for one address.
        const p = topo.parts.find((x) => x.name === part);
        const ns = namespaceName(dir, part);
        const kaAlive = pidFileAlive(keepalivedFiles(dir, part).pid);
        if (p && !kaAlive) {
          const have = nodeAddresses(dir, part);
          for (const vip of p.vips.filter((v) => have.includes(v))) run('ip', ['-n', ns, 'addr', 'del', `${vip}/32`, 'dev', 'eth0']);
        }
      }
      setNodeLink(dir, part, up);
    },
    addressHolder(dir, topo, address) {
      const candidates = topo.parts.filter((p) => p.role !== 'keepalived' && p.vips.includes(address) && readNetnsState(dir)?.nodes[p.name]);
      const having = candidates.filter((p) => nodeAddresses(dir, p.name).includes(address));
      // A switched-off node (no process, or link down) may still carry the address on its interface.
      const live = having.find((p) => linkUp(dir, p.name) && hasProcesses(namespaceName(dir, p.name)));
      return live?.name ?? having[0]?.name;
    },
    async teardown(dir) {
      return teardownNetwork(dir);
    },
  };
}
