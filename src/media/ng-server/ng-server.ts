import dgram from 'node:dgram';
import net from 'node:net';
import { isIP } from 'node:net';
import { createLogger, escapeSnippet, rateLimitedLog } from '../../util/logger.js';
import { counter, histogram } from '../../util/metrics.js';
import { fail, ok, type Result } from '../../util/result.js';
import { bdecodePrefix } from '../../ng/bencode.js';
import { formatNgMessage, NG_MAX_MESSAGE_BYTES, parseNgMessage, type NgEncoding } from '../../ng/ng-message.js';
import { parseNgRequest, type NgRequest } from '../../ng/ng-request.js';
import { loadNativeUdp, NativeUdpSocket } from '../../sip/transport/native-udp.js';
import { CookieCache } from './cookie-cache.js';
import { SourceAcl, DEFAULT_NG_ALLOW } from './source-acl.js';

const log = createLogger('ng-server');

const mRequests = counter('tandem_ng_requests_total', 'ng commands handled, by command and result', ['command', 'result'], () => commandLog.flush());
const mDropped = counter('tandem_ng_dropped_total', 'ng messages dropped without reply, by reason', ['reason']);
const mRetrans = counter('tandem_ng_retransmissions_total', 'ng messages answered from the cookie cache');
const mUnknownFlags = counter('tandem_ng_unknown_flags_total', 'unknown ng flags or replace values ignored');
const mDuration = histogram('tandem_ng_request_duration_seconds', 'ng command handling time', ['command'], [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1], () => commandLog.flush());

/**
 * Each command's outcome and time, kept as plain numbers on the request path and moved into
 * {@link mRequests} and {@link mDuration} when they are read or a moment after the command.
 * A labelled prom-client `inc` and `observe` hash their labels on every call: measured after
 * 20 ms of idle (caches cold, as at 50 calls/s), they cost ~10 µs of a ping's ~80.
 */
