/**
 * One connection to the Redis primary, from a URL (`redis-url.ts`), that never leaves a caller
 * waiting: every command fails at once while there is no connection and after
 * `commandTimeoutMs` at most otherwise.
 *
 * ioredis is used as a plain protocol client, one client object per TCP connection, with its
 * own reconnect, offline queue, resend and Sentinel logic all off. Reconnecting and following
 * the primary is done here:
 *
 * - A lost connection (close, failed health probe, two command timeouts in a row) is dropped and
 *   a fresh client is made: 0 ms after the loss, then backing off to `maxReconnectDelayMs`.
 * - Sentinel mode (redis.io "Sentinel client spec"): each attempt asks every Sentinel
 *   `SENTINEL MASTER name` in parallel and takes the answer with the highest config-epoch,
 *   skips a primary the Sentinels hold objectively down, and checks `ROLE` on the server reached
 *   (a demoted primary is never written to). With no Sentinel reachable it tries the last
 *   primary it knew, ROLE-checked likewise. A subscription to `+switch-master` on every
 *   Sentinel drops a connection to the old primary and cuts the back-off short, so the client
 *   follows the new primary as soon as one Sentinel announces it.
 *
 * Why not ioredis' own Sentinel mode: with its failover detector it was left stuck for good
 * ("Connection is closed.") after kill -9 of the primary in 2 of 6 runs (6.0.0; a race like
 * ioredis issue #1683, see src/state/redis/README.md). A client that lives for one connection has
 * no reconnect state to race on.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { gauge } from '../../util/metrics.js';
import { safeEmit } from '../../util/safe-emit.js';
import { RedisStateError } from './errors.js';
import { connects, observeCommand as observe, redisErrors } from './metrics.js';
import { parseRedisUrl, type HostPort, type RedisEndpoint } from './redis-url.js';

export type RedisArg = string | number | Buffer;
/** A command as sent: name first, e.g. `['hset', key, field, value]`. */
export type RedisCommand = [name: string, ...args: RedisArg[]];
/** Per-command outcome of a pipeline, in order. */
export type PipelineResult = Array<[error: Error | null, result: unknown]>;

/** A Lua script known to a connection: loaded on every new connection, run with EVALSHA. */
export interface RedisScript {
  /** Metric label. */
  readonly name: string;
  readonly sha: string;
  readonly lua: string;
}

export interface RedisConnectionOptions {
  /**
   * Longest a command (or a pipeline) waits for its reply before it fails.
   * @default 1000
   */
  commandTimeoutMs?: number;
  /**
   * Longest a connection attempt (TCP, handshake, ROLE check, script load, subscribe) may take.
   * @default 1000
   */
  connectTimeoutMs?: number;
  /**
   * Period of the health probe (PING; ROLE in Sentinel mode). A probe that fails or times out
   * drops the connection, which catches a primary that went silent without closing.
   * @default 1000
   */
  probeIntervalMs?: number;
  /**
   * Delay after the second failed connection attempt in a row; it doubles per further failure.
   * The first retry after a loss is immediate.
   * @default 50
   */
  reconnectDelayMs?: number;
  /**
   * Longest delay between connection attempts.
   * @default 500
   */
  maxReconnectDelayMs?: number;
  /**
   * Label for metrics and logs (`commands`, `subscriber`, ...).
   * @default 'commands'
   */
  name?: string;
  /** CLIENT SETNAME on each connection. */
  clientName?: string;
}

export interface RedisConnectionEvents {
  /** Connected to the primary (again); `address` is `host:port`. */
  ready: [address: string];
  /** The connection was lost; commands fail until the next `ready`. */
  down: [reason: string];
  /** A message on a subscribed channel. */
  message: [channel: string, message: string];
}

const log = createLogger('state/redis');

const live = new Set<RedisConnection>();
gauge('tandem_redis_connected', 'Redis connections currently up, by connection', ['connection'], function collect() {
  this.reset();
  for (const c of live) this.inc({ connection: c.name }, c.ready ? 1 : 0);
});

