import type { NodeInfo, NodeRegistry } from '../store.js';

/** Heartbeats shared by the MemoryNodeRegistry instances given the same table (one process). */
export type MemoryNodeTable = Map<string, { info: NodeInfo; lapsesAtMs: number }>;

export interface MemoryNodeRegistryOptions {
  nodeId: string;
  /** @default 1000 */
  intervalMs?: number;
  /** @default 3000 */
  ttlMs?: number;
  meta?: Record<string, string>;
  /** Share one table between registries to model several nodes in one process. */
  table?: MemoryNodeTable;
  now?: () => number;
}

/** Node liveness for one process: lists the nodes heartbeating into its table (by default itself). */
export class MemoryNodeRegistry implements NodeRegistry {
  readonly nodeId: string;
  #table: MemoryNodeTable;
  #intervalMs: number;
  #ttlMs: number;
  #meta: Record<string, string>;
  #now: () => number;
  #startedAtMs: number;
  #version = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: MemoryNodeRegistryOptions) {
    this.nodeId = opts.nodeId;
    this.#table = opts.table ?? new Map();
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#ttlMs = opts.ttlMs ?? 3000;
    this.#meta = { ...(opts.meta ?? {}) };
    this.#now = opts.now ?? Date.now;
    this.#startedAtMs = this.#now();
  }

  start(): void {
    if (this.#timer || this.#closed) return;
    void this.heartbeat();
    this.#timer = setInterval(() => void this.heartbeat(), this.#intervalMs);
    this.#timer.unref();
  }

  async heartbeat(): Promise<boolean> {
    if (this.#closed) return false;
    const now = this.#now();
    this.#table.set(this.nodeId, {
      info: { nodeId: this.nodeId, startedAtMs: this.#startedAtMs, heartbeatAtMs: now, version: ++this.#version, meta: { ...this.#meta } },
      lapsesAtMs: now + this.#ttlMs,
    });
    return true;
  }

  async liveNodes(): Promise<NodeInfo[]> {
    const now = this.#now();
    const out: NodeInfo[] = [];
    for (const [id, e] of this.#table) {
      if (e.lapsesAtMs > now) out.push({ ...e.info, meta: { ...e.info.meta } });
      else this.#table.delete(id);
    }
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#table.delete(this.nodeId);
  }
}
