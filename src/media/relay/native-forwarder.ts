/**
 * The native forwarding fast path (native/forwarder.cc): a small N-API addon whose threads own
 * the pairs' UDP sockets and relay with epoll + recvmmsg/sendmmsg. Same semantics as the JS
 * relay worker (relay-worker.ts); the control thread calls it synchronously.
 *
 * The addon is compiled on first use and cached (util/native-addon). When it cannot be built or
 * loaded, {@link loadNativeForwarder} returns a failure and the engine uses the JS workers.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from '../../util/native-addon.js';
import { fail, ok, type Result } from '../../util/result.js';
import type { ChannelStats, Endpoint, LegStats, PairStats, Side, SsrcStats } from './types.js';
import type { WorkerCounters } from './worker-protocol.js';

/** What native/forwarder.cc exports. */
interface NativeModule {
  create(threads: number, bindAddress: string, socketBufferBytes: number, flags: number): unknown;
  open(h: unknown, thread: number, id: number, p0: number, p1: number, p2: number, p3: number): string | undefined;
  openLater(h: unknown, thread: number, id: number, p0: number, p1: number, p2: number, p3: number): string | undefined;
  opened(h: unknown): (number | string)[] | undefined;
  peer(
    h: unknown,
    id: number,
    side: number,
    rtpAddress: string | null,
    rtpPort: number,
    rtcpAddress: string | null,
    rtcpPort: number,
    latch: boolean,
    strict: boolean,
    clockRate: number,
    latchedRtpAddress: string | null,
    latchedRtpPort: number,
    latchedRtcpAddress: string | null,
    latchedRtcpPort: number,
  ): void;
  close(h: unknown, id: number, later: boolean): boolean;
  stats(h: unknown, id: number): [number[], string[]] | undefined;
  idle(h: unknown, idleMs: number): number[];
  totals(h: unknown): number[] | undefined;
  events(h: unknown): (number | string)[];
  destroy(h: unknown): void;
}

/** A latching event read from the native threads. */
export interface NativeLatch {
  id: number;
  side: Side;
  kind: 'rtp' | 'rtcp';
  endpoint: Endpoint;
}

/** create() flags (native/forwarder.cc). */
const FLAG_SHARED_PORTS = 1;
const FLAG_FREEBIND = 2;
const CHANNEL_VALUES = 8;
const STREAM_VALUES = 10;

let loading: Promise<Result<NativeModule>> | undefined;

/** Compiles (once per process, cached on disk) and loads the addon. Never throws. */
export function loadNativeForwarder(): Promise<Result<NativeModule>> {
  loading ??= build().catch((err: unknown) => fail('NATIVE_ERR_BUILD', (err as Error)?.message ?? String(err)));
  return loading;
}

async function build(): Promise<Result<NativeModule>> {
  const here = dirname(fileURLToPath(import.meta.url));
  // Running from compiled output (dist/media/relay), the source sits in src/.
  return buildAddon<NativeModule>({
    name: 'forwarder',
    sources: [join(here, 'native/forwarder.cc'), join(here, '../../../src/media/relay/native/forwarder.cc')],
    from: here,
    flags: ['-pthread'],
    exports: ['create', 'stats'],
  });
}

/** One native forwarder: `threads` forwarding threads, sockets bound to `bindAddress`. */
export class NativeForwarder {
  readonly #mod: NativeModule;
  #h: unknown;

  private constructor(mod: NativeModule, h: unknown) {
    this.#mod = mod;
    this.#h = h;
  }

  /**
   * `sharedPorts`: every socket is made so a hot standby can bind the same port ahead of a
   * takeover and the oldest socket of a port receives (SO_REUSEPORT with a steering program, and
   * IP_FREEBIND; see shareSocket() in native/forwarder.cc).
   */
  static create(mod: NativeModule, threads: number, bindAddress: string, socketBufferBytes: number, sharedPorts = false): Result<NativeForwarder> {
    const h = mod.create(threads, bindAddress, socketBufferBytes, sharedPorts ? FLAG_SHARED_PORTS | FLAG_FREEBIND : 0);
    if (typeof h === 'string' || h === undefined) return fail('NATIVE_ERR_CREATE', String(h ?? 'create failed'));
    return ok(new NativeForwarder(mod, h));
  }

  /** Binds the four sockets of a pair on `thread`. */
  open(thread: number, id: number, ports: [number, number, number, number]): { ok: boolean; failedPort?: number; error?: string } {
    const err = this.#mod.open(this.#h, thread, id, ports[0], ports[1], ports[2], ports[3]);
    if (err === undefined) return { ok: true };
    const colon = err.indexOf(':');
    return { ok: false, failedPort: Number(err.slice(0, colon)) || undefined, error: err.slice(colon + 1) };
  }

  /** Has `thread` open and bind the pair's sockets; the result comes from {@link opened}. Fails at once only on bad arguments. */
  openLater(thread: number, id: number, ports: [number, number, number, number]): { ok: boolean; error?: string } {
    const err = this.#mod.openLater(this.#h, thread, id, ports[0], ports[1], ports[2], ports[3]);
    return err === undefined ? { ok: true } : { ok: false, error: err.slice(err.indexOf(':') + 1) };
  }

