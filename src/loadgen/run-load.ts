import type { Worker } from 'node:worker_threads';
import { spawnWorker } from './spawn-worker.js';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { figuresOf, formatSummary, progressLine, StatsFile, type LoadFigures } from './report.js';
import { mergeSnapshots, emptySnapshot, type LoadSnapshot } from './stats.js';
import { UacEngine, type UacEngineOptions } from './uac.js';
import type { WorkerInit, WorkerMessage } from './load-worker.js';

export interface RunLoadOptions extends UacEngineOptions {
  /** Worker threads sharing the calls; 0 runs in this thread. @default cores */
  workers?: number;
  /** CSV (`.csv`) or JSON (`.json`) file for periodic and final figures. */
  statsFile?: string;
  /** `tty`: one rewritten line; `lines`: a line per period; `none`. @default tty if stderr is one */
  progress?: 'tty' | 'lines' | 'none';
  /** Period of progress lines and stats rows. @default 1000 */
  reportMs?: number;
  /** Called with every periodic figure set. */
  onProgress?: (f: LoadFigures) => void;
  /** A signal that stops the run early (like --stop-after). */
  signal?: AbortSignal;
}

export interface LoadResult {
  figures: LoadFigures;
  failures: Record<string, number>;
  snapshot: LoadSnapshot;
  summary: string;
  workers: number;
}

interface Runner {
  stop(): void;
  latest(): LoadSnapshot[];
  rate(): number;
  done: Promise<LoadSnapshot[]>;
}

function share(total: number | undefined, n: number, i: number): number | undefined {
  if (total === undefined || !Number.isFinite(total)) return total;
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

function startWorkers(opts: RunLoadOptions, n: number, reportMs: number): Runner {
  const latest: LoadSnapshot[] = Array.from({ length: n }, () => emptySnapshot());
  const rates: number[] = Array.from({ length: n }, () => opts.rate / n);
  const workers: Worker[] = [];
  const finished: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const engine: UacEngineOptions = {
      ...opts,
      rate: opts.rate / n,
      ...(opts.rateIncrease !== undefined ? { rateIncrease: opts.rateIncrease / n } : {}),
      ...(opts.rateMax !== undefined ? { rateMax: opts.rateMax / n } : {}),
      ...(opts.limit !== undefined ? { limit: Math.max(1, share(opts.limit, n, i)!) } : {}),
      ...(opts.calls !== undefined ? { calls: share(opts.calls, n, i)! } : {}),
      ...(opts.users ? { users: opts.users.filter((_, k) => k % n === i) } : {}),
      ...(opts.localPortMin ? { localPortMin: opts.localPortMin + i } : {}),
    };
    if (engine.users && engine.users.length === 0) engine.users = opts.users!;
    // functions and signals do not cross threads
    const { signal: _s, onProgress: _p, ...plain } = engine as RunLoadOptions;
    void _s;
    void _p;
    const init: WorkerInit = { engine: plain, reportMs };
    const w = spawnWorker('load-worker', init);
    workers.push(w);
    finished.push(
      new Promise<void>((resolve) => {
        let settled = false;
        w.on('message', (m: WorkerMessage) => {
          if (m.type === 'stats') {
            latest[i] = m.snapshot;
            rates[i] = m.rate;
          } else if (m.type === 'done') {
            latest[i] = m.snapshot;
            settled = true;
            resolve();
          } else if (m.type === 'error') {
            latest[i]!.failures[`worker error: ${m.message}`] = 1;
            settled = true;
            resolve();
          }
        });
        w.on('error', (err) => {
          latest[i]!.failures[`worker error: ${err.message}`] = 1;
          settled = true;
          resolve();
        });
        w.on('exit', () => {
          if (!settled) resolve();
        });
      }),
    );
  }
  return {
    stop: () => workers.forEach((w) => w.postMessage({ type: 'stop' })),
    latest: () => latest,
    rate: () => rates.reduce((a, b) => a + b, 0),
    done: Promise.all(finished).then(async () => {
      await Promise.all(workers.map((w) => w.terminate()));
      return latest;
    }),
  };
}

function startInline(opts: RunLoadOptions): Runner {
  const engine = new UacEngine(opts);
  return {
    stop: () => engine.stop(),
    latest: () => [engine.snapshot()],
    rate: () => engine.currentRate,
    done: engine.run().then((s) => [s]),
  };
}

/**
 * Runs a load scenario to its end (call count reached or stop time passed) across worker
 * threads, printing progress, writing the stats file, and returns the merged figures.
 * Percentiles come from the merged histograms.
 */
export async function runLoad(opts: RunLoadOptions): Promise<LoadResult> {
  const reportMs = opts.reportMs ?? 1000;
  let n = opts.workers ?? availableParallelism();
  if (opts.calls !== undefined && Number.isFinite(opts.calls)) n = Math.min(n, Math.max(1, opts.calls));
  if (opts.limit !== undefined) n = Math.min(n, Math.max(1, opts.limit));
  const runner = n <= 0 ? startInline(opts) : startWorkers(opts, n, reportMs);
  const workers = Math.max(n, 1);
  const progress = opts.progress ?? (process.stderr.isTTY ? 'tty' : 'lines');
  const statsFile = opts.statsFile ? new StatsFile(opts.statsFile) : undefined;
  const start = performance.now();
  let lastGen = 0;
  let lastAt = start;
  const rtp = !!opts.rtp && opts.scenario === 'call';
  const tick = (): void => {
    const now = performance.now();
    const snap = mergeSnapshots(runner.latest());
    const cps = ((snap.generated - lastGen) * 1000) / Math.max(1, now - lastAt);
    lastGen = snap.generated;
    lastAt = now;
    const f = figuresOf(snap, (now - start) / 1000, cps, runner.rate());
    statsFile?.add('period', f);
    opts.onProgress?.(f);
    if (progress === 'tty') process.stderr.write(`\r\x1b[2K${progressLine(f, rtp)}`);
    else if (progress === 'lines') process.stderr.write(progressLine(f, rtp) + '\n');
  };
  const timer = setInterval(tick, reportMs);
  const onAbort = (): void => runner.stop();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let stopTimer: NodeJS.Timeout | undefined;
  if (opts.stopAfterMs !== undefined && n > 0) {
    // each worker stops itself stopAfterMs after it started; this is only a safety net (worker
    // start-up on a busy machine can take seconds, which must not eat into the run)
    stopTimer = setTimeout(() => runner.stop(), opts.stopAfterMs + 15_000);
  }
  const snaps = await runner.done;
  clearInterval(timer);
  if (stopTimer) clearTimeout(stopTimer);
  opts.signal?.removeEventListener('abort', onAbort);
  if (progress === 'tty') process.stderr.write('\n');
  const snapshot = mergeSnapshots(snaps);
  snapshot.active = 0;
  const elapsed = (performance.now() - start) / 1000;
  const figures = figuresOf(snapshot, elapsed, snapshot.generated / Math.max(elapsed, 0.001), runner.rate());
  statsFile?.add('final', figures, snapshot.failures);
  const target = `${opts.target.address}:${opts.target.port}`;
  const summary = formatSummary({ scenario: opts.scenario, transport: opts.transport, target, workers, rtp }, figures, snapshot.failures);
  return { figures, failures: snapshot.failures, snapshot, summary, workers };
}
