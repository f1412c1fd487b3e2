import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExperimentData, writeExperimentReport } from '../../../src/lab/report/index.js';
import type { ExperimentData, WrittenReport } from '../../../src/lab/report/types.js';
import { PNG_SIGNATURE, inkStats, readPngHeader } from './report-png.js';
import { SAMPLE_START_MS, halfDeadSample } from './report-sample-data.js';

let base: string;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'tandem-report-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('writeExperimentReport from a synthetic half-dead run', () => {
  let report: WrittenReport;
  let md: string;

  beforeAll(async () => {
    report = await writeExperimentReport(base, halfDeadSample());
    md = await readFile(join(report.dir, 'report.md'), 'utf8');
  });

  it('writes report.md, report.json and the plots into DIR/reports/<name>-<time>/', async () => {
    expect(report.dir).toBe(join(base, 'reports', 'half-dead-20261203-100000'));
    const names = (await readdir(report.dir)).sort();
    expect(names).toEqual(
      ['calls.png', 'calls.svg', 'media-gap.png', 'media-gap.svg', 'report.json', 'report.md', 'takeover-zoom.png', 'takeover-zoom.svg', 'takeover.png', 'takeover.svg'].sort(),
    );
    expect(report.files[0]).toBe(join(report.dir, 'report.md'));
  });

  it('puts the measured figures beside the published ones, with a verdict and the source', () => {
    expect(md).toContain('| figure | measured | published | verdict | source |');
    // Worst takeover 850 ms against the paper's 1 s switchover.
    expect(md).toMatch(/\| Takeover \(switchover to hot standby\), worst of the run \| 850 ms \| 1 s \| better \| Pryimak & Kravchuk 2025, §5/);
    expect(md).toMatch(/\| Established calls dropped \| 0 \| 0 \| same \|/);
    expect(md).toMatch(/\| Proxy\/registrar failover .* \| 850 ms \| 3\.49 s \| better \| Martin et al\. 2018, Table VIII/);
  });

  it('computes availability from MTBF 336 h and the measured takeover, with nines and downtime per year', () => {
    // MTTR = worst takeover 0.85 s: A = 1209600 / 1209600.85.
    const a = 1209600 / (1209600 + 0.85);
    expect(report.computed.availability?.availability).toBeCloseTo(a, 12);
    expect(md).toContain('A = 1,209,600 / (1,209,600 + 0.85) = **99.9999297 %**');
    // Downtime per year: (1 - A) * 365.25 d = 22.18 s; the paper's 1 s handover gives 26.09 s.
    expect(md).toMatch(/\| this run \| 850 ms \| 99\.9999297 % \| 6\.15 \| 22\.18 s \|/);
    expect(md).toMatch(/\| published HA system .* \| 1 s \| 99\.9999173 % \| 6\.08 \| 26\.09 s \|/);
    expect(md).toMatch(/\| published traditional system .* \| 1 h \| 99\.703 % \| 2\.53 \| 1 d 2 h \|/);
  });

  it('reports calls kept and dropped, failures by reason, takeover, refusal window and RTP gap percentiles', () => {
    const est = report.computed.callsEstablished!;
    expect(md).toContain(`**Result:** ${est.toLocaleString('en-US')} of ${est.toLocaleString('en-US')} established calls kept (0 dropped)`);
    expect(md).toContain('| status 503 | 24 |');
    expect(md).toContain('| timeout | 3 |');
    expect(md).toContain('| takeover time(s) | sig VIP 850 ms, media VIP 330 ms |');
    expect(md).toContain('| new-call refusal window | 900 ms |');
    const gap = report.computed.mediaGapMs!;
    expect(gap.count).toBe(est);
    expect(gap.p50).toBeLessThanOrEqual(gap.p99);
    expect(gap.p99).toBeLessThanOrEqual(gap.max);
    expect(md).toMatch(/\| worst RTP gap per call: p50 \/ p99 \/ max \| [\d.]+ ms \/ [\d.]+ ms \/ [\d.]+ ms \(1,143 calls\) \|/);
    expect(md).toContain('| new calls refused no longer than the takeover | FAIL | refused 900 ms, takeover 850 ms |');
  });

  it('embeds every PNG it wrote', () => {
    for (const f of ['calls.png', 'media-gap.png', 'takeover.png', 'takeover-zoom.png']) expect(md).toContain(`](${f})`);
  });

  it('keeps the data and the computed figures in report.json', async () => {
    const json = JSON.parse(await readFile(join(report.dir, 'report.json'), 'utf8'));
    expect(json.schema).toBe('tandem-lab-report/1');
    expect(json.data.experiment).toBe('half-dead');
    expect(json.data.samples.length).toBe(241);
    expect(json.computed.takeoverMaxMs).toBe(850);
    expect(json.computed.comparisons.length).toBeGreaterThan(3);
    expect(json.environment.node).toBe(process.version);
    // Number arrays on one line; strings that look like arrays untouched.
    const text = await readFile(join(report.dir, 'report.json'), 'utf8');
    expect(text).toMatch(/"takeoverMs": \[850,330\]/);
    expect(text).toContain('"refused 900 ms, takeover 850 ms"');
  });

  it('draws PNGs of the plot size that are not blank', async () => {
    for (const f of ['calls.png', 'media-gap.png', 'takeover.png', 'takeover-zoom.png']) {
      const png = await readFile(join(report.dir, f));
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(readPngHeader(png)).toMatchObject({ width: 1200, height: 560, bitDepth: 8 });
      const ink = inkStats(png);
      // Axes, text, lines and bars: a few percent of the pixels at least, in several colours.
      expect(ink.inkShare, f).toBeGreaterThan(0.02);
      expect(ink.greyVariance, f).toBeGreaterThan(100);
      expect(ink.colours, f).toBeGreaterThan(20);
    }
  });

  it('renders text (a font was found): the title row has ink', async () => {
    const png = await readFile(join(report.dir, 'calls.png'));
    const { inkShare } = inkStats(png);
    expect(inkShare).toBeGreaterThan(0);
    const svg = await readFile(join(report.dir, 'calls.svg'), 'utf8');
    expect(svg).toContain('half-dead: active calls and call rate over time');
    expect(svg).toContain('SIGKILL sig1, media1, redis1');
  });

  it('a second report of the same run in the same second gets its own directory', async () => {
    const again = await writeExperimentReport(base, halfDeadSample(), { svgOnly: true });
    expect(again.dir).toBe(join(base, 'reports', 'half-dead-20261203-100000-2'));
  });
});

