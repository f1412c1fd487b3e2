/**
 * What the Redis stores of one node share: the command connection, the subscriber connection
 * (cache invalidation), the outbox (every write), the key space and record versions.
 *
 * Cache coherence: a node that changes a record publishes `kind\nnode\nversion\nid` on
 * `tandem:<cluster>:inv` (from inside the write's Lua script, so only writes Redis applied are
 * announced); every other node drops its cached copy. A node caches what it reads only while
 * its subscriber connection is up. After the subscriber was down (messages may have been missed)
 * or Redis lost its data (restart without persistence), the stores resync once the outbox has
 * drained: each cached record's version is checked against Redis and dropped when it differs;
 * after data loss the node writes back the records it owns.
 */
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../util/logger.js';
import { Outbox, type OutboxOptions } from './outbox.js';
import { RedisConnection, type RedisConnectionOptions, type RedisScript } from './redis-connection.js';

export interface RedisStateOptions {
  /** `redis://host:port[/db]` or `redis-sentinel://h1:p1,h2:p2/mastername` (redis-url.ts). */
  url: string;
  /** This node's name: the owner recorded in every record it writes. No newline. */
  nodeId: string;
  /**
   * Cluster name: every key is `tandem:<cluster>:...`, so several clusters may share a Redis.
   * @default 'default'
   */
  cluster?: string;
  /** Timeouts and reconnect pacing of both connections. */
  connection?: Omit<RedisConnectionOptions, 'name'>;
  /** Outbox bound and batching. */
  outbox?: OutboxOptions;
  /**
   * Pause before a failed resync is tried again.
   * @default 1000
   */
  resyncRetryMs?: number;
  /** Clock for record versions (ms); tests skew it. @default Date.now */
  now?: () => number;
}

/** Another node changed record `id` of a kind to `version` (0 when the message has none). */
export type InvalidationHandler = (id: string, fromNode: string, version: number) => void;

/** `redisLost`: Redis came back without its data; owners write their records back. */
export type ResyncHandler = (redisLost: boolean) => Promise<void>;

const log = createLogger('state/redis');

/** Lifetime of the marker key that tells a restarted, emptied Redis from the same one. */
const MARKER_TTL_MS = 7 * 24 * 3600 * 1000;

export class RedisState {
  readonly nodeId: string;
  readonly cluster: string;
  readonly commands: RedisConnection;
  readonly subscriber: RedisConnection;
  readonly outbox: Outbox;
  /** Invalidation channel. */
  readonly channel: string;
  #handlers = new Map<string, Array<InvalidationHandler>>();
  #resyncHandlers: ResyncHandler[] = [];
  #lastVersion = 0;
  #marker: string | undefined;
  /**
   * The marker was checked on the current command connection. A resync waits for it: run before,
   * a resync would take records missing from an emptied Redis for records deleted by a peer and
   * drop the ones this node owns instead of writing them back (seen under load: a subscriber that
   * reconnected a few ms before the command connection started its resync first).
   */
  #markerChecked = false;
  /** Ends a resync's wait early (the marker check it waits for is done). */
  #wakeResync: (() => void) | undefined;
  #subscriberWasDown = false;
  #resyncPending = false;
  #redisLost = false;
  #resyncRunning = false;
  #resyncTimer: NodeJS.Timeout | undefined;
  #markerRetry: NodeJS.Timeout | undefined;
  #resyncRetryMs: number;
  #now: () => number;
  #closed = false;
  /** Completed resyncs, for tests and the admin API. */
  resyncs = 0;

