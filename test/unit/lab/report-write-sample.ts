/**
 * Writes the sample report from the synthetic half-dead run into docs/lab-report-sample/ (what a
 * `tandem lab run half-dead` report looks like). Run: node --import tsx test/unit/lab/report-write-sample.ts
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeExperimentReport } from '../../../src/lab/report/index.js';
import { halfDeadSample } from './report-sample-data.js';

const out = resolve(process.argv[2] ?? 'docs/lab-report-sample');
const tmp = await mkdtemp(join(tmpdir(), 'tandem-report-sample-'));
const t0 = performance.now();
const report = await writeExperimentReport(tmp, halfDeadSample());
const ms = performance.now() - t0;
await rm(out, { recursive: true, force: true });
await cp(report.dir, out, { recursive: true });
await rm(tmp, { recursive: true, force: true });
await writeFile(
  join(out, 'README.md'),
  [
    '# Sample experiment report',
    '',
    'What `tandem lab run half-dead` writes into `DIR/reports/half-dead-TIME/`, here drawn from **synthetic data**',
    '(test/unit/lab/report-sample-data.ts), not from a measurement: [report.md](report.md), [report.json](report.json) and the plots.',
    'The writer is src/lab/report/ ([README](../../src/lab/report/README.md)). Regenerate with',
    '`node --import tsx test/unit/lab/report-write-sample.ts`.',
    '',
  ].join('\n'),
);
console.log(`sample report written to ${out} in ${ms.toFixed(0)} ms`);
