/**
 * How many background threads V8 gets for garbage collection (Node's `--v8-pool-size`).
 *
 * Node starts 4 by default whatever the machine. A signalling node's live heap is mostly the
 * 64*T1 (32 s) of completed transactions, so every major collection marks ~150 MB at 1,000
 * calls/s, and the marking and parallel scavenging run on those threads. On a machine whose
 * cores are already busy (worker processes, a co-located generator or media relay) the helpers
 * preempt the event loop that owns the heap: measured on 2 cores under SIPp at 1,000 calls/s,
 * p99 response 16 ms with 4 helpers against 4 ms with 1 (docs/benchmarks.md). The parallelism
 * of a signalling node comes from its worker processes, so each gets the cores the others leave.
 *
 * The pool size is fixed when Node starts: forked workers get it on their command line; a single
 * process must be started with it (scripts/start.sh and the lab do; `poolSizeOf` tells whether).
 */

/** Node's default `--v8-pool-size`. */
export const NODE_DEFAULT_POOL_SIZE = 4;

/** Helper threads per process: the cores one process can count on, less its own event loop; 1 to 4. */
export function gcThreadsFor(cores: number, processes: number): number {
  const perProcess = Math.floor(Math.max(1, cores) / Math.max(1, processes));
  return Math.min(NODE_DEFAULT_POOL_SIZE, Math.max(1, perProcess - 1));
}

const POOL_FLAG = /^--v8[-_]pool[-_]size(?:=(\d+))?$/;

/** The pool size this process was started with (command line, then NODE_OPTIONS), else Node's default. */
export function poolSizeOf(execArgv: readonly string[], nodeOptions: string | undefined): number {
  for (const args of [execArgv, (nodeOptions ?? '').split(/\s+/)]) {
    for (let i = 0; i < args.length; i++) {
      const m = POOL_FLAG.exec(args[i]!);
      if (!m) continue;
      const v = Number(m[1] ?? args[i + 1]);
      if (Number.isInteger(v) && v >= 0) return v === 0 ? NODE_DEFAULT_POOL_SIZE : v;
    }
  }
  return NODE_DEFAULT_POOL_SIZE;
}

/** `execArgv` with its pool size replaced by `threads` (for a child process). */
export function withPoolSize(execArgv: readonly string[], threads: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (POOL_FLAG.test(a)) {
      if (!a.includes('=')) i++; // `--v8-pool-size N`: drop its value too
      continue;
    }
    out.push(a);
  }
  out.push(`--v8-pool-size=${threads}`);
  return out;
}
