/**
 * The write path to Redis: callers hand a write to `push()` and go on at once; the outbox sends
 * waiting writes as pipelines (up to `batchSize` per round trip), keeps them while Redis is
 * unreachable and sends them again when it returns.
 *
 * Guarantees:
 * - A write is removed only when Redis answered it. A pipeline that fails (connection lost,
 *   timeout) is sent again whole, so writes must be idempotent: the stores write whole records
 *   under a version (an older version never overwrites a newer one) and name events by id.
 * - A write whose `key` matches a write still waiting replaces it in place (whole-record writes:
 *   only the newest matters), so an outage costs one entry per record changed, not per change.
 * - The bound (`maxEntries`, waiting + in flight): past it the oldest waiting write is dropped,
 *   and counted in `tandem_redis_outbox_dropped_total`. Below it nothing accepted is lost.
 * - Order: writes are sent in the order accepted, except that a write replaced in place keeps
 *   its first position and a failed pipeline goes back to the front.
 */
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { gauge } from '../../util/metrics.js';
import { outboxApplied, outboxDropped, redisErrors } from './metrics.js';
import type { PipelineResult, RedisCommand } from './redis-connection.js';

/** One write: commands applied in order, in the same pipeline. */
export interface OutboxOp {
  commands: RedisCommand[];
  /** Whole-record key: a later write with the same key replaces this one while both wait. */
  key?: string;
  /** Called with the commands' outcomes once Redis answered them (not for a dropped or replaced write). */
  onApplied?: (results: PipelineResult) => void;
}

/** Where the outbox sends (a RedisConnection). */
export interface OutboxSink {
  readonly ready: boolean;
  exec(commands: RedisCommand[]): Promise<PipelineResult>;
}

export interface OutboxOptions {
  /**
   * Most writes held, waiting and in flight together. Past it the oldest waiting write is
   * dropped and counted. At about 0.5 KB a write (a binding set or a dialog) the default holds
   * ~50 MB at most.
   * @default 100000
   */
  maxEntries?: number;
  /**
   * Writes per pipeline (one round trip). Capped at `maxEntries`.
   * @default 256
   */
  batchSize?: number;
  /**
   * Pause after a failed pipeline, and between checks while the sink is down; `kick()` ends it
   * early (the owner kicks when the connection is back).
   * @default 100
   */
  retryDelayMs?: number;
  /**
   * How long a write waits for others to share its pipeline. A round trip costs the node far more
   * CPU than the commands in it (~170 µs for one small pipeline through ioredis on loopback, ~25 µs
   * a write in a full one), so under load a few milliseconds of waiting make replication cheap;
   * nothing waits for it (writes are fire and forget). 0 sends after the current synchronous run.
   * @default 5
   */
  flushDelayMs?: number;
  /**
   * Metric label.
   * @default 'state'
   */
  name?: string;
}

const log = createLogger('state/outbox');

const live = new Set<Outbox>();
gauge('tandem_redis_outbox_depth', 'Writes waiting in or in flight from the Redis outbox', ['outbox'], function collect() {
  this.reset();
  for (const o of live) this.inc({ outbox: o.name }, o.depth);
});

/** Error replies worth sending again: the server is busy, loading, a replica, or forgot a script. */
const TRANSIENT = /^(READONLY|LOADING|MASTERDOWN|NOSCRIPT|BUSY|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS|MISCONF|NOTREADY)\b/;

function isTransient(err: Error): boolean {
  // Anything but an error reply from the server (a lost connection mid-pipeline) is transient.
  return err.name !== 'ReplyError' || TRANSIENT.test(err.message);
}

export class Outbox {
  readonly name: string;
  #sink: OutboxSink;
  #max: number;
  #batchSize: number;
  #retryDelayMs: number;
  #flushDelayMs: number;
  /** Waiting writes in send order; the key is the write's `key`, or a number for a keyless one. */
  #queue = new Map<string | number, OutboxOp>();
  #seq = 0;
  #inflight = 0;
  #draining = false;
  #scheduled = false;
  /** No new writes. */
  #closed = false;
  /** No more sending. */
  #stopped = false;
  #wake: (() => void) | undefined;
  #idleWaiters: Array<() => void> = [];
  #dropped: ReturnType<typeof outboxDropped.labels>;
  #applied: ReturnType<typeof outboxApplied.labels>;
  /** Counters since creation, for tests and the admin API. */
  readonly stats = { accepted: 0, replaced: 0, applied: 0, dropped: 0, rejected: 0, failedBatches: 0 };

  constructor(sink: OutboxSink, opts: OutboxOptions = {}) {
    this.#sink = sink;
    this.name = opts.name ?? 'state';
    this.#max = Math.max(1, opts.maxEntries ?? 100_000);
    this.#batchSize = Math.max(1, Math.min(opts.batchSize ?? 256, this.#max));
    this.#retryDelayMs = opts.retryDelayMs ?? 100;
    this.#flushDelayMs = opts.flushDelayMs ?? 5;
    this.#dropped = outboxDropped.labels(this.name);
    this.#applied = outboxApplied.labels(this.name);
    live.add(this);
  }

  /** Writes waiting and in flight. */
  get depth(): number {
    return this.#queue.size + this.#inflight;
  }

