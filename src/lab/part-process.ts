/**
 * Starting, signalling and probing the lab's parts. Parts outlive the `tandem lab up` command
 * (detached, own process group, output to a log file), so every later `tandem lab ...` finds
 * them again by the pid recorded in topology.json.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HealthCheck, LabPart } from './lab-plan.js';
import { respCall } from './resp.js';

/** Starts a part detached; returns its pid. In a namespace it runs under `ip netns exec`, which execs in place (same pid). */
export function startPart(part: LabPart): number {
  mkdirSync(dirname(part.log), { recursive: true });
  for (const f of part.staleFiles ?? []) rmSync(f, { force: true });
  const fd = openSync(part.log, 'a');
  try {
    const [command, args] = part.namespace ? ['ip', ['netns', 'exec', part.namespace, part.command, ...part.args]] : [part.command, part.args];
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, TANDEM_LOG_LEVEL: process.env.TANDEM_LOG_LEVEL ?? 'warn', ...part.env },
    });
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`${part.name}: could not start ${part.command}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Whether a pid is a live, not stopped-forever, process (zombies count as dead). */
export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Whether a live pid is stopped (SIGSTOP). */
export function isStopped(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
  } catch {
    return false;
  }
}

/** Signals a part's whole process group (worker threads and children go with it). */
export function signalPart(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch {
      /* not a group leader, or gone */
    }
  }
}

/** Kills with SIGKILL and waits until the pid is gone (bounded). */
export async function killPart(pid: number | undefined, timeoutMs = 3000): Promise<void> {
  if (!isAlive(pid)) return;
  signalPart(pid, 'SIGCONT');
  signalPart(pid, 'SIGKILL');
  const until = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

/** One probe of a part's health; a reason when not healthy. */
export async function probe(h: HealthCheck, log: string): Promise<string | undefined> {
  try {
    if (h.kind === 'http') {
      const res = await fetch(h.url, { signal: AbortSignal.timeout(500), headers: h.token ? { authorization: `Bearer ${h.token}` } : {} });
      return res.ok ? undefined : `HTTP ${res.status}`;
    }
    if (h.kind === 'redis') {
      const r = await respCall(h.host, h.port, ['PING'], 300);
      return r === 'PONG' ? undefined : `PING answered ${String(r)}`;
    }
    if (!existsSync(log)) return 'no log yet';
    return readFileSync(log, 'utf8').includes(h.pattern) ? undefined : `waiting for "${h.pattern}" in its log`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The last lines of a part's log, for an error message. */
export function logTail(path: string, lines = 8): string {
  if (!existsSync(path)) return '(no log)';
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