class CommandLog {
  static readonly CAPACITY = 1024;
  /** Commands and results seen, each a small index into these lists; `other` stands for any past the 256th. */
  readonly #names: string[] = ['other'];
  readonly #index = new Map<string, number>([['other', 0]]);
  readonly #command = new Uint16Array(CommandLog.CAPACITY);
  readonly #result = new Uint16Array(CommandLog.CAPACITY);
  readonly #seconds = new Float64Array(CommandLog.CAPACITY);
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  record(command: string, result: string, seconds: number): void {
    if (this.#count === CommandLog.CAPACITY) this.flush();
    const i = this.#count++;
    this.#command[i] = this.#id(command);
    this.#result[i] = this.#id(result);
    this.#seconds[i] = seconds;
    // Moved a moment later, when the loop is idle, so that neither this command nor the next one
    // (an answer follows its offer within a millisecond) pays for it.
    this.#timer ??= setTimeout(this.#flushLater, 50).unref();
  }

  readonly #flushLater = (): void => this.flush();

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const n = this.#count;
    this.#count = 0;
    for (let i = 0; i < n; i++) {
      const command = this.#names[this.#command[i]!]!;
      mRequests.inc({ command, result: this.#names[this.#result[i]!]! });
      mDuration.observe({ command }, this.#seconds[i]!);
    }
  }

  #id(name: string): number {
    let id = this.#index.get(name);
    if (id === undefined) {
      // Results are the handler's strings; past this many distinct ones, the rest share a label.
      if (this.#names.length >= 256) return 0;
      id = this.#names.push(name) - 1;
      this.#index.set(name, id);
    }
    return id;
  }
}

const commandLog = new CommandLog();

/** Where a command came from. */
export interface NgSource {
  address: string;
  port: number;
  transport: 'udp' | 'tcp' | 'http' | 'ws';
}

/** Runs one parsed command; returns the reply dictionary (with `result`). May throw: that becomes an error reply. */
export type NgCommandHandler = (req: NgRequest, source: NgSource) => Promise<Record<string, unknown>> | Record<string, unknown>;

/** Options of {@link NgServer}. */
export interface NgServerOptions {
  /** UDP listen address `host:port`/port; omit to disable UDP. */
  udp?: { host: string; port: number };
  /** TCP listen address; omit to disable TCP. */
  tcp?: { host: string; port: number };
  /** Networks (CIDR) allowed to send commands. @default loopback only */
  allow?: readonly string[];
  /** Cookie cache generation length, ms (replies kept 1-2 generations). @default 30_000 */
  cookieCacheMs?: number;
  /** IPv4 UDP through the native receive/send path when the addon is available (TANDEM_NATIVE_UDP=0 turns it off process-wide). @default true */
  nativeUdp?: boolean;
  handler: NgCommandHandler;
}

/** Largest TCP receive buffer per connection before it is closed, bytes. */
const TCP_MAX_BUFFER = 256 * 1024;
/** Concurrent ng TCP connections accepted. */
const TCP_MAX_CONNECTIONS = 1024;
/** A TCP connection with no traffic for this long is closed, ms. */
const TCP_IDLE_TIMEOUT_MS = 300_000;

/**
 * ng control server (UDP and TCP). Each message is `<cookie> <dictionary>`; the reply carries
 * the same cookie byte for byte and the request's encoding (bencode or JSON). Replies are cached
 * by cookie so a retransmission is answered from the cache and never executed twice; messages
 * from sources outside the allow-list, without a cookie, or too large are dropped and counted.
 */
export class NgServer {
  readonly #opts: NgServerOptions;
  readonly #acl: SourceAcl;
  readonly #cache: CookieCache;
  #udp4: dgram.Socket | undefined;
  #nativeUdp: NativeUdpSocket | undefined;
  #tcp: net.Server | undefined;
  readonly #conns = new Set<net.Socket>();
  /** Per-command counters for ng `statistics` (controlstatistics). */
  readonly commandCounts = new Map<string, number>();
  errorCount = 0;
  droppedCount = 0;

  private constructor(opts: NgServerOptions, acl: SourceAcl) {
    this.#opts = opts;
    this.#acl = acl;
    this.#cache = new CookieCache({ generationMs: opts.cookieCacheMs ?? 30_000 });
  }

  /** Creates and starts listening. Fails on a bad allow-list or a bind error. */
  static async start(opts: NgServerOptions): Promise<Result<NgServer>> {
    const acl = SourceAcl.create(opts.allow ?? DEFAULT_NG_ALLOW);
    if (!acl.ok) return acl;
    const s = new NgServer(opts, acl.value);
    try {
      if (opts.udp) await s.#listenUdp(opts.udp.host, opts.udp.port);
      if (opts.tcp) await s.#listenTcp(opts.tcp.host, opts.tcp.port);
    } catch (err) {
      await s.close();
      return fail('NG_ERR_BIND', `cannot listen: ${(err as Error).message}`);
    }
    return ok(s);
  }

  /** IPv4 UDP is read and answered by the native path. */
  get nativeUdp(): boolean {
    return this.#nativeUdp !== undefined;
  }

  /** Bound UDP port (after start). */
  get udpPort(): number | undefined {
    const a = this.#udp4?.address();
    return a ? a.port : undefined;
  }

  get tcpPort(): number | undefined {
    const a = this.#tcp?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async #listenUdp(host: string, port: number): Promise<void> {
    const sock = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
    this.#udp4 = sock;
    const onDatagram = (msg: Buffer, address: string, port: number, reply: (b: Buffer) => void): void => {
      try {
        this.#onMessage(msg, { address, port, transport: 'udp' }, reply);
      } catch (err) {
        rateLimitedLog('ng-udp-handler', (n) => log.error({ err, suppressed: n }, 'ng message handler threw'));
      }
    };
    sock.on('message', (msg, rinfo) =>
      onDatagram(msg, rinfo.address, rinfo.port, (reply) => {
        // No callback: Node then tries the send at once (uv_udp_try_send) and makes no completion
        // call back into JS. The price: a failed send is not reported; the controller
        // retransmits (every ng client does) and gets the reply from the cookie cache.
        sock.send(reply, rinfo.port, rinfo.address);
      }),
    );
    sock.on('error', (err) => rateLimitedLog('ng-udp-error', (n) => log.warn({ err: err.message, suppressed: n }, 'ng UDP socket error')));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    if (isIP(host) === 6 || this.#opts.nativeUdp === false) return;
    // IPv4: read and answer through the native path the SIP transport uses (recvmmsg on Node's
    // loop, one sendto per reply), without node:dgram's per-datagram objects, address lookup and
    // deferred send. The command path then touches less memory, which is what a command costs
    // after idle (see bench/ng-path.bench.ts). Without the addon, dgram as above.
    const mod = await loadNativeUdp();
    if (!mod.ok) return;
    let native: NativeUdpSocket | undefined;
    native = NativeUdpSocket.attach(mod.value, sock, (msg, address, port) =>
      onDatagram(msg, address, port, (reply) => {
        // 1: dgram must send it (a full send buffer, which dgram queues); an error is not reported, as above.
        if (native!.trySend(reply, port, address) === 1) sock.send(reply, port, address);
      }),
    );
    if (native && !native.startReceiving()) native = undefined;
    this.#nativeUdp = native;
  }

  async #listenTcp(host: string, port: number): Promise<void> {
    const server = net.createServer((conn) => this.#onTcpConnection(conn));
    this.#tcp = server;
    server.on('error', (err) => rateLimitedLog('ng-tcp-error', (n) => log.warn({ err: err.message, suppressed: n }, 'ng TCP server error')));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  #onTcpConnection(conn: net.Socket): void {
    const source: NgSource = { address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0, transport: 'tcp' };
    if (!this.#acl.allows(source.address)) {
      this.#drop('forbidden-source', source, Buffer.alloc(0));
      conn.destroy();
      return;
    }
    if (this.#conns.size >= TCP_MAX_CONNECTIONS) {
      this.#drop('too-many-connections', source, Buffer.alloc(0));
      conn.destroy();
      return;
    }
    this.#conns.add(conn);
    conn.setNoDelay(true);
    // A controller keeps its connection busy with pings; an idle or half-sent one is closed.
    conn.setTimeout(TCP_IDLE_TIMEOUT_MS, () => conn.destroy());
    let buf: Buffer = Buffer.alloc(0);
    const reply = (b: Buffer): void => {
      if (!conn.destroyed) conn.write(b);
    };
    conn.on('data', (chunk) => {
      try {
        onData(chunk);
      } catch (err) {
        rateLimitedLog('ng-tcp-handler', (n) => log.error({ err, suppressed: n }, 'ng TCP handler threw'));
        conn.destroy();
      }
    });
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (buf.length > TCP_MAX_BUFFER) {
        this.#drop('too-large', source, buf);
        conn.destroy();
        return;
      }
      // TCP framing: no length prefix; a bencoded dictionary ends itself. Consume complete messages.
      for (;;) {
        let start = 0;
        while (start < buf.length && (buf[start] === 0x0d || buf[start] === 0x0a || buf[start] === 0x20)) start++;
        if (start === buf.length) {
          buf = Buffer.alloc(0);
          return;
        }
        const sp = buf.indexOf(0x20, start);
        if (sp === -1) {
          if (buf.length - start > 256) {
            this.#drop('no-cookie', source, buf.subarray(start));
            conn.destroy();
          }
          return;
        }
        const first = buf[sp + 1];
        if (first === undefined) return;
        let end: number;
        if (first === 0x7b /* { */) {
          const e = jsonEnd(buf, sp + 1);
          if (e === -1) return; // wait for more
          end = e;
        } else {
          const d = bdecodePrefix(buf, sp + 1, { maxBytes: TCP_MAX_BUFFER });
          if (!d.ok) {
            if (d.code === 'BENC_ERR_TRUNCATED') return; // wait for more
            // Not decodable: answer the error and drop the rest of the buffer (framing is lost).
            this.#onMessage(buf.subarray(start), source, reply);
            buf = Buffer.alloc(0);
            return;
          }
          end = d.value.end;
        }
        const msg = buf.subarray(start, end);
        buf = buf.subarray(end);
        this.#onMessage(Buffer.from(msg), source, reply);
      }
    };
    conn.on('error', () => conn.destroy());
    conn.on('close', () => this.#conns.delete(conn));
  }

  #drop(reason: string, source: NgSource, msg: Buffer): false {
    this.droppedCount++;
    mDropped.inc({ reason });
    rateLimitedLog(`ng-drop-${reason}`, (n) =>
      log.warn({ reason, source: `${source.address}:${source.port}`, snippet: escapeSnippet(msg, 80), suppressed: n }, 'ng message dropped'),
    );
    return false;
  }

  /**
   * Handles one framed message from another transport (HTTP, WebSocket): same allow-list, cookie
   * cache and metrics as UDP. Resolves to the reply, or undefined when the message is dropped.
   */
  handle(msg: Buffer, source: NgSource): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      let replied = false;
      const willReply = this.#onMessage(msg, source, (b) => {
        replied = true;
        resolve(b);
      });
      if (!willReply && !replied) resolve(undefined);
    });
  }

  /** Returns false when the message is dropped (no reply will come). */
  #onMessage(msg: Buffer, source: NgSource, send: (b: Buffer) => void): boolean {
    if (!this.#acl.allows(source.address)) return this.#drop('forbidden-source', source, msg);
    if (msg.length > NG_MAX_MESSAGE_BYTES) return this.#drop('too-large', source, msg);
    const parsed = parseNgMessage(msg);
    if (!parsed.ok && parsed.code === 'NG_ERR_NO_COOKIE') return this.#drop('no-cookie', source, msg);
    const cookie = parsed.ok ? parsed.value.cookie : parsed.cookie!;
    const key = cookie.toString('latin1');
    const cached = this.#cache.get(key);
    if (cached) {
      mRetrans.inc();
      if (cached instanceof Promise) cached.then(send, () => undefined);
      else send(cached);
      return true;
    }
    const encoding: NgEncoding = parsed.ok ? parsed.value.encoding : (parsed.encoding ?? 'bencode');
    const started = performance.now();
    if (!parsed.ok) {
      rateLimitedLog('ng-decode', (n) =>
        log.warn({ source: `${source.address}:${source.port}`, reason: parsed.reason, snippet: escapeSnippet(msg, 80), suppressed: n }, 'undecodable ng message'),
      );
    }
    const run = parsed.ok ? this.#run(parsed.value.dict, source) : { command: 'invalid', reply: { result: 'error', 'error-reason': parsed.reason } };
    if (!(run.reply instanceof Promise)) {
      // Answered in this turn (an undecodable message, ping, a lookup, an offer with spare ports):
      // no promise on the way.
      const reply = this.#reply(key, encoding, run.command, run.reply, started);
      this.#cache.set(key, reply);
      send(reply);
      return true;
    }
    const replyP = run.reply.then((dict) => this.#reply(key, encoding, run.command, dict, started));
    this.#cache.set(key, replyP);
    replyP.then(send, (err) => rateLimitedLog('ng-reply', (n) => log.error({ err, suppressed: n }, 'ng reply failed')));
    return true;
  }

  /** Counts the outcome and encodes the reply. */
  #reply(key: string, encoding: NgEncoding, command: string, dict: Record<string, unknown>, started: number): Buffer {
    const result = typeof dict['result'] === 'string' ? (dict['result'] as string) : 'unknown';
    if (result === 'error') this.errorCount++;
    commandLog.record(command, result, (performance.now() - started) / 1000);
    try {
      return formatNgMessage(key, encoding, dict);
    } catch (err) {
      rateLimitedLog('ng-encode', (n) => log.error({ err, command, suppressed: n }, 'ng reply could not be encoded'));
      return formatNgMessage(key, encoding, { result: 'error', 'error-reason': 'Internal error' });
    }
  }

  /** Runs one decoded command: the reply dictionary, or its promise when the handler waits for something. */
  #run(raw: Record<string, unknown>, source: NgSource): { command: string; reply: Record<string, unknown> | Promise<Record<string, unknown>> } {
    const r = parseNgRequest(raw as never);
    if (!r.ok) return { command: 'invalid', reply: { result: 'error', 'error-reason': r.reason } };
    const req = r.value;
    const command = KNOWN_COMMANDS.has(req.command) ? req.command : 'unknown';
    this.commandCounts.set(command, (this.commandCounts.get(command) ?? 0) + 1);
    if (req.unknown.length) {
      mUnknownFlags.inc(req.unknown.length);
      rateLimitedLog('ng-unknown-flags', (n) => log.warn({ flags: req.unknown, command: req.command, suppressed: n }, 'unknown ng flags ignored'));
    }
    try {
      const reply = this.#opts.handler(req, source);
      if (!(reply instanceof Promise)) return { command, reply: withWarning(req, reply) };
      return { command, reply: reply.then((r) => withWarning(req, r), (err: unknown) => handlerFailed(req, err)) };
    } catch (err) {
      return { command, reply: handlerFailed(req, err) };
    }
  }

  async close(): Promise<void> {
    this.#cache.close();
    for (const c of this.#conns) c.destroy();
    const tasks: Promise<void>[] = [];
    this.#nativeUdp?.stopReceiving();
    this.#nativeUdp = undefined;
    if (this.#udp4) {
      const s = this.#udp4;
      tasks.push(new Promise((res) => s.close(() => res())));
      this.#udp4 = undefined;
    }
    if (this.#tcp) {
      const s = this.#tcp;
      tasks.push(new Promise((res) => s.close(() => res())));
      this.#tcp = undefined;
    }
    await Promise.all(tasks.map((t) => t.catch(() => undefined)));
  }
}