function noop(): void {}

/** Rejects with STATE_ERR_REDIS_TIMEOUT after `ms`; `onTimeout` runs first. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout?.();
      reject(new RedisStateError('STATE_ERR_REDIS_TIMEOUT', `${what}: no reply within ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function isNoScript(err: Error | null): boolean {
  return err !== null && err.message.startsWith('NOSCRIPT');
}

export class RedisConnection extends EventEmitter<RedisConnectionEvents> {
  readonly endpoint: RedisEndpoint;
  readonly name: string;
  #opts: Required<Omit<RedisConnectionOptions, 'clientName' | 'name'>> & { clientName?: string };
  /** The connected client, ready for commands; undefined while down. */
  #client: Redis | undefined;
  #address: string | undefined;
  /** Last server found to be the primary (Sentinel mode): tried when no Sentinel answers. */
  #lastPrimary: HostPort | undefined;
  #connecting = false;
  #closed = false;
  #failedAttempts = 0;
  #wake: (() => void) | undefined;
  #wakePending = false;
  #probeTimer: NodeJS.Timeout;
  #probing = false;
  #timeoutsInRow = 0;
  #subscriptions = new Set<string>();
  #scripts = new Map<string, RedisScript>();
  #watchers: RedisConnection[] = [];

  /** `url` as in redis-url.ts; a bad URL throws STATE_ERR_BAD_REDIS_URL (a start-up error). */
  constructor(url: string | RedisEndpoint, opts: RedisConnectionOptions = {}) {
    super();
    if (typeof url === 'string') {
      const parsed = parseRedisUrl(url);
      if (!parsed.ok) throw new RedisStateError('STATE_ERR_BAD_REDIS_URL', parsed.reason);
      this.endpoint = parsed.value;
    } else {
      this.endpoint = url;
    }
    this.name = opts.name ?? 'commands';
    this.#opts = {
      commandTimeoutMs: opts.commandTimeoutMs ?? 1000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 1000,
      probeIntervalMs: opts.probeIntervalMs ?? 1000,
      reconnectDelayMs: opts.reconnectDelayMs ?? 50,
      maxReconnectDelayMs: opts.maxReconnectDelayMs ?? 500,
      ...(opts.clientName !== undefined ? { clientName: opts.clientName } : {}),
    };
    live.add(this);
    this.#probeTimer = setInterval(() => this.#probe(), this.#opts.probeIntervalMs);
    this.#probeTimer.unref();
    if (this.endpoint.kind === 'sentinel') {
      for (const s of this.endpoint.sentinels) {
        const w = new RedisConnection(
          { kind: 'single', host: s.host, port: s.port, db: 0 },
          { ...this.#opts, name: `${this.name}-sentinel-watch` },
        );
        w.subscribe('+switch-master');
        w.on('message', (_channel, message) => this.#onSwitchMaster(message));
        this.#watchers.push(w);
      }
    }
    void this.#connectLoop();
  }

  /** True while connected to the primary. */
  get ready(): boolean {
    return this.#client !== undefined;
  }

  /** `host:port` of the server connected to, when connected. */
  get address(): string | undefined {
    return this.#address;
  }

  get commandTimeoutMs(): number {
    return this.#opts.commandTimeoutMs;
  }

  /** Registers a Lua script: loaded now (when connected) and on every new connection. */
  defineScript(name: string, lua: string): RedisScript {
    const sha = createHash('sha1').update(lua).digest('hex');
    const script = { name, sha, lua };
    this.#scripts.set(sha, script);
    const client = this.#client;
    if (client) void client.call('SCRIPT', 'LOAD', lua).catch(noop);
    return script;
  }

  /** Subscribes to `channel` now and after every reconnect; messages arrive as `message` events. */
  subscribe(channel: string): void {
    if (this.#subscriptions.has(channel)) return;
    this.#subscriptions.add(channel);
    const client = this.#client;
    if (client) void client.subscribe(channel).catch(() => this.#drop(client, 'subscribe failed'));
  }

  /** Runs one command. Rejects at once when down and after `commandTimeoutMs` at most. */
  async call(command: string, ...args: RedisArg[]): Promise<unknown> {
    const client = this.#requireClient();
    const t0 = performance.now();
    try {
      const result = await this.#timed(client, client.call(command, ...args), command);
      observe(command.toLowerCase(), t0);
      return result;
    } catch (err) {
      this.#countFailure(err);
      throw err;
    }
  }

  /** Runs a registered script (EVALSHA; loads it again if the server forgot it). */
  async evalScript(script: RedisScript, keys: RedisArg[], args: RedisArg[]): Promise<unknown> {
    const client = this.#requireClient();
    const t0 = performance.now();
    try {
      let result: unknown;
      try {
        result = await this.#timed(client, client.call('EVALSHA', script.sha, keys.length, ...keys, ...args), script.name);
      } catch (err) {
        if (!(err instanceof Error) || !isNoScript(err)) throw err;
        result = await this.#timed(client, client.call('EVAL', script.lua, keys.length, ...keys, ...args), script.name);
      }
      observe(script.name, t0);
      return result;
    } catch (err) {
      this.#countFailure(err);
      throw err;
    }
  }

  /**
   * Sends `commands` as one pipeline and returns each one's outcome. Rejects (nothing known to
   * have been applied, or only some) when down, on a lost connection or after the timeout.
   * EVALSHA commands the server does not know are loaded and run again once.
   */
  async exec(commands: RedisCommand[]): Promise<PipelineResult> {
    const client = this.#requireClient();
    const t0 = performance.now();
    try {
      const results = await this.#pipeline(client, commands);
      if (results.some(([err]) => isNoScript(err))) {
        await this.#timed(client, this.#loadScripts(client), 'script load');
        const again = results.map((r, i) => [r, i] as const).filter(([[err]]) => isNoScript(err));
        const retried = await this.#pipeline(client, again.map(([, i]) => commands[i]!));
        again.forEach(([, i], k) => (results[i] = retried[k]!));
      }
      observe('pipeline', t0);
      return results;
    } catch (err) {
      this.#countFailure(err);
      throw err;
    }
  }

  /** Closes the connection for good; commands fail with STATE_ERR_CLOSED after this. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    live.delete(this);
    clearInterval(this.#probeTimer);
    this.#wakeUp();
    const client = this.#client;
    this.#client = undefined;
    this.#address = undefined;
    client?.disconnect();
    await Promise.all(this.#watchers.map((w) => w.close()));
  }

  #requireClient(): Redis {
    const client = this.#client;
    if (client) return client;
    throw new RedisStateError(this.#closed ? 'STATE_ERR_CLOSED' : 'STATE_ERR_REDIS_DOWN', `redis ${this.name}: not connected`);
  }

  async #pipeline(client: Redis, commands: RedisCommand[]): Promise<PipelineResult> {
    const results = await this.#timed(client, client.pipeline(commands as unknown as string[][]).exec(), 'pipeline');
    if (!results) throw new RedisStateError('STATE_ERR_REDIS_DOWN', 'pipeline discarded');
    return results;
  }

  /** A reply within the timeout resets the timeout streak; a second timeout in a row drops the connection. */
  async #timed<T>(client: Redis, p: Promise<T>, what: string): Promise<T> {
    const result = await withTimeout(p, this.#opts.commandTimeoutMs, `redis ${what}`, () => {
      if (++this.#timeoutsInRow >= 2) this.#drop(client, 'command timeouts');
    });
    this.#timeoutsInRow = 0;
    return result;
  }

  #countFailure(err: unknown): void {
    const code = err instanceof RedisStateError ? err.code : undefined;
    if (code === 'STATE_ERR_REDIS_DOWN' || code === 'STATE_ERR_CLOSED') return;
    redisErrors.inc({ kind: code === 'STATE_ERR_REDIS_TIMEOUT' ? 'timeout' : 'command' });
  }

  async #connectLoop(): Promise<void> {
    if (this.#connecting || this.#closed) return;
    this.#connecting = true;
    this.#wakePending = false;
    this.#failedAttempts = 0;
    try {
      while (!this.#closed && !this.#client) {
        if (await this.#attempt()) break;
        this.#failedAttempts++;
        // The first retry is immediate; then reconnectDelayMs doubling up to maxReconnectDelayMs.
        if (this.#failedAttempts > 1) {
          const delay = Math.min(this.#opts.reconnectDelayMs * 2 ** Math.min(this.#failedAttempts - 2, 16), this.#opts.maxReconnectDelayMs);
          await this.#sleep(delay);
        }
      }
    } finally {
      this.#connecting = false;
    }
  }

  #sleep(ms: number): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  #wakeUp(): void {
    if (this.#wake) this.#wake();
    else this.#wakePending = true;
  }

  async #attempt(): Promise<boolean> {
    const ep = this.endpoint;
    let target: HostPort | undefined;
    if (ep.kind === 'single') target = { host: ep.host, port: ep.port };
    else target = await this.#resolvePrimary(ep.sentinels, ep.masterName);
    if (!target || this.#closed) return false;
    const client = new Redis({
      host: target.host,
      port: target.port,
      db: ep.db,
      ...(ep.username !== undefined ? { username: ep.username } : {}),
      ...(ep.password !== undefined ? { password: ep.password } : {}),
      ...(this.#opts.clientName !== undefined ? { connectionName: this.#opts.clientName } : {}),
      lazyConnect: true,
      retryStrategy: () => null,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      enableReadyCheck: true,
      connectTimeout: this.#opts.connectTimeoutMs,
      protocol: 2,
      disableClientInfo: true,
    });
    client.on('error', noop);
    client.on('message', (channel: string, message: string) => {
      if (client === this.#client) safeEmit(this, 'message', channel, message);
    });
    const address = `${target.host}:${target.port}`;
    try {
      await withTimeout(
        (async () => {
          await client.connect();
          if (ep.kind === 'sentinel') {
            const role = await client.call('ROLE');
            if (!Array.isArray(role) || role[0] !== 'master') throw new RedisStateError('STATE_ERR_NOT_PRIMARY', `${address} is not the primary (${String(Array.isArray(role) ? role[0] : role)})`);
          }
          await this.#loadScripts(client);
          if (this.#subscriptions.size) await client.subscribe(...this.#subscriptions);
        })(),
        this.#opts.connectTimeoutMs,
        `connect to ${address}`,
      );
    } catch (err) {
      client.disconnect();
      redisErrors.inc({ kind: err instanceof RedisStateError && err.code === 'STATE_ERR_NOT_PRIMARY' ? 'not-primary' : 'connect' });
      rateLimitedLog(`redis-connect:${this.name}`, (suppressed) =>
        log.warn({ connection: this.name, address, err: String(err), suppressed }, 'redis connection attempt failed'),
      );
      return false;
    }
    if (this.#closed || client.status !== 'ready') {
      client.disconnect();
      return false;
    }
    client.once('close', () => this.#onClose(client));
    this.#client = client;
    this.#address = address;
    this.#lastPrimary = target;
    this.#timeoutsInRow = 0;
    connects.inc({ connection: this.name });
    log.info({ connection: this.name, address }, 'redis connected');
    safeEmit(this, 'ready', address);
    return true;
  }

  async #loadScripts(client: Redis): Promise<void> {
    for (const s of this.#scripts.values()) await client.call('SCRIPT', 'LOAD', s.lua);
  }

  /**
   * Asks every Sentinel in parallel; the answer with the highest config-epoch wins (a Sentinel
   * that has not heard of a failover yet names the old primary under an older epoch).
   */
  async #resolvePrimary(sentinels: HostPort[], masterName: string): Promise<HostPort | undefined> {
    const answers = await Promise.all(sentinels.map((s) => this.#askSentinel(s, masterName)));
    let best: { host: string; port: number; epoch: number; down: boolean } | undefined;
    for (const a of answers) if (a && (!best || a.epoch > best.epoch)) best = a;
    if (!best) {
      redisErrors.inc({ kind: 'no-primary' });
      // No Sentinel reachable: the last primary is still worth a try (ROLE is checked on it).
      return this.#lastPrimary;
    }
    // The Sentinels agree it is down: a failover is under way, wait for the switch.
    if (best.down) return undefined;
    return { host: best.host, port: best.port };
  }

  async #askSentinel(s: HostPort, masterName: string): Promise<{ host: string; port: number; epoch: number; down: boolean } | undefined> {
    const client = new Redis({
      host: s.host,
      port: s.port,
      lazyConnect: true,
      retryStrategy: () => null,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
      connectTimeout: this.#opts.connectTimeoutMs,
      protocol: 2,
      disableClientInfo: true,
    });
    client.on('error', noop);
    try {
      const reply = await withTimeout(
        (async () => {
          await client.connect();
          return client.call('SENTINEL', 'MASTER', masterName);
        })(),
        this.#opts.connectTimeoutMs,
        `sentinel ${s.host}:${s.port}`,
      );
      if (!Array.isArray(reply)) return undefined;
      const fields = new Map<string, string>();
      for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), String(reply[i + 1]));
      const host = fields.get('ip');
      const port = Number(fields.get('port'));
      if (!host || !Number.isInteger(port)) return undefined;
      const flags = (fields.get('flags') ?? '').split(',');
      return { host, port, epoch: Number(fields.get('config-epoch') ?? 0), down: flags.includes('o_down') };
    } catch {
      return undefined;
    } finally {
      client.disconnect();
    }
  }

  /** `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>` from a Sentinel. */
  #onSwitchMaster(message: string): void {
    if (this.endpoint.kind !== 'sentinel') return;
    const parts = message.split(' ');
    if (parts.length !== 5 || parts[0] !== this.endpoint.masterName) return;
    const announced = `${parts[3]}:${parts[4]}`;
    const client = this.#client;
    if (client && this.#address === announced) return;
    if (client) this.#drop(client, 'switch-master');
    else this.#wakeUp();
  }

  #probe(): void {
    const client = this.#client;
    if (!client || this.#probing) return;
    this.#probing = true;
    // ROLE is not allowed on a RESP2 subscriber connection; PING is.
    const checkRole = this.endpoint.kind === 'sentinel' && this.#subscriptions.size === 0;
    withTimeout(client.call(checkRole ? 'ROLE' : 'PING'), this.#opts.commandTimeoutMs, 'probe')
      .then((reply) => {
        if (checkRole && (!Array.isArray(reply) || reply[0] !== 'master')) {
          redisErrors.inc({ kind: 'not-primary' });
          this.#drop(client, 'no longer the primary');
        }
      })
      .catch(() => {
        redisErrors.inc({ kind: 'probe' });
        this.#drop(client, 'probe failed');
      })
      .finally(() => (this.#probing = false));
  }

  #onClose(client: Redis): void {
    if (client !== this.#client) return;
    redisErrors.inc({ kind: 'lost' });
    this.#lost('connection closed');
  }

  /** Drops a connection that is no good and starts reconnecting. */
  #drop(client: Redis, reason: string): void {
    const wasCurrent = client === this.#client;
    client.disconnect();
    if (wasCurrent) this.#lost(reason);
    this.#wakeUp();
  }

  #lost(reason: string): void {
    this.#client = undefined;
    this.#address = undefined;
    if (this.#closed) return;
    log.warn({ connection: this.name, reason }, 'redis connection lost');
    safeEmit(this, 'down', reason);
    void this.#connectLoop();
  }
}
