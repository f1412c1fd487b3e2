/**
 * `tandem lab`: the whole published topology up (in network namespaces with keepalived when
 * root, as CI is; on loopback with leases otherwise), a short version of every experiment run
 * against it through the real CLI, and the reports checked for what an operator reads in them:
 * calls kept, media resumed, takeover seen. `down` must leave no process, namespace or file.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labPrefix } from '../../../src/lab/netns/netns.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/tandem.mjs');
const root = process.getuid?.() === 0;
const keepalived = spawnSync('sh', ['-c', 'command -v keepalived']).status === 0;
const mode = root && keepalived ? 'netns' : 'loopback';
const dir = mkdtempSync(join(tmpdir(), 'tandem-lab-test-'));

/**
 * The CLI as a child process, awaited rather than run synchronously: an experiment takes minutes,
 * and a test worker blocked that long loses its link to the test runner.
 */
function tandem(args: string[], timeoutMs = 120_000): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, TANDEM_FROM_SOURCE: '1' } });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, out });
    });
  });
}

interface Report {
  experiment: string;
  figures: { callsDropped?: number; callsFailedNew?: number; takeoverMs?: number[]; callsEstablished?: number; registers?: { failed: number; succeeded: number } };
  media?: { perCallWorstGapMs: number[] };
  checks: Array<{ name: string; ok: boolean; detail?: string }>;
  parameters: { holdSec: number };
}

function lastReport(name: string): Report {
  const reports = join(dir, 'reports');
  const d = readdirSync(reports).filter((x) => x.startsWith(`${name}-`)).sort().at(-1);
  expect(d, `a report directory for ${name}`).toBeDefined();
  for (const f of ['report.md', 'report.json']) expect(existsSync(join(reports, d!, f))).toBe(true);
  expect(readdirSync(join(reports, d!)).some((f) => f.endsWith('.png'))).toBe(true);
  return (JSON.parse(readFileSync(join(reports, d!, 'report.json'), 'utf8')) as { data: Report }).data;
}

/** Runs one experiment and heals the lab; `out` is the CLI's summary, for failure messages. */
async function run(name: string, args: string[]): Promise<Report & { out: string }> {
  const r = await tandem(['lab', 'run', name, '--dir', dir, ...args], 180_000);
  expect(r.out).toContain(`${name}:`);
  const report = lastReport(name);
  const heal = await tandem(['lab', 'revive', 'all', '--dir', dir], 120_000);
  expect(heal.code, heal.out).toBe(0);
  return { ...report, out: r.out };
}

const short = ['--calls', '30', '--rate', '30', '--duration', '4'];

describe(`tandem lab (${mode})`, () => {
  beforeAll(async () => {
    const up = await tandem(['lab', 'up', `--${mode}`, '--dir', dir], 180_000);
    if (up.code !== 0) throw new Error(`lab up failed:\n${up.out}`);
  }, 200_000);

  afterAll(async () => {
    const down = await tandem(['lab', 'down', '--dir', dir], 120_000);
    expect(down.code, down.out).toBe(0);
    expect(existsSync(join(dir, 'topology.json'))).toBe(false);
    if (mode === 'netns') {
      // Only this lab's names: other tests (keepalived takeover) run their own labs meanwhile.
      const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
      expect(left.split('\n').filter((line) => line.startsWith(`${labPrefix(dir)}-`))).toEqual([]);
    }
  }, 130_000);

  it('status names a holder for every VIP and the Redis primary', async () => {
    const s = await tandem(['lab', 'status', '--dir', dir, '--json']);
    expect(s.code, s.out).toBe(0);
    const j = JSON.parse(s.out.slice(s.out.indexOf('{'))) as { holders: Record<string, string | null>; redisPrimary?: string; parts: Array<{ state: string }> };
    expect(Object.values(j.holders).every((h) => typeof h === 'string')).toBe(true);
    expect(j.redisPrimary).toBeDefined();
    expect(j.parts.every((p) => p.state === 'up')).toBe(true);
  });

  it('sig-fail: every call established through the killed node ends through the survivor', async () => {
    const r = await run('sig-fail', short);
    expect(r.figures.callsDropped, r.out).toBe(0);
    expect(r.figures.callsFailedNew, r.out).toBe(0);
    expect(r.figures.takeoverMs?.length).toBe(1);
  }, 200_000);

  it('media-fail: every call keeps its media after the media node carrying it is killed', async () => {
    const r = await run('media-fail', short);
    expect(r.figures.callsDropped, r.out).toBe(0);
    expect(r.media!.perCallWorstGapMs.length).toBeGreaterThan(0);
    // Media resumed on every call: no silence as long as half the call.
    expect(Math.max(...r.media!.perCallWorstGapMs)).toBeLessThan(r.parameters.holdSec * 500);
  }, 200_000);

  it('half-dead: signalling node, media node and Redis primary killed together drop no call', async () => {
    const r = await run('half-dead', short);
    expect(r.figures.callsDropped, r.out).toBe(0);
    expect(r.figures.takeoverMs?.length).toBe(3);
  }, 200_000);

  it('redis-fail: a Sentinel failover under load fails no call', async () => {
    const r = await run('redis-fail', short);
    expect(r.figures.callsDropped, r.out).toBe(0);
    expect(r.figures.callsFailedNew, r.out).toBe(0);
  }, 200_000);

  it('pbx-fail: new calls fail over to the other PBX', async () => {
    const r = await run('pbx-fail', ['--calls', '10', '--rate', '10', '--duration', '2']);
    expect(r.figures.callsFailedNew, r.out).toBe(0);
  }, 200_000);

  it('ringing-fail: calls ringing when the node dies are answered through the survivor', async () => {
    const r = await run('ringing-fail', ['--calls', '30', '--rate', '30', '--duration', '2']);
    expect(r.figures.callsDropped, r.out).toBe(0);
    expect(r.figures.callsEstablished).toBe(30);
  }, 200_000);

  it('stress (short): calls and REGISTERs through the cluster', async () => {
    const r = await run('stress', ['--calls', '30', '--rate', '30', '--duration', '2']);
    expect(r.figures.callsFailedNew, r.out).toBe(0);
    expect(r.figures.registers?.failed).toBe(0);
    expect(r.figures.registers?.succeeded).toBeGreaterThan(0);
  }, 200_000);
});
