import { availableParallelism, networkInterfaces } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createLogger } from '../../util/logger.js';
import { fail, ok, type Result } from '../../util/result.js';
import { NativeForwarder, loadNativeForwarder } from './native-forwarder.js';
import { PortAllocator } from './port-allocator.js';
import {
  DROP_REASONS,
  type AllocatedPair,
  type AllocateOptions,
  type ForwarderKind,
  type PairStats,
  type PeerOptions,
  type PeerSpec,
  type RelayEngineOptions,
  type RelayEvent,
  type RelayTotals,
  type Side,
} from './types.js';
import type { ControlToWorker, WorkerCounters, WorkerToControl } from './worker-protocol.js';

export * from './types.js';

const log = createLogger('relay');

/** Default quarantine of released ports: longer than any jitter buffer or late retransmission. */
export const DEFAULT_QUARANTINE_MS = 10_000;
const DEFAULT_SOCKET_BUFFER_BYTES = 262_144;
/** Young generation of each forwarding worker's heap. */
const YOUNG_GENERATION_MB = 32;
/** Pause before a crashed worker is replaced. */
const WORKER_RESTART_DELAY_MS = 1000;
/** Attempts at other ports when a bind fails because something outside the engine holds a port. */
const BIND_ATTEMPTS = 8;
/** Released native pairs whose ports are quarantined at least this long are closed by their forwarding thread (which wakes within 500 ms), ms. */
const LAZY_CLOSE_MIN_QUARANTINE_MS = 1000;
/** How often latching events are read from the native forwarder. */
const NATIVE_EVENT_POLL_MS = 20;

interface WorkerSlot {
  index: number;
  /** The JS worker thread; null for a native forwarding thread. */
  worker: Worker | null;
  pairs: number;
  alive: boolean;
}

interface PairRecord {
  id: number;
  callKey: string;
  worker: WorkerSlot;
  slots: [number, number];
  createdMs: number;
}

/**
 * The RTP/RTCP forwarding engine of a media node.
 *
 * Calls are sharded over forwarding threads (one per core by default); each owns the UDP
 * sockets of its pairs and forwards packets without involving the control thread. Two
 * implementations with the same semantics: the native forwarder (native-forwarder.ts, C++
 * threads batching with recvmmsg/sendmmsg; used by default when it builds) and JS worker
 * threads (relay-worker.ts, Node dgram sockets; the fallback). The control thread (the caller,
 * typically the ng server) allocates ports from one range, tells the threads where peers are,
 * and asks for statistics; that is rare (postMessage to JS workers, direct calls into the
 * native forwarder, whose latching events are polled every 20 ms).
 *
 * A pair is two cross-connected legs: packets received on leg a's sockets are sent out of
 * leg b's sockets to b's peer, and vice versa. RTP uses an even port, RTCP the next odd one;
 * RTCP multiplexed on the RTP port (RFC 5761) is forwarded too.
 */
export class RelayEngine {
  readonly #opts: Required<Omit<RelayEngineOptions, 'onEvent' | 'advertisedAddress'>> & { advertisedAddress: string };
  /** The native forwarder when it runs; then every slot is one of its threads. */
  #native: NativeForwarder | undefined;
  #eventTimer: NodeJS.Timeout | undefined;
  readonly #onEvent: ((e: RelayEvent) => void) | undefined;
  readonly #ports: PortAllocator;
  readonly #workers: WorkerSlot[] = [];
  readonly #pairs = new Map<number, PairRecord>();
  readonly #pending = new Map<number, { slot: WorkerSlot; done: (msg: WorkerToControl | undefined) => void }>();
  #nextId = 1;
  #nextReq = 1;
  #started = false;
  #stopping = false;
  #allocated = 0;
  #released = 0;
  #exhausted = 0;
  /** Counters of workers that have exited, so totals stay monotonic. */
  readonly #retired: WorkerCounters = emptyCounters();