describe('writeExperimentReport with little or bad data', () => {
  it('writes a report from the bare minimum, saying what was not measured, plots say "no data"', async () => {
    const data: ExperimentData = { experiment: 'sig-fail', startedAtMs: SAMPLE_START_MS, endedAtMs: SAMPLE_START_MS + 5000 };
    const r = await writeExperimentReport(base, data);
    const md = await readFile(join(r.dir, 'report.md'), 'utf8');
    expect(md).toMatch(/\| Established calls dropped \| not measured \| 0 \| not measured \|/);
    expect(md).toContain('Not computed: the run measured neither a takeover nor a refusal window.');
    expect(await readFile(join(r.dir, 'calls.svg'), 'utf8')).toContain('no samples recorded');
    expect(await readFile(join(r.dir, 'media-gap.svg'), 'utf8')).toContain('no per-call media gaps recorded');
    const png = await readFile(join(r.dir, 'takeover.png'));
    expect(readPngHeader(png)).toMatchObject({ width: 1200, height: 560 });
  });

  it('ignores non-numbers, NaN and odd names without throwing; escapes markup from the data', async () => {
    const data = {
      experiment: '../../etc/<x>',
      startedAtMs: SAMPLE_START_MS,
      endedAtMs: SAMPLE_START_MS + 10_000,
      description: 'a <b>bold</b> | pipe',
      samples: [
        { atMs: SAMPLE_START_MS, activeCalls: 1, callsPerSec: 1, failedSoFar: 0 },
        { atMs: NaN, activeCalls: 2, callsPerSec: 2, failedSoFar: 0 },
        { atMs: SAMPLE_START_MS + 1000, activeCalls: 'x', callsPerSec: null, failedSoFar: 0 },
        null,
      ],
      events: [{ atMs: SAMPLE_START_MS + 500, kind: 'fault', node: 'sig1', detail: '<script>&' }, { atMs: 'soon', kind: 'lease', node: 'sig2' }],
      media: { perCallWorstGapMs: [20, NaN, 'x', -5, 40, Infinity] },
      figures: { callsEstablished: 10, callsDropped: Number.NaN, takeoverMs: [Number.NaN, 1200, 'x'], failuresByReason: { 'a|b': 2 } },
    } as unknown as ExperimentData;
    const r = await writeExperimentReport(base, data);
    expect(r.dir.startsWith(join(base, 'reports', 'etc-x-'))).toBe(true);
    const md = await readFile(join(r.dir, 'report.md'), 'utf8');
    expect(md).toContain('a \\<b\\>bold\\</b\\> \\| pipe');
    expect(md).toContain('| a\\|b | 2 |');
    expect(r.computed.takeoverMs).toEqual([1200]);
    expect(r.computed.callsDropped).toBeNull();
    expect(r.computed.mediaGapMs?.count).toBe(2);
    const svg = await readFile(join(r.dir, 'calls.svg'), 'utf8');
    expect(svg).toContain('&lt;script&gt;&amp;');
    expect(svg).not.toContain('<script>');
  });
});

