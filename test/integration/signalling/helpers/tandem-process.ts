import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface TandemProcess {
  child: ChildProcess;
  /** Listening points from the ready line, e.g. { udp: 43633, tcp: 43491 }. */
  ports: Record<string, number>;
  stdout: string[];
  stderr: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const ROOT = resolve(import.meta.dirname, '../../../..');

/** Writes a temp file and returns its path. */
export function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-test-'));
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** Runs `tandem start <args>` and resolves once it prints its `tandem: listening` line. */
export async function startTandem(args: string[], timeoutMs = 15000): Promise<TandemProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'start', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: process.env.TANDEM_LOG_LEVEL ?? 'warn' },
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  let exited: number | null | undefined;
  const exitP = new Promise<number | null>((r) => child.once('exit', (code) => {
    exited = code;
    r(code);
  }));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  const ports: Record<string, number> = {};
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`tandem start not ready in time; stderr: ${stderr.join('')}`)), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout.push(d);
      const m = /tandem: listening (.*)/.exec(stdout.join(''));
      if (m && Object.keys(ports).length === 0) {
        for (const lp of m[1]!.matchAll(/(udp|tcp|tls):[^\s]+:(\d+)/g)) ports[lp[1]!] ??= Number(lp[2]);
        clearTimeout(timer);
        resolveReady();
      }
    });
    void exitP.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tandem start exited (${code}): ${stderr.join('')}`));
    });
  });
  return {
    child,
    ports,
    stdout,
    stderr,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (exited !== undefined) return exited;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 8000);
      const code = await exitP;
      clearTimeout(t);
      return code;
    },
  };
}