  get maxEntries(): number {
    return this.#max;
  }

  /** Accepts a write; never blocks or throws. False only after close(). */
  push(op: OutboxOp): boolean {
    if (this.#closed) return false;
    this.stats.accepted++;
    if (op.key !== undefined && this.#queue.has(op.key)) {
      // Map.set on a present key keeps its position: the newer record takes the older one's place.
      this.#queue.set(op.key, op);
      this.stats.replaced++;
      return true;
    }
    if (this.depth >= this.#max && !this.#dropOldest()) {
      // Everything held is in flight (batchSize == maxEntries): the new write is the one dropped.
      this.#countDrop(1);
      return true;
    }
    this.#queue.set(op.key ?? this.#seq++, op);
    this.#schedule();
    return true;
  }

  /** Starts sending after the current synchronous run, so writes pushed together share a pipeline. */
  #schedule(): void {
    if (this.#draining || this.#scheduled) return;
    this.#scheduled = true;
    if (this.#flushDelayMs > 0) {
      setTimeout(this.#flush, this.#flushDelayMs).unref();
      return;
    }
    queueMicrotask(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    void this.#drain();
  };

  /** Try now: the sink is (probably) back. */
  kick(): void {
    if (this.#wake) this.#wake();
    else if (this.#queue.size) this.#schedule();
  }

  /** Resolves when no write waits or is in flight. */
  idle(): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops accepting writes, waits up to `drainTimeoutMs` for the held ones to be applied, then
   * stops. Resolves with the number of writes not applied.
   */
  async close(drainTimeoutMs = 1000): Promise<number> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.depth > 0 && drainTimeoutMs > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, drainTimeoutMs)))]);
        clearTimeout(timer);
      }
      this.#stopped = true;
      live.delete(this);
      this.#wake?.();
    }
    const left = this.depth;
    this.#queue.clear();
    this.#inflight = 0;
    this.#resolveIdle();
    return left;
  }

  #dropOldest(): boolean {
    const first = this.#queue.keys().next();
    if (first.done) return false;
    this.#queue.delete(first.value);
    this.#countDrop(1);
    return true;
  }

  #countDrop(n: number): void {
    this.stats.dropped += n;
    this.#dropped.inc(n);
    rateLimitedLog(`outbox-full:${this.name}`, (suppressed) =>
      log.warn({ outbox: this.name, maxEntries: this.#max, suppressed }, 'redis outbox full: dropped the oldest write'),
    );
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.size > 0 && !this.#stopped) {
        if (!this.#sink.ready) {
          await this.#sleep(this.#retryDelayMs);
          continue;
        }
        const batch: Array<[string | number, OutboxOp]> = [];
        for (const entry of this.#queue) {
          batch.push(entry);
          if (batch.length >= this.#batchSize) break;
        }
        for (const [k] of batch) this.#queue.delete(k);
        this.#inflight = batch.length;
        const commands: RedisCommand[] = [];
        for (const [, op] of batch) for (const c of op.commands) commands.push(c);
        let results: PipelineResult;
        try {
          results = await this.#sink.exec(commands);
        } catch {
          this.#inflight = 0;
          this.stats.failedBatches++;
          this.#requeue(batch);
          await this.#sleep(this.#retryDelayMs);
          continue;
        }
        this.#inflight = 0;
        const retry = this.#settle(batch, results);
        if (retry.length) {
          this.#requeue(retry);
          await this.#sleep(this.#retryDelayMs);
        }
      }
    } finally {
      this.#draining = false;
      if (this.depth === 0) this.#resolveIdle();
    }
  }

  #resolveIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Hands results to their writes; returns the writes to send again. */
  #settle(batch: Array<[string | number, OutboxOp]>, results: PipelineResult): Array<[string | number, OutboxOp]> {
    const retry: Array<[string | number, OutboxOp]> = [];
    let at = 0;
    for (const entry of batch) {
      const op = entry[1];
      const mine = results.slice(at, at + op.commands.length);
      at += op.commands.length;
      if (mine.some(([err]) => err !== null && isTransient(err))) {
        retry.push(entry);
        continue;
      }
      const refused = mine.find(([err]) => err !== null);
      if (refused) {
        this.stats.rejected++;
        redisErrors.inc({ kind: 'write-rejected' });
        rateLimitedLog(`outbox-rejected:${this.name}`, (suppressed) =>
          log.error({ outbox: this.name, err: String(refused[0]), command: op.commands[0]?.[0], suppressed }, 'redis refused a write; dropped'),
        );
      } else {
        this.stats.applied++;
        this.#applied.inc();
      }
      try {
        op.onApplied?.(mine);
      } catch (err) {
        log.error({ err }, 'outbox onApplied listener threw');
      }
    }
    return retry;
  }

  /** Puts writes back at the front, in order, unless a newer write for the same key waits. */
  #requeue(entries: Array<[string | number, OutboxOp]>): void {
    if (this.#stopped) return;
    const next = new Map<string | number, OutboxOp>();
    for (const [k, op] of entries) if (!this.#queue.has(k)) next.set(k, op);
    for (const [k, op] of this.#queue) next.set(k, op);
    this.#queue = next;
    while (this.#queue.size > this.#max) this.#dropOldest();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.#wake = done;
    });
  }
}