describe('writeExperimentReport from a real lab run (half-dead on loopback, data as the lab gave it)', () => {
  it('computes the figures, shows vacancies and a log-scale gap histogram', async () => {
    const data = JSON.parse(await readFile(new URL('./report-fixture-half-dead-loopback.json', import.meta.url), 'utf8')) as ExperimentData;
    const r = await writeExperimentReport(base, data);
    const md = await readFile(join(r.dir, 'report.md'), 'utf8');
    // Worst of 2447, 3049 and 2348 ms is the MTTR.
    expect(r.computed.availability?.mttrSec).toBe(3.049);
    expect(md).toMatch(/\| Takeover \(switchover to hot standby\), worst of the run \| 3\.05 s \| 1 s \| \*\*worse\*\* \|/);
    expect(md).toContain('| 0 established calls dropped | pass | 0 dropped |');
    const timeline = await readFile(join(r.dir, 'takeover-zoom.svg'), 'utf8');
    expect(timeline).toContain('no holder 2.41 s');
    expect(timeline).toContain('sig-vip 127.18.0.10: 2.45 s after the fault');
    expect(await readFile(join(r.dir, 'media-gap.svg'), 'utf8')).toContain('log scale');
    for (const f of ['calls.png', 'media-gap.png', 'takeover.png', 'takeover-zoom.png']) {
      expect(inkStats(await readFile(join(r.dir, f))).inkShare, f).toBeGreaterThan(0.02);
    }
  });
});

describe('readExperimentData', () => {
  it('reads the data back from a report.json or a bare data file, and refuses anything else', async () => {
    const r = await writeExperimentReport(base, halfDeadSample(), { svgOnly: true });
    const again = await readExperimentData(join(r.dir, 'report.json'));
    expect(again.experiment).toBe('half-dead');
    expect(again.figures?.takeoverMs).toEqual([850, 330]);
    const bare = join(base, 'bare.json');
    await writeFile(bare, JSON.stringify(halfDeadSample()));
    expect((await readExperimentData(bare)).startedAtMs).toBe(SAMPLE_START_MS);
    const bad = join(base, 'bad.json');
    await writeFile(bad, '{"experiment": 1}');
    await expect(readExperimentData(bad)).rejects.toThrow(/no experiment data/);
    await writeFile(bad, 'not json');
    await expect(readExperimentData(bad)).rejects.toThrow(/not JSON/);
  });
});