  constructor(opts: RelayEngineOptions) {
    const workers = Math.max(1, Math.floor(opts.workers ?? availableParallelism()));
    this.#opts = {
      interface: opts.interface,
      advertisedAddress: opts.advertisedAddress ?? defaultAdvertised(opts.interface),
      portMin: opts.portMin,
      portMax: opts.portMax,
      workers,
      quarantineMs: opts.quarantineMs ?? DEFAULT_QUARANTINE_MS,
      socketBufferBytes: opts.socketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES,
      forwarder: opts.forwarder ?? 'auto',
      sharedPorts: opts.sharedPorts ?? false,
    };
    this.#onEvent = opts.onEvent;
    this.#ports = new PortAllocator(opts.portMin, opts.portMax, this.#opts.quarantineMs);
  }

  /** Address to advertise in SDP. */
  get advertisedAddress(): string {
    return this.#opts.advertisedAddress;
  }

  /** Number of forwarding workers. */
  get workerCount(): number {
    return this.#opts.workers;
  }

  /** True when a standby may bind this engine's ports ahead of a takeover (`sharedPorts` asked and the native forwarder runs). */
  get sharesPorts(): boolean {
    return this.#opts.sharedPorts && this.#native !== undefined;
  }

  /** The forwarder in use: `native` or `js` (known once started). */
  get forwarder(): Exclude<ForwarderKind, 'auto'> {
    return this.#native ? 'native' : 'js';
  }

  /** Starts the forwarding threads (native or JS workers); resolves when all are ready. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    if (this.#opts.forwarder !== 'js' && (await this.#startNative())) {
      log.info({ forwarder: 'native', threads: this.#opts.workers }, 'relay started');
      return;
    }
    await Promise.all(Array.from({ length: this.#opts.workers }, (_, index) => this.#spawn(index)));
    log.info({ forwarder: 'js', threads: this.#opts.workers }, 'relay started');
  }

  /** Starts the native forwarder; false (after one warning) when it cannot be built or loaded. */
  async #startNative(): Promise<boolean> {
    const mod = await loadNativeForwarder();
    const fwd = mod.ok ? NativeForwarder.create(mod.value, this.#opts.workers, this.#opts.interface, this.#opts.socketBufferBytes, this.#opts.sharedPorts) : mod;
    if (!fwd.ok) {
      log.warn({ code: fwd.code, reason: fwd.reason, asked: this.#opts.forwarder }, 'native forwarder unavailable; using JS relay workers');
      return false;
    }
    this.#native = fwd.value;
    for (let index = 0; index < this.#opts.workers; index++) this.#workers[index] = { index, worker: null, pairs: 0, alive: true };
    this.#eventTimer = setInterval(() => this.#drainNativeEvents(), NATIVE_EVENT_POLL_MS);
    this.#eventTimer.unref();
    return true;
  }

  #drainNativeEvents(): void {
    const native = this.#native;
    if (!native) return;
    for (const e of native.events()) {
      const p = this.#pairs.get(e.id);
      if (!p) continue;
      try {
        this.#onEvent?.({ type: 'latched', id: e.id, callKey: p.callKey, side: e.side, kind: e.kind, endpoint: e.endpoint });
      } catch (err) {
        log.error({ err }, 'relay event handler threw');
      }
    }
  }

  /** Starts worker `index` (again, after a crash) and resolves once it serves control messages. */
  #spawn(index: number): Promise<void> {
    const entry = workerEntry();
    const worker = new Worker(entry.url, {
      execArgv: entry.execArgv,
      eval: entry.eval,
      workerData: { index, bindAddress: this.#opts.interface, socketBufferBytes: this.#opts.socketBufferBytes },
      // Every packet leaves a short-lived Buffer and address object; a larger young generation
      // means fewer scavenges (each cheap, as almost nothing survives).
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    const slot: WorkerSlot = { index, worker, pairs: 0, alive: false };
    this.#workers[index] = slot;
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: WorkerToControl) => {
        if (msg.t === 'ready') {
          slot.alive = !this.#stopping;
          resolve();
        } else this.#onWorkerMessage(slot, msg);
      });
      worker.on('error', (err) => {
        log.error({ err, worker: index }, 'relay worker error');
        reject(err);
      });
      worker.on('exit', (code) => {
        reject(new Error(`relay worker ${index} exited with code ${code}`));
        this.#onWorkerExit(slot, code);
      });
    });
  }

  /** Closes every socket and stops the workers. Pending requests resolve as failures. */
  async stop(): Promise<void> {
    if (!this.#started || this.#stopping) return;
    this.#stopping = true;
    if (this.#native) {
      clearInterval(this.#eventTimer);
      clearTimeout(this.#openPoll);
      for (const done of this.#opening.values()) done({ ok: false, error: 'relay stopping' });
      this.#opening.clear();
      this.#drainNativeEvents();
      addCounters(this.#retired, this.#native.totals());
      this.#native.destroy();
      for (const w of this.#workers) w.alive = false;
    }
    await Promise.all(
      this.#workers.map(async (w) => {
        if (w.alive) {
          const counters = await this.#request<WorkerCounters | undefined>(w, (req) => ({ t: 'stop', req }), 2000).catch(() => undefined);
          if (counters) addCounters(this.#retired, counters);
        }
        w.alive = false;
        await w.worker?.terminate();
      }),
    );
    for (const p of this.#pairs.values()) {
      this.#ports.release(p.slots[0], 0);
      this.#ports.release(p.slots[1], 0);
    }
    this.#pairs.clear();
    for (const p of this.#pending.values()) p.done(undefined);
    this.#pending.clear();
  }

  /**
   * Allocates two legs (four ports) on one worker and binds their sockets.
   * Fails with `NG_ERR_PORTS_EXHAUSTED` when the range has no free ports,
   * `NG_ERR_PORT_UNAVAILABLE` when `opts.ports` cannot be had, `NG_ERR_RELAY_DOWN` when stopped.
   */
  async allocatePair(callKey: string, opts: AllocateOptions = {}): Promise<Result<AllocatedPair>> {
    const worker = this.#pickWorker();
    if (!worker || this.#stopping) return fail('NG_ERR_RELAY_DOWN', 'media relay is not running');
    for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
      let slots: [number, number] | undefined;
      if (opts.ports) {
        const a = this.#ports.take(opts.ports.a.rtpPort);
        const b = a === undefined ? undefined : this.#ports.take(opts.ports.b.rtpPort);
        if (a === undefined || b === undefined) {
          if (a !== undefined) this.#ports.release(a, 0);
          return fail('NG_ERR_PORT_UNAVAILABLE', `ports ${opts.ports.a.rtpPort}/${opts.ports.b.rtpPort} are not available`);
        }
        slots = [a, b];
      } else {
        const a = this.#ports.takeAny();
        const b = a === undefined ? undefined : this.#ports.takeAny();
        if (a === undefined || b === undefined) {
          if (a !== undefined) this.#ports.release(a, 0);
          this.#exhausted++;
          return fail('NG_ERR_PORTS_EXHAUSTED', 'no free media ports');
        }
        slots = [a, b];
      }
      const id = this.#nextId++;
      const ports: [number, number, number, number] = [
        this.#ports.portOf(slots[0]),
        this.#ports.portOf(slots[0]) + 1,
        this.#ports.portOf(slots[1]),
        this.#ports.portOf(slots[1]) + 1,
      ];
      worker.pairs++;
      const native = this.#native;
      const res = native
        ? opts.background && !opts.ports
          ? await this.#openInBackground(worker.index, id, ports)
          : native.open(worker.index, id, ports)
        : await this.#request<{ ok: boolean; failedPort?: number; error?: string }>(worker, (req) => ({
        t: 'open',
        req,
        id,
        callKey,
        ports,
      })).catch((err: Error) => ({ ok: false, error: err.message, failedPort: undefined }));
      if (res?.ok) {
        const record: PairRecord = { id, callKey, worker, slots, createdMs: Date.now() };
        this.#pairs.set(id, record);
        this.#allocated++;
        return ok({
          id,
          address: this.#opts.advertisedAddress,
          a: { rtpPort: ports[0], rtcpPort: ports[1] },
          b: { rtpPort: ports[2], rtcpPort: ports[3] },
          worker: worker.index,
        });
      }
      worker.pairs--;
      // A port held outside the engine: keep it out of circulation for a quarantine period; except
      // exact ports asked for (a takeover), which the caller may try again as soon as they are free.
      const q = opts.ports ? 0 : this.#opts.quarantineMs;
      this.#ports.release(slots[0], q);
      this.#ports.release(slots[1], q);
      if (this.#stopping) return fail('NG_ERR_RELAY_DOWN', 'media relay is stopping');
      log.warn({ callKey, ports, error: res?.error }, 'media port bind failed, trying others');
      if (opts.ports || !this.#started) {
        return fail('NG_ERR_PORT_UNAVAILABLE', `cannot bind media ports: ${res?.error ?? 'worker unavailable'}`);
      }
    }
    return fail('NG_ERR_PORT_UNAVAILABLE', 'cannot bind media ports');
  }

  /** Pending {@link NativeForwarder.openLater} results by pair id. */
  readonly #opening = new Map<number, (r: { ok: boolean; failedPort?: number; error?: string }) => void>();
  #openPoll: NodeJS.Timeout | undefined;

  /** Binds a pair on its forwarding thread; resolves when it reports (polled every millisecond while any is pending). */
  #openInBackground(thread: number, id: number, ports: [number, number, number, number]): Promise<{ ok: boolean; failedPort?: number; error?: string }> {
    const native = this.#native!;
    const r = native.openLater(thread, id, ports);
    if (!r.ok) return Promise.resolve(r);
    return new Promise((resolve) => {
      this.#opening.set(id, resolve);
      this.#openPoll ??= setTimeout(() => this.#pollOpened(), 1);
    });
  }

  #pollOpened(): void {
    this.#openPoll = undefined;
    if (this.#native && !this.#stopping) {
      for (const r of this.#native.opened()) {
        const done = this.#opening.get(r.id);
        this.#opening.delete(r.id);
        done?.(r);
      }
    }
    if (this.#opening.size > 0 && !this.#stopping) this.#openPoll = setTimeout(() => this.#pollOpened(), 1);
  }

  /**
   * Tells the engine where one side's peer is and how to accept its packets. Packets received
   * on the other leg are sent to this peer. May be called again (re-INVITE); a new SDP address
   * resets latching for that side. Unknown ids are ignored.
   */
  setPeer(id: number, side: Side, peer: PeerSpec, opts: PeerOptions): void {
    const p = this.#pairs.get(id);
    if (!p) return;
    const rtcp = peer.rtcp ?? (peer.rtp ? { address: peer.rtp.address, port: peer.rtp.port + 1 } : undefined);
    if (this.#native) {
      this.#native.peer(id, side, peer.rtp, rtcp, opts.latch, opts.strictSource, opts.clockRate ?? 8000, peer.latchedRtp, peer.latchedRtcp);
      return;
    }
    this.#post(p.worker, {
      t: 'peer',
      id,
      side,
      rtp: peer.rtp,
      rtcp,
      latch: opts.latch,
      strict: opts.strictSource,
      clockRate: opts.clockRate ?? 8000,
      ...(peer.latchedRtp ? { latchedRtp: peer.latchedRtp } : {}),
      ...(peer.latchedRtcp ? { latchedRtcp: peer.latchedRtcp } : {}),
    });
  }

  /**
   * Closes the pair's sockets; its ports are quarantined (for `quarantineMs`, default the
   * engine's; 0 when the call lives on at another node that may hand it back). Unknown ids are
   * ignored.
   */
  release(id: number, quarantineMs?: number): void {
    const p = this.#pairs.get(id);
    if (!p) return;
    this.#pairs.delete(id);
    this.#released++;
    p.worker.pairs--;
    const q = quarantineMs ?? this.#opts.quarantineMs;
    if (this.#native) {
      // Ports quarantined for a while: the forwarding thread closes the sockets (within its 500 ms
      // wake-up; no system call here, a delete's reply does not wait for 4 close()s). Ports
      // wanted again soon (a handover, a short quarantine): closed when this returns. The forwarding thread frees the
      // memory later.
      this.#native.close(id, q >= LAZY_CLOSE_MIN_QUARANTINE_MS);
      this.#ports.release(p.slots[0], q);
      this.#ports.release(p.slots[1], q);
      return;
    }
    // Ports go back only after the worker has closed the sockets, so they never overlap.
    this.#request(p.worker, (req) => ({ t: 'close', req, id }))
      .catch(() => undefined)
      .finally(() => {
        this.#ports.release(p.slots[0], q);
        this.#ports.release(p.slots[1], q);
      });
  }

  /** Statistics of one pair, or undefined if unknown. */
  async stats(id: number): Promise<PairStats | undefined> {
    const p = this.#pairs.get(id);
    if (!p) return undefined;
    if (this.#native) return this.#native.stats(id, p.callKey, p.createdMs);
    return this.#request<PairStats | undefined>(p.worker, (req) => ({ t: 'stats', req, id })).catch(() => undefined);
  }

  /** Ids of pairs with no accepted packet on any socket for `idleMs` (never-used pairs count from creation). */
  async idlePairs(idleMs: number): Promise<number[]> {
    if (this.#native) return this.#stopping ? [] : this.#native.idle(idleMs);
    const lists = await Promise.all(
      this.#workers.filter((w) => w.alive).map((w) => this.#request<number[]>(w, (req) => ({ t: 'idle', req, idleMs })).catch(() => [])),
    );
    return lists.flat();
  }

  /** Node-wide counters. */
  async totals(): Promise<RelayTotals> {
    const sum = emptyCounters();
    addCounters(sum, this.#retired);
    if (this.#native && !this.#stopping) addCounters(sum, this.#native.totals());
    const per = await Promise.all(
      this.#workers.filter((w) => w.alive && w.worker).map((w) => this.#request<WorkerCounters>(w, (req) => ({ t: 'totals', req })).catch(() => undefined)),
    );
    for (const c of per) if (c) addCounters(sum, c);
    const dropped = {} as RelayTotals['dropped'];
    DROP_REASONS.forEach((r, i) => (dropped[r] = sum.dropped[i] ?? 0));
    return {
      workers: this.#workers.filter((w) => w.alive).length,
      pairs: this.#pairs.size,
      rtp: { packets: sum.rtpPackets, bytes: sum.rtpBytes, errors: sum.rtpErrors },
      rtcp: { packets: sum.rtcpPackets, bytes: sum.rtcpBytes, errors: sum.rtcpErrors },
      forwarded: sum.forwarded,
      dropped,
      ports: this.#ports.gauges(),
      allocated: this.#allocated,
      released: this.#released,
      exhausted: this.#exhausted,
    };
  }

  #pickWorker(): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const w of this.#workers) if (w.alive && (!best || w.pairs < best.pairs)) best = w;
    return best;
  }

  #post(w: WorkerSlot, msg: ControlToWorker): void {
    if (w.alive) w.worker?.postMessage(msg);
  }

  #request<T>(w: WorkerSlot, make: (req: number) => ControlToWorker, timeoutMs = 5000): Promise<T> {
    if (!w.alive || !w.worker) return Promise.reject(new Error('worker not running'));
    const worker = w.worker;
    const req = this.#nextReq++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(req);
        reject(new Error('relay worker did not answer'));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(req, {
        slot: w,
        done: (msg) => {
          clearTimeout(timer);
          if (msg === undefined) reject(new Error('relay worker stopped'));
          else resolve((msg as { value: T }).value);
        },
      });
      worker.postMessage(make(req));
    });
  }

  #onWorkerMessage(w: WorkerSlot, msg: WorkerToControl): void {
    try {
      if (msg.t === 'reply') {
        const p = this.#pending.get(msg.req);
        if (p) {
          this.#pending.delete(msg.req);
          p.done(msg);
        }
      } else if (msg.t === 'latched') {
        const p = this.#pairs.get(msg.id);
        this.#onEvent?.({ type: 'latched', id: msg.id, callKey: p?.callKey ?? '', side: msg.side, kind: msg.kind, endpoint: msg.endpoint });
      }
    } catch (err) {
      log.error({ err, worker: w.index }, 'relay event handler threw');
    }
  }

  #onWorkerExit(w: WorkerSlot, code: number): void {
    const wasAlive = w.alive;
    w.alive = false;
    for (const [req, p] of this.#pending) {
      if (p.slot === w) {
        this.#pending.delete(req);
        p.done(undefined);
      }
    }
    if (this.#stopping || !wasAlive) return;
    log.error({ worker: w.index, code }, 'relay worker exited; its calls lost media; starting a new one');
    for (const [id, p] of this.#pairs) {
      if (p.worker === w) {
        this.#pairs.delete(id);
        this.#ports.release(p.slots[0], this.#opts.quarantineMs);
        this.#ports.release(p.slots[1], this.#opts.quarantineMs);
      }
    }
    try {
      this.#onEvent?.({ type: 'worker-exit', worker: w.index, code });
    } catch (err) {
      log.error({ err }, 'relay event handler threw');
    }
    // Replace it after a pause, so a worker that keeps crashing cannot spin.
    const t = setTimeout(() => {
      if (!this.#stopping) this.#spawn(w.index).catch((err: unknown) => log.error({ err, worker: w.index }, 'relay worker restart failed'));
    }, WORKER_RESTART_DELAY_MS);
    t.unref();
  }
}

