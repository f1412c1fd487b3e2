/**
 * Which worker of a `tandem start --workers N` node this process is. Call-IDs a worker makes up
 * itself (OPTIONS probes) start with `tdmw<index>.`, so the receiving step steers their answers
 * back to it (signalling/workers/call-id-hash.ts). Empty in a single process.
 */
let prefix = '';

/** Set once by a worker at start. */
export function setWorkerIndex(index: number): void {
  prefix = `tdmw${index}.`;
}

/** Prefix for a Call-ID this process makes up ('' in a single process). */
export function workerCallIdPrefix(): string {
  return prefix;
}
