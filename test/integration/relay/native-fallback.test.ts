import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '../../..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs a RelayEngine in a child process (the addon loader is once per process); returns its stdout and stderr (logs) lines. */
function runEngine(env: Record<string, string>, forwarder: string): Promise<{ lines: string[]; code: number | null }> {
  const code = `
    const { RelayEngine } = await import('./src/media/relay/relay-engine.ts');
    const e = new RelayEngine({ interface: '127.0.0.1', portMin: 30000, portMax: 30003, workers: 1, forwarder: ${JSON.stringify(forwarder)} });
    await e.start();
    console.log(JSON.stringify({ result: e.forwarder }));
    await e.stop();
  `;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: repo, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ lines: `${stdout}\n${stderr}`.split('\n').filter(Boolean), code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
    );
  });
}

describe('native forwarder build fallback', () => {
  it('native-asked-compiler-missing-expect-js-workers-and-one-warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-native-'));
    dirs.push(dir);
    const { lines, code } = await runEngine({ TANDEM_NATIVE_CACHE_DIR: dir, CXX: '/nonexistent/c++', TANDEM_LOG_LEVEL: 'info' }, 'native');
    expect(code).toBe(0);
    expect(lines.some((l) => l.includes('"result":"js"'))).toBe(true);
    const warnings = lines.filter((l) => l.includes('native forwarder unavailable'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('NATIVE_ERR_BUILD');
  });

  it('auto-empty-cache-expect-built-on-first-use-and-native', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-native-'));
    dirs.push(dir);
    const { lines, code } = await runEngine({ TANDEM_NATIVE_CACHE_DIR: dir }, 'auto');
    expect(code).toBe(0);
    expect(lines.some((l) => l.includes('"result":"native"'))).toBe(true);
  });
});