function emptyCounters(): WorkerCounters {
  return { rtpPackets: 0, rtpBytes: 0, rtpErrors: 0, rtcpPackets: 0, rtcpBytes: 0, rtcpErrors: 0, forwarded: 0, dropped: DROP_REASONS.map(() => 0) };
}

function addCounters(into: WorkerCounters, c: WorkerCounters): void {
  into.rtpPackets += c.rtpPackets;
  into.rtpBytes += c.rtpBytes;
  into.rtpErrors += c.rtpErrors;
  into.rtcpPackets += c.rtcpPackets;
  into.rtcpBytes += c.rtcpBytes;
  into.rtcpErrors += c.rtcpErrors;
  into.forwarded += c.forwarded;
  for (let i = 0; i < into.dropped.length; i++) into.dropped[i] = (into.dropped[i] ?? 0) + (c.dropped[i] ?? 0);
}

function defaultAdvertised(bind: string): string {
  if (bind !== '0.0.0.0' && bind !== '::') return bind;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * The worker module next to this file: `.js` when running compiled, `.ts` when running from
 * source (tsx, vitest). A `.ts` worker is started through a small bootstrap that registers the
 * tsx loader inside the worker first (an inherited `--import tsx` does not reach worker entry
 * points in Node 20).
 */
function workerEntry(): { url: URL | string; execArgv: string[]; eval: boolean } {
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  if (!import.meta.url.endsWith('.ts')) return { url: new URL('./relay-worker.js', import.meta.url), execArgv, eval: false };
  const workerUrl = new URL('./relay-worker.ts', import.meta.url).href;
  // tsx's ESM API (`tsx/esm/api`, import condition) registers its hooks in this thread.
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsxApi = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl)}); })`;
  return { url: code, execArgv, eval: true };
}
