import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '../../..');

/** Starts `tandem media --forwarder <kind>`; resolves with the forwarder the relay logged, or the exit code and output. */
function runMedia(forwarder: string): Promise<{ started?: string; code?: number | null; stderr: string }> {
  const portMin = 20000 + 2 * Math.floor(Math.random() * 5000);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(repo, 'src/cli/main.ts'), 'media', '--ng', '127.0.0.1:0', '--rtp-ports', `${portMin}-${portMin + 99}`, '--forwarder', forwarder, '--log-level', 'info'],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let started: string | undefined;
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const onLine = (line: string): void => {
      stderr += line + '\n';
      const m = /"forwarder":"(\w+)".*"msg":"relay started"/.exec(line);
      if (m && started === undefined) {
        started = m[1];
        child.kill('SIGTERM');
      }
    };
    // Logs and the ready line: read both streams.
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(started === undefined ? { code, stderr } : { started, stderr });
    });
  });
}

describe('tandem media --forwarder', () => {
  it('media-forwarder-js-expect-js-relay', async () => {
    expect((await runMedia('js')).started).toBe('js');
  });

  it('media-forwarder-native-expect-native-relay', async () => {
    expect((await runMedia('native')).started).toBe('native');
  });

  it('media-forwarder-bogus-expect-exit-2-naming-the-option', async () => {
    const r = await runMedia('bogus');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('media.forwarder');
  });
});