/** A successful reply to a request with unknown flags says which were ignored. */
function withWarning(req: NgRequest, reply: Record<string, unknown>): Record<string, unknown> {
  if (req.unknown.length && reply['result'] === 'ok' && reply['warning'] === undefined) {
    reply['warning'] = `Unknown flags ignored: ${req.unknown.join(', ')}`;
  }
  return reply;
}

/** A handler that threw or rejected: logged (rate-limited), answered with an error. */
function handlerFailed(req: NgRequest, err: unknown): Record<string, unknown> {
  rateLimitedLog('ng-handler-error', (n) => log.error({ err, command: req.command, suppressed: n }, 'ng command failed'));
  return { result: 'error', 'error-reason': 'Internal error' };
}

/** Wire commands with their own metric label (anything else is `unknown`). */
const KNOWN_COMMANDS = new Set([
  'ping', 'offer', 'answer', 'delete', 'query', 'list', 'statistics', 'start-recording', 'stop-recording', 'pause-recording',
  'start-forwarding', 'stop-forwarding', 'block-dtmf', 'unblock-dtmf', 'block-media', 'unblock-media', 'play-media', 'stop-media',
  'play-dtmf', 'silence-media', 'unsilence-media', 'publish', 'subscribe-request', 'subscribe-answer', 'unsubscribe',
]);

/** End offset of a JSON object starting at `start` (string-aware brace matching), or -1 if incomplete. */
function jsonEnd(buf: Buffer, start: number): number {
  let depth = 0;
  let inStr = false;
  for (let i = start; i < buf.length; i++) {
    const c = buf[i];
    if (inStr) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inStr = false;
      continue;
    }
    if (c === 0x22) inStr = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

