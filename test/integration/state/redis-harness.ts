/**
 * Real redis-server and Sentinel processes for the state integration tests, each on a free
 * loopback port in its own temp directory. The harness talks to them over its own minimal RESP
 * client, so the figures it takes do not depend on the client under test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type RespValue = string | number | null | RespError | RespValue[];

export class RespError extends Error {}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Parses one RESP2 value at `at`; undefined when the buffer holds no complete value yet. */
function parseResp(buf: Buffer, at: number): { value: RespValue; next: number } | undefined {
  if (at >= buf.length) return undefined;
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('latin1', at + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RespError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: RespValue[] = [];
      let pos = after;
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)}`);
  }
}

function encode(args: Array<string | number>): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/** Sends one command on a fresh connection and returns the reply (rejects on timeout or refusal). */
export async function respCommand(port: number, args: Array<string | number>, timeoutMs = 1000): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`timeout: ${args.join(' ')} on ${port}`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(encode(args)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (!r) return;
      clearTimeout(timer);
      sock.destroy();
      resolve(r.value);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A subscription on its own connection: `onMessage(channel, message)` for every message. */
export function respSubscribe(port: number, channels: string[], onMessage: (channel: string, message: string) => void): { close(): void; ready: Promise<void> } {
  const sock: Socket = createConnection({ host: '127.0.0.1', port });
  let buf = Buffer.alloc(0);
  let confirmed = 0;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    sock.once('error', reject);
  });
  sock.on('connect', () => sock.write(encode(['SUBSCRIBE', ...channels])));
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    let pos = 0;
    for (;;) {
      const r = parseResp(buf, pos);
      if (!r) break;
      pos = r.next;
      const v = r.value;
      if (Array.isArray(v) && v[0] === 'message') onMessage(String(v[1]), String(v[2]));
      else if (Array.isArray(v) && v[0] === 'subscribe' && ++confirmed === channels.length) markReady();
    }
    buf = buf.subarray(pos);
  });
  sock.on('error', () => undefined);
  return { close: () => sock.destroy(), ready };
}

/** INFO section as a map. */
export async function info(port: number, section: string): Promise<Map<string, string>> {
  const text = await respCommand(port, ['INFO', section]);
  const out = new Map<string, string>();
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function pairsToMap(v: RespValue): Map<string, string> {
  const m = new Map<string, string>();
  if (Array.isArray(v)) for (let i = 0; i + 1 < v.length; i += 2) m.set(String(v[i]), String(v[i + 1]));
  return m;
}

export interface RedisProcessOptions {
  port: number;
  dir: string;
  /** Port of the primary to replicate (127.0.0.1). */
  replicaOf?: number;
  /** appendonly + appendfsync always: acknowledged writes survive kill -9. */
  durable?: boolean;
}

/** One redis-server process. */
export class RedisProcess {
  readonly port: number;
  #proc: ChildProcess;
  #exited: Promise<void>;

  private constructor(port: number, proc: ChildProcess) {
    this.port = port;
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  static async start(opts: RedisProcessOptions): Promise<RedisProcess> {
    const args = [
      '--port', String(opts.port), '--bind', '127.0.0.1', '--dir', opts.dir, '--daemonize', 'no',
      '--protected-mode', 'no', '--save', '', '--logfile', join(opts.dir, `redis-${opts.port}.log`),
      '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', '--repl-ping-replica-period', '1',
      '--appendonly', opts.durable ? 'yes' : 'no', '--appendfilename', `aof-${opts.port}.aof`, '--appenddirname', `aof-${opts.port}`,
      '--appendfsync', 'always',
    ];
    if (opts.replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(opts.replicaOf));
    const proc = spawn('redis-server', args, { stdio: 'ignore' });
    const rp = new RedisProcess(opts.port, proc);
    await waitFor(`redis-server on ${opts.port}`, async () => (await respCommand(opts.port, ['PING'], 300)) === 'PONG', 10_000);
    if (opts.replicaOf !== undefined) {
      await waitFor(`replica ${opts.port} in sync`, async () => (await info(opts.port, 'replication')).get('master_link_status') === 'up', 10_000);
    }
    return rp;
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  get running(): boolean {
    return this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Sends a signal without waiting (SIGSTOP/SIGCONT: a server that hangs with its sockets open). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.#proc.kill(signal);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.#proc.kill('SIGCONT');
    this.#proc.kill(signal);
    await this.#exited;
  }
}

export interface SentinelGroupOptions {
  replicas?: number;
  sentinels?: number;
  masterName?: string;
  /** @default 1000 */
  downAfterMs?: number;
  /** @default 2000 */
  failoverTimeoutMs?: number;
}

/** 1 primary + N replicas + M Sentinels on loopback. */
export class SentinelGroup {
  readonly dir: string;
  readonly masterName: string;
  readonly sentinelPorts: number[] = [];
  /** Data nodes by port. */
  readonly servers = new Map<number, RedisProcess>();
  /** Sentinel events seen (channel, message, arrival time), in arrival order. */
  readonly events: Array<{ atMs: number; sentinel: number; channel: string; message: string }> = [];
  #sentinels: ChildProcess[] = [];
  #eventSubs: Array<{ close(): void }> = [];
  #opts: Required<SentinelGroupOptions>;

  private constructor(opts: SentinelGroupOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'tandem-sentinel-'));
    this.#opts = {
      replicas: opts.replicas ?? 1,
      sentinels: opts.sentinels ?? 3,
      masterName: opts.masterName ?? 'tandem',
      downAfterMs: opts.downAfterMs ?? 1000,
      failoverTimeoutMs: opts.failoverTimeoutMs ?? 2000,
    };
    this.masterName = this.#opts.masterName;
  }

  static async start(opts: SentinelGroupOptions = {}): Promise<SentinelGroup> {
    const g = new SentinelGroup(opts);
    try {
      const primaryPort = await freePort();
      g.servers.set(primaryPort, await RedisProcess.start({ port: primaryPort, dir: g.dir }));
      for (let i = 0; i < g.#opts.replicas; i++) {
        const p = await freePort();
        g.servers.set(p, await RedisProcess.start({ port: p, dir: g.dir, replicaOf: primaryPort }));
      }
      for (let i = 0; i < g.#opts.sentinels; i++) {
        const port = await freePort();
        const conf = join(g.dir, `sentinel-${port}.conf`);
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            'daemonize no',
            'protected-mode no',
            `dir ${g.dir}`,
            `logfile ${join(g.dir, `sentinel-${port}.log`)}`,
            'sentinel resolve-hostnames no',
            `sentinel monitor ${g.masterName} 127.0.0.1 ${primaryPort} ${Math.floor(g.#opts.sentinels / 2) + 1}`,
            `sentinel down-after-milliseconds ${g.masterName} ${g.#opts.downAfterMs}`,
            `sentinel failover-timeout ${g.masterName} ${g.#opts.failoverTimeoutMs}`,
            `sentinel parallel-syncs ${g.masterName} 1`,
            '',
          ].join('\n'),
        );
        g.#sentinels.push(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
        g.sentinelPorts.push(port);
      }
      for (const port of g.sentinelPorts) {
        await waitFor(`sentinel on ${port}`, async () => (await respCommand(port, ['PING'], 300)) === 'PONG', 10_000);
        const sub = respSubscribe(port, ['+switch-master', '+try-failover', '+vote-for-leader', '-failover-abort-no-good-slave'], (channel, message) =>
          g.events.push({ atMs: Date.now(), sentinel: port, channel, message }),
        );
        g.#eventSubs.push(sub);
        await sub.ready;
      }
      // Every Sentinel knows the replicas and the other Sentinels before a test starts.
      await g.waitHealthy(20_000);
      return g;
    } catch (err) {
      await g.stop();
      throw err;
    }
  }

  /** `redis-sentinel://` URL for the client under test. */
  get url(): string {
    return `redis-sentinel://${this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${this.masterName}`;
  }

  /** Primary port as every Sentinel names it; undefined while they disagree. */
  async agreedPrimary(): Promise<number | undefined> {
    const ports = await Promise.all(
      this.sentinelPorts.map(async (sp) => {
        const r = await respCommand(sp, ['SENTINEL', 'get-master-addr-by-name', this.masterName], 500).catch(() => null);
        return Array.isArray(r) ? Number(r[1]) : undefined;
      }),
    );
    return ports.every((p) => p !== undefined && p === ports[0]) ? ports[0] : undefined;
  }

  /**
   * Waits until every Sentinel names the same primary, that primary says it is one, and every
   * Sentinel sees every other data node as a live replica of it and knows the other Sentinels.
   */
  async waitHealthy(timeoutMs: number): Promise<number> {
    return waitFor(
      'a healthy sentinel group',
      async () => {
        const primary = await this.agreedPrimary();
        if (primary === undefined) return undefined;
        if ((await info(primary, 'replication')).get('role') !== 'master') return undefined;
        const replicaPorts = [...this.servers.keys()].filter((p) => p !== primary && this.servers.get(p)!.running);
        for (const sp of this.sentinelPorts) {
          const master = pairsToMap(await respCommand(sp, ['SENTINEL', 'master', this.masterName], 500));
          if (Number(master.get('num-other-sentinels')) !== this.sentinelPorts.length - 1) return undefined;
          const reps = await respCommand(sp, ['SENTINEL', 'replicas', this.masterName], 500);
          if (!Array.isArray(reps)) return undefined;
          const seen = reps.map(pairsToMap);
          for (const rp of replicaPorts) {
            const r = seen.find((x) => Number(x.get('port')) === rp);
            // Reachable (PING answered) is what Sentinel needs to promote it; its INFO is refreshed
            // every second once the primary is down.
            if (!r || r.get('flags') !== 'slave') return undefined;
          }
        }
        return primary;
      },
      timeoutMs,
      50,
    );
  }

  /** Arrival time of the first `+switch-master` at or after `sinceMs`. */
  switchedAt(sinceMs: number): number | undefined {
    return this.events.find((e) => e.channel === '+switch-master' && e.atMs >= sinceMs)?.atMs;
  }

  /**
   * Waits out the back-off Sentinel applies after an election that ended without a switch (a
   * Sentinel that ran or voted in it will not start a failover of that primary for
   * 2 x failover-timeout), so that each kill measures a whole failover, not Sentinel's back-off.
   * Such elections happen when a Sentinel briefly holds a just-promoted primary down, about a
   * second after a switch with down-after-milliseconds 1000 (a known false positive of short
   * down-after periods, redis/redis#8607); some even complete, moving the primary again.
   */
  async waitElectionBackoff(): Promise<void> {
    for (;;) {
      let lastElection = 0;
      let lastSwitch = 0;
      for (const e of this.events) {
        if (e.channel === '+switch-master') lastSwitch = e.atMs;
        else if (e.channel === '+try-failover' || e.channel === '+vote-for-leader') lastElection = e.atMs;
      }
      // A spurious election comes about a second after a switch: give it time to show and end.
      let until = lastSwitch + 2500;
      if (lastElection > lastSwitch) until = Math.max(until, lastElection + 2 * this.#opts.failoverTimeoutMs + 200);
      if (until <= Date.now()) return;
      await new Promise((r) => setTimeout(r, until - Date.now()));
    }
  }

  /** SIGKILLs the current primary; returns its port. */
  async killPrimary(): Promise<number> {
    const primary = await this.agreedPrimary();
    if (primary === undefined) throw new Error('sentinels disagree on the primary');
    await this.servers.get(primary)!.kill('SIGKILL');
    return primary;
  }

  /** Restarts a killed data node as a replica of `primaryPort`. */
  async restartAsReplica(port: number, primaryPort: number): Promise<void> {
    this.servers.set(port, await RedisProcess.start({ port, dir: this.dir, replicaOf: primaryPort }));
  }

  async stop(): Promise<void> {
    for (const sub of this.#eventSubs) sub.close();
    for (const s of this.#sentinels) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    for (const r of this.servers.values()) await r.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A single redis-server in a temp dir that a test may kill and restart on the same port. */
export class SingleRedis {
  readonly dir: string;
  port = 0;
  server: RedisProcess | undefined;
  #durable: boolean;

  private constructor(durable: boolean) {
    this.dir = mkdtempSync(join(tmpdir(), 'tandem-redis-'));
    this.#durable = durable;
  }

  static async start(opts: { durable?: boolean } = {}): Promise<SingleRedis> {
    const s = new SingleRedis(opts.durable ?? false);
    s.port = await freePort();
    s.server = await RedisProcess.start({ port: s.port, dir: s.dir, durable: s.#durable });
    return s;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async kill(): Promise<void> {
    await this.server?.kill('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.server?.kill('SIGKILL');
    this.server = await RedisProcess.start({ port: this.port, dir: this.dir, durable: this.#durable });
  }

  async stop(): Promise<void> {
    await this.server?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
