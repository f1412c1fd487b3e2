/**
 * keepalived per node namespace: its own configuration, pid files and VRRP event log under
 * `DIR/netns/`, so several run on one host without meeting (keepalived's default pid files are
 * host-wide). Run in the foreground (`-n`), logging to its stdout (`-l -D`, no syslog `-G`), VRRP
 * only (`-P`).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { netnsDir, spawnInNamespace } from './netns.js';

/** Files of one node's keepalived. */
export interface KeepalivedFiles {
  config: string;
  pid: string;
  vrrpPid: string;
  checkersPid: string;
  bfdPid: string;
}

export function keepalivedFiles(dir: string, nodeName: string): KeepalivedFiles {
  const base = join(netnsDir(dir), `keepalived-${nodeName}`);
  return { config: `${base}.conf`, pid: `${base}.pid`, vrrpPid: `${base}.vrrp.pid`, checkersPid: `${base}.checkers.pid`, bfdPid: `${base}.bfd.pid` };
}

/** The `keepalived` arguments for a node (run it with `ip netns exec <its namespace>`). */
export function keepalivedArgs(dir: string, nodeName: string): string[] {
  const f = keepalivedFiles(dir, nodeName);
  return ['-n', '-l', '-D', '-G', '-P', '-f', f.config, '-p', f.pid, '-r', f.vrrpPid, '-c', f.checkersPid, '-b', f.bfdPid];
}

/** Writes a node's keepalived configuration; returns its path. */
export function writeKeepalivedConfig(dir: string, nodeName: string, text: string): string {
  const f = keepalivedFiles(dir, nodeName);
  mkdirSync(netnsDir(dir), { recursive: true });
  writeFileSync(f.config, text, { mode: 0o644 });
  return f.config;
}

function eventsPath(dir: string): string {
  return join(netnsDir(dir), 'vrrp-events.log');
}

/**
 * A notify command for a node's keepalived config: appends `<epoch ms> <node> <INSTANCE|GROUP>
 * <name> <state> <priority>` to `DIR/netns/vrrp-events.log` at every state change (read it with
 * {@link readVrrpEvents}). keepalived runs it as root with its arguments appended.
 */
export function notifyCommand(dir: string, nodeName: string): string {
  const script = join(netnsDir(dir), 'vrrp-notify.sh');
  if (!existsSync(script)) {
    mkdirSync(netnsDir(dir), { recursive: true });
    writeFileSync(script, `#!/bin/sh\n# keepalived notify: <node> then keepalived's TYPE NAME STATE PRIORITY\necho "$(date +%s%3N) $*" >> ${eventsPath(dir)}\n`);
    // keepalived's script security refuses a script others may write.
    chmodSync(script, 0o755);
  }
  return `${script} ${nodeName}`;
}

/** One VRRP state change written by {@link notifyCommand}'s script. */
export interface VrrpEvent {
  tMs: number;
  node: string;
  /** keepalived instance name (`tandem_<role>_<first vip>`). */
  instance: string;
  state: 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP' | string;
  priority: number;
}

/** Every VRRP state change logged so far, oldest first. */
export function readVrrpEvents(dir: string): VrrpEvent[] {
  const p = eventsPath(dir);
  if (!existsSync(p)) return [];
  const out: VrrpEvent[] = [];
  for (const line of readFileSync(p, 'utf8').split('\n')) {
    const [t, node, , instance, state, priority] = line.trim().split(/\s+/);
    if (!t || !node || !instance || !state || !/^\d+$/.test(t)) continue;
    out.push({ tMs: Number(t), node, instance, state, priority: Number(priority ?? 0) });
  }
  return out;
}

/**
 * Starts a node's keepalived in its namespace with `configText` (stale pid files of a killed one
 * removed first, else keepalived may refuse to start). The pid is the keepalived parent's.
 */
export function startKeepalived(dir: string, nodeName: string, configText: string, options: SpawnOptions = {}): ChildProcess {
  writeKeepalivedConfig(dir, nodeName, configText);
  const f = keepalivedFiles(dir, nodeName);
  for (const p of [f.pid, f.vrrpPid, f.checkersPid, f.bfdPid]) rmSync(p, { force: true });
  return spawnInNamespace(dir, nodeName, 'keepalived', keepalivedArgs(dir, nodeName), { stdio: ['ignore', 'pipe', 'pipe'], ...options });
}