  /** Results of {@link openLater} since the last call; a bound pair is usable from here on. */
  opened(): Array<{ id: number; ok: boolean; failedPort?: number; error?: string }> {
    const v = this.#mod.opened(this.#h) ?? [];
    const out: Array<{ id: number; ok: boolean; failedPort?: number; error?: string }> = [];
    for (let i = 0; i + 1 < v.length; i += 2) {
      const err = v[i + 1] as string;
      if (err === '') out.push({ id: v[i] as number, ok: true });
      else {
        const colon = err.indexOf(':');
        out.push({ id: v[i] as number, ok: false, failedPort: Number(err.slice(0, colon)) || undefined, error: err.slice(colon + 1) });
      }
    }
    return out;
  }

  peer(id: number, side: Side, rtp: Endpoint | undefined, rtcp: Endpoint | undefined, latch: boolean, strict: boolean, clockRate: number, latchedRtp?: Endpoint, latchedRtcp?: Endpoint): void {
    this.#mod.peer(
      this.#h, id, side === 'a' ? 0 : 1, rtp?.address ?? null, rtp?.port ?? 0, rtcp?.address ?? null, rtcp?.port ?? 0, latch, strict, clockRate,
      latchedRtp?.address ?? null, latchedRtp?.port ?? 0, latchedRtcp?.address ?? null, latchedRtcp?.port ?? 0,
    );
  }

  /**
   * Releases a pair. `later`: its sockets are closed by its forwarding thread at its next wake-up
   * (within 500 ms; the control thread makes no system call), for ports not wanted again soon;
   * else they are closed when this returns.
   */
  close(id: number, later = false): void {
    this.#mod.close(this.#h, id, later);
  }

  stats(id: number, callKey: string, createdMs: number): PairStats | undefined {
    const r = this.#mod.stats(this.#h, id);
    if (!r) return undefined;
    const [v, addrs] = r;
    const channel = (i: number): ChannelStats => {
      const o = i * CHANNEL_VALUES;
      const port = v[o + 5]!;
      return {
        packets: v[o]!,
        bytes: v[o + 1]!,
        errors: v[o + 2]!,
        forwarded: v[o + 3]!,
        lastPacketMs: v[o + 4]!,
        ...(port !== 0 ? { endpoint: { address: addrs[i]!, port } } : {}),
        latched: v[o + 6] === 1,
      };
    };
    let o = 4 * CHANNEL_VALUES;
    const leg = (side: 0 | 1): LegStats => {
      const n = v[o++]!;
      const ssrcs: SsrcStats[] = [];
      for (let i = 0; i < n; i++, o += STREAM_VALUES) {
        const jitter = v[o + 7]!;
        const clockRate = v[o + 8]!;
        ssrcs.push({
          ssrc: v[o]!,
          packets: v[o + 1]!,
          bytes: v[o + 2]!,
          lost: v[o + 3]!,
          extendedHighestSeq: v[o + 4]!,
          lastSeq: v[o + 5]!,
          lastTimestamp: v[o + 6]!,
          jitter: Math.round(jitter * 100) / 100,
          jitterMs: Math.round((jitter / clockRate) * 1000 * 100) / 100,
          clockRate,
          lastPacketMs: v[o + 9]!,
        });
      }
      const rtp = side * 2;
      return { ports: { rtpPort: v[rtp * CHANNEL_VALUES + 7]!, rtcpPort: v[(rtp + 1) * CHANNEL_VALUES + 7]! }, rtp: channel(rtp), rtcp: channel(rtp + 1), ssrcs };
    };
    const a = leg(0);
    const b = leg(1);
    return { id, callKey, createdMs, a, b };
  }

  idle(idleMs: number): number[] {
    return this.#mod.idle(this.#h, idleMs) ?? [];
  }

  totals(): WorkerCounters {
    const v = this.#mod.totals(this.#h) ?? [];
    const n = (i: number): number => v[i] ?? 0;
    return {
      rtpPackets: n(0),
      rtpBytes: n(1),
      rtpErrors: n(2),
      rtcpPackets: n(3),
      rtcpBytes: n(4),
      rtcpErrors: n(5),
      forwarded: n(6),
      dropped: [n(7), n(8), n(9), n(10)],
    };
  }

  /** Latching since the last call. */
  events(): NativeLatch[] {
    const v = this.#mod.events(this.#h) ?? [];
    const out: NativeLatch[] = [];
    for (let i = 0; i + 4 < v.length; i += 5) {
      out.push({
        id: v[i] as number,
        side: v[i + 1] === 0 ? 'a' : 'b',
        kind: v[i + 2] === 0 ? 'rtp' : 'rtcp',
        endpoint: { address: v[i + 3] as string, port: v[i + 4] as number },
      });
    }
    return out;
  }

  /** Closes every socket and joins the threads. */
  destroy(): void {
    if (this.#h === undefined) return;
    this.#mod.destroy(this.#h);
    this.#h = undefined;
  }
}
