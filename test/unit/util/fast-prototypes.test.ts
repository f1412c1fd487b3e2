import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const moduleUrl = new URL('../../../src/util/fast-prototypes.ts', import.meta.url).href;
const metricsUrl = new URL('../../../src/util/metrics.ts', import.meta.url).href;
const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Runs `body` in a fresh Node process (its prototypes are its own), returns what it prints as JSON. */
function inChild(body: string, env: Record<string, string> = {}): unknown {
  const script = `
    const m = await import(${JSON.stringify(moduleUrl)});
    const metrics = await import(${JSON.stringify(metricsUrl)});
    const out = {};
    ${body}
    console.log(JSON.stringify(out));
  `;
  const text = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env: { ...process.env, ...env } }).toString();
  return JSON.parse(text.trim().split('\n').pop()!);
}

describe('keepPrototypesFast', () => {
  it('turns String.prototype fast again after ioredis (a class extending String) slowed it, and counts it', () => {
    const out = inChild(`
      out.before = m.slowPrototypes();
      await import('ioredis');
      out.afterIoredis = m.slowPrototypes();
      m.keepPrototypesFast();
      out.afterRestore = m.slowPrototypes();
      class Another extends String {}
      out.afterAnother = m.slowPrototypes();
      out.restoredAgain = m.restorePrototypes();
      out.end = m.slowPrototypes();
      out.metrics = (await metrics.metricsRegistry.metrics()).split('\\n').filter((l) => l.startsWith('tandem_runtime_prototypes_restored_total'));
      out.works = 'abc'.indexOf('c') === 2 && new Another('x').toUpperCase() === 'X' && 'a-b'.split('-').length === 2;
    `) as Record<string, unknown>;
    expect(out['before']).toEqual([]);
    expect(out['afterIoredis']).toContain('String');
    expect(out['afterRestore']).toEqual([]);
    expect(out['afterAnother']).toEqual(['String']);
    expect(out['restoredAgain']).toEqual(['String']);
    expect(out['end']).toEqual([]);
    expect(out['metrics']).toEqual(['tandem_runtime_prototypes_restored_total{prototype="String"} 2']);
    expect(out['works']).toBe(true);
  });

  it('leaves them as they are with TANDEM_FAST_PROTOTYPES=0', () => {
    const out = inChild(
      `
      await import('ioredis');
      out.restored = m.restorePrototypes();
      out.slow = m.slowPrototypes();
    `,
      { TANDEM_FAST_PROTOTYPES: '0' },
    ) as Record<string, unknown>;
    expect(out['restored']).toEqual([]);
    expect(out['slow']).toContain('String');
  });
});