  constructor(opts: RedisStateOptions) {
    if (!opts.nodeId || /[\n\r]/.test(opts.nodeId)) throw new TypeError('nodeId must be a non-empty name without line breaks');
    this.nodeId = opts.nodeId;
    this.cluster = opts.cluster ?? 'default';
    this.channel = `tandem:${this.cluster}:inv`;
    this.#resyncRetryMs = opts.resyncRetryMs ?? 1000;
    this.#now = opts.now ?? Date.now;
    const clientName = `tandem-${this.nodeId}`.replace(/[^\x21-\x7e]/g, '_');
    this.commands = new RedisConnection(opts.url, { ...opts.connection, name: 'commands', clientName });
    this.subscriber = new RedisConnection(opts.url, { ...opts.connection, name: 'subscriber', clientName });
    this.outbox = new Outbox(this.commands, opts.outbox);
    this.subscriber.subscribe(this.channel);
    this.subscriber.on('message', (channel, message) => {
      if (channel === this.channel) this.#onMessage(message);
    });
    this.subscriber.on('down', () => (this.#subscriberWasDown = true));
    this.subscriber.on('ready', () => {
      if (!this.#subscriberWasDown) return;
      this.#subscriberWasDown = false;
      this.#requestResync(false);
    });
    this.commands.on('down', () => (this.#markerChecked = false));
    this.commands.on('ready', () => {
      this.#markerChecked = false;
      this.outbox.kick();
      void this.#checkMarker();
    });
  }

  /** Key of a record: `tandem:<cluster>:<kind>:<id>`. */
  key(kind: string, id: string): string {
    return `tandem:${this.cluster}:${kind}:${id}`;
  }

  /** A version for a record written now: ms since the epoch, strictly growing on this node. */
  nextVersion(): number {
    const now = this.#now();
    this.#lastVersion = now > this.#lastVersion ? now : this.#lastVersion + 1;
    return this.#lastVersion;
  }

  /** True when what is read from Redis may be cached (invalidations are being received). */
  get coherent(): boolean {
    return this.subscriber.ready;
  }

  /** Invalidation message for version `version` of record `id` of `kind`. */
  message(kind: string, id: string, version = 0): string {
    return `${kind}\n${this.nodeId}\n${version}\n${id}`;
  }

  /** Sends an invalidation outside a record write (through the outbox). */
  publish(kind: string, id: string, version = 0): void {
    this.outbox.push({ commands: [['publish', this.channel, this.message(kind, id, version)]] });
  }

  /** Calls `handler` when another node changed a record of `kind`. */
  onInvalidate(kind: string, handler: InvalidationHandler): void {
    let list = this.#handlers.get(kind);
    if (!list) {
      list = [];
      this.#handlers.set(kind, list);
    }
    list.push(handler);
  }

  onResync(handler: ResyncHandler): void {
    this.#resyncHandlers.push(handler);
  }

  script(name: string, lua: string): RedisScript {
    return this.commands.defineScript(name, lua);
  }

  /** Drains the outbox (up to `drainTimeoutMs`), then closes both connections. */
  async close(drainTimeoutMs = 1000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#resyncTimer);
    clearTimeout(this.#markerRetry);
    const left = await this.outbox.close(drainTimeoutMs);
    if (left > 0) log.warn({ left }, 'redis state closed with writes not applied');
    await Promise.all([this.commands.close(), this.subscriber.close()]);
  }

  #onMessage(message: string): void {
    const a = message.indexOf('\n');
    const b = a < 0 ? -1 : message.indexOf('\n', a + 1);
    const c = b < 0 ? -1 : message.indexOf('\n', b + 1);
    if (c < 0) return;
    const from = message.slice(a + 1, b);
    if (from === this.nodeId) return;
    const list = this.#handlers.get(message.slice(0, a));
    if (!list) return;
    const version = Number(message.slice(b + 1, c)) || 0;
    const id = message.slice(c + 1);
    for (const h of list) {
      try {
        h(id, from, version);
      } catch (err) {
        log.error({ err }, 'invalidation handler threw');
      }
    }
  }

  /**
   * The marker a Redis holds names its data set (`SET marker uuid NX`, then GET); a different one
   * after a reconnect means Redis came back empty (restart without persistence), and what this
   * node owns must be written back.
   */
  async #checkMarker(): Promise<void> {
    try {
      const key = `tandem:${this.cluster}:redis-instance`;
      const fresh: string = randomUUID();
      const created = (await this.commands.call('SET', key, fresh, 'NX', 'PX', MARKER_TTL_MS)) === 'OK';
      let current: string = fresh;
      if (!created) {
        current = String(await this.commands.call('GET', key));
        await this.commands.call('PEXPIRE', key, MARKER_TTL_MS);
      }
      const before = this.#marker;
      this.#marker = current;
      this.#markerChecked = true;
      if (before !== undefined && before !== current) {
        log.warn({ before, now: current }, 'redis came back without its data: writing owned records back');
        this.#requestResync(true);
      }
      this.#wakeResync?.();
    } catch (err) {
      // A command timed out or failed on a busy server: checked again soon while the connection
      // stays up (a missed check would leave an emptied Redis without this node's records); the
      // next `ready` checks anyway.
      log.warn({ err: String(err) }, 'redis instance check failed; trying again');
      clearTimeout(this.#markerRetry);
      this.#markerRetry = setTimeout(() => {
        if (!this.#closed && this.commands.ready) void this.#checkMarker();
      }, this.#resyncRetryMs);
    }
  }

  #requestResync(redisLost: boolean): void {
    if (redisLost) this.#redisLost = true;
    this.#resyncPending = true;
    void this.#runResync();
  }

  async #runResync(): Promise<void> {
    if (this.#resyncRunning || this.#closed) return;
    this.#resyncRunning = true;
    try {
      while (this.#resyncPending && !this.#closed) {
        // Own writes first: a record's version in Redis is then the one the cache expects.
        await this.outbox.idle();
        if (!this.commands.ready || !this.subscriber.ready || !this.#markerChecked) {
          await new Promise<void>((r) => {
            this.#wakeResync = r;
            this.#resyncTimer = setTimeout(r, this.#resyncRetryMs);
          });
          this.#wakeResync = undefined;
          continue;
        }
        this.#resyncPending = false;
        const lost = this.#redisLost;
        this.#redisLost = false;
        try {
          for (const h of this.#resyncHandlers) await h(lost);
          this.resyncs++;
        } catch (err) {
          log.warn({ err: String(err) }, 'state resync failed; trying again');
          this.#resyncPending = true;
          if (lost) this.#redisLost = true;
          await new Promise((r) => (this.#resyncTimer = setTimeout(r, this.#resyncRetryMs)));
        }
      }
    } finally {
      this.#resyncRunning = false;
    }
  }
}
