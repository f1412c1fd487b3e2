/** Runs `tandem load ...` as real processes for the load generator's integration tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..', '..');
const BIN = join(ROOT, 'bin', 'tandem.mjs');
const children = new Set<ChildProcess>();

export interface Uas {
  port: number;
  proc: ChildProcess;
  /** Sends SIGTERM and resolves with the JSON summary the UAS prints on exit. */
  stop(): Promise<UasSummary>;
}

export interface UasSummary {
  generated: number;
  successful: number;
  failed: number;
  rtpStreams: number;
  rtpSent: number;
  rtpReceived: number;
  failures: Record<string, number>;
  requests: Record<string, number>;
}

export interface LoadSummary {
  generated: number;
  successful: number;
  failed: number;
  retransmissions: number;
  responseP50Ms: number;
  responseMaxMs: number;
  setupP50Ms: number;
  setupP99Ms: number;
  rtpStreams: number;
  rtpSent: number;
  rtpReceived: number;
  rtpLost: number;
  rtpLossPct: number;
  rtpWorstGapMs: number;
  rtpGapP50Ms: number;
  rtpGapP99Ms: number;
  rtpJitterMaxMs: number;
  failures: Record<string, number>;
  workers: number;
}

function spawnTandem(args: string[]): ChildProcess {
  const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TANDEM_LOG_LEVEL: 'warn' } });
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}

export async function startUas(args: string[]): Promise<Uas> {
  const proc = spawnTandem(['load', 'uas', '--listen', '127.0.0.1:0', '--progress', 'none', '--summary', 'json', '--stop-after', '120s', ...args]);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`uas did not start: ${err}`)), 20_000);
    const check = (): void => {
      const m = /listening \w+ [\d.]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    };
    proc.stdout!.on('data', check);
    proc.on('exit', () => reject(new Error(`uas exited: ${err}`)));
  });
  return {
    port,
    proc,
    stop: () =>
      new Promise<UasSummary>((resolve, reject) => {
        proc.on('exit', () => {
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (!line) reject(new Error(`no uas summary: ${out} ${err}`));
          else resolve(JSON.parse(line) as UasSummary);
        });
        proc.kill('SIGTERM');
      }),
  };
}

/** Runs a UAC command to its end (bounded by `limitMs`) and returns its JSON summary and exit code. */
export function runLoadCli(args: string[], limitMs = 60_000): Promise<{ summary: LoadSummary; code: number | null; stderr: string }> {
  const proc = spawnTandem(['load', ...args, '--progress', 'lines', '--summary', 'json']);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`load run did not end within ${limitMs} ms: ${err}`));
    }, limitMs);
    proc.on('exit', (code) => {
      clearTimeout(t);
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) reject(new Error(`no summary (exit ${code}): ${out} ${err}`));
      else resolve({ summary: JSON.parse(line) as LoadSummary, code, stderr: err });
    });
  });
}

export function killAll(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
}
