import { Worker } from 'node:worker_threads';

/**
 * Starts a worker thread on a sibling module of this folder (`name` without extension). When
 * running from TypeScript sources (tsx), the worker registers the same loader before importing.
 */
export function spawnWorker(name: string, workerData: unknown): Worker {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    const workerUrl = new URL(`./${name}.ts`, self).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl)}); }).catch((e) => { console.error(e); process.exit(1); });`;
    return new Worker(code, { eval: true, workerData });
  }
  return new Worker(new URL(`./${name}.js`, self), { workerData });
}
