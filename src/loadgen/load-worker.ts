/**
 * Worker-thread entry of `runLoad`: one UacEngine per thread, its cumulative figures posted to
 * the main thread every report interval and once at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UacEngine, type UacEngineOptions } from './uac.js';
import type { LoadSnapshot } from './stats.js';

export interface WorkerInit {
  engine: UacEngineOptions;
  reportMs: number;
}

export type WorkerMessage =
  | { type: 'started'; local: { address: string; port: number } | undefined }
  | { type: 'stats'; snapshot: LoadSnapshot; rate: number }
  | { type: 'done'; snapshot: LoadSnapshot }
  | { type: 'error'; message: string };

const port = parentPort;
if (port) {
  const init = workerData as WorkerInit;
  const engine = new UacEngine(init.engine);
  port.on('message', (m: { type: string }) => {
    if (m?.type === 'stop') engine.stop();
  });
  const timer = setInterval(() => {
    port.postMessage({ type: 'stats', snapshot: engine.snapshot(), rate: engine.currentRate } satisfies WorkerMessage);
  }, init.reportMs);
  engine
    .run()
    .then((snapshot) => port.postMessage({ type: 'done', snapshot } satisfies WorkerMessage))
    .catch((err: unknown) => port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) } satisfies WorkerMessage))
    .finally(() => {
      clearInterval(timer);
      port.close();
    });
}
