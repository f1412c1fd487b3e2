/**
 * The UDP path of the transport's IPv4 sockets without node:dgram's per-datagram cost
 * (native/udp-io.cc): dgram binds the socket and keeps it (address, close, the rare queued send),
 * the addon reads it with recvmmsg() on Node's event loop and hands over batches of up to 32
 * datagrams in one call, and sends with one sendto() and no request object or callback.
 *
 * Why: the signalling node pays dgram's cost for every message before any SIP work. Measured with
 * bench/udp-floor.bench.ts (echo server, same C pacer, paced datagrams): dgram 12-13 µs of CPU per
 * datagram received and answered at 2,000-8,000/s, C's recvfrom/sendto 3 µs. A digest
 * registration is two such exchanges, a proxied call about seven. The media node's ng server
 * reads and answers its IPv4 socket the same way (`trySend` per reply).
 *
 * Off with TANDEM_NATIVE_UDP=0 or the transport's `nativeUdp: false`; without a C++ compiler or
 * Node's headers the transport stays on dgram (util/native-addon).
 */
import type dgram from 'node:dgram';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { counter } from '../../util/metrics.js';
import { buildAddon } from '../../util/native-addon.js';
import { fail, ok, type Result } from '../../util/result.js';
import { ipv4Number } from './response-routing.js';

/** What native/udp-io.cc exports. */
interface UdpIoModule {
  open(fd: number, data: ArrayBuffer, meta: Int32Array, onBatch: (count: number) => void): unknown;
  stop(handle: unknown): void;
  send(fd: number, bytes: Uint8Array, port: number, ipv4: number): number;
  sendBatch(fd: number, area: ArrayBuffer, meta: Int32Array, first: number, count: number): number;
  BATCH: number;
  SEND_BATCH: number;
  SLOT: number;
  META: number;
}

let loading: Promise<Result<UdpIoModule>> | undefined;

/** Compiles (once per process, cached on disk) and loads the addon. Never throws. */
export function loadNativeUdp(): Promise<Result<UdpIoModule>> {
  loading ??= (async () => {
    if (process.env['TANDEM_NATIVE_UDP'] === '0') return fail('NATIVE_UDP_OFF', 'TANDEM_NATIVE_UDP=0');
    const here = dirname(fileURLToPath(import.meta.url));
    return buildAddon<UdpIoModule>({
      name: 'udp-io',
      sources: [join(here, 'native/udp-io.cc'), join(here, '../../../src/sip/transport/native/udp-io.cc')],
      from: here,
      exports: ['open', 'stop', 'send', 'sendBatch', 'BATCH', 'SLOT', 'META', 'SEND_BATCH'],
    });
  })().catch((err: unknown) => fail('NATIVE_ERR_BUILD', (err as Error)?.message ?? String(err)));
  return loading;
}

/** dgram's libuv handle of a bound socket (Node keeps it under a symbol described `state symbol`): its descriptor, and reading switched off and on. */
interface DgramHandle {
  fd?: number;
  recvStart?: () => number;
  recvStop?: () => number;
}

export function dgramHandle(socket: dgram.Socket): DgramHandle | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((x) => x.description === 'state symbol');
  return sym ? (socket as unknown as Record<symbol, { handle?: DgramHandle }>)[sym]?.handle : undefined;
}

/** Sender addresses as text, cached by number: a node hears from a bounded set of peers. */
const addressText = new Map<number, string>();

function addressOf(n: number): string {
  let s = addressText.get(n);
  if (s === undefined) {
    s = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    if (addressText.size >= 65536) addressText.clear();
    addressText.set(n, s);
  }
  return s;
}

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** A send error as node:dgram reports one. */
export function sendError(negErrno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(-negErrno) ?? `E${-negErrno}`;
  return Object.assign(new Error(`send ${code}`), { code, errno: negErrno, syscall: 'send' });
}

const EAGAIN = constants.errno.EAGAIN;
const ENOBUFS = constants.errno.ENOBUFS;

/** Room for the datagrams gathered while one batch is handled (`NativeUdpSocket.queue`). */
const SEND_AREA = 256 * 1024;
const SEND_SLOTS = 128;
const gatherSends = process.env['TANDEM_UDP_SEND_BATCH'] !== '0';

type SendFailure = (err: Error, arg: unknown) => void;

const sendBatches = counter('tandem_sip_udp_send_batches_total', 'Groups of UDP datagrams gathered while a received batch was handled and sent with one sendmmsg()');
const sentInBatches = counter('tandem_sip_udp_batched_datagrams_total', 'UDP datagrams sent in those groups (divided by tandem_sip_udp_send_batches_total: the mean group size)');

/**
 * One IPv4 socket on the native path. Reading is started and stopped with the transport's
 * (`setUdpReceiving`); sending works whether or not this process reads.
 */
export class NativeUdpSocket {
  readonly #mod: UdpIoModule;
  readonly #socket: dgram.Socket;
  readonly #fd: number;
  readonly #onDatagram: (buf: Buffer, address: string, port: number) => void;
  readonly #data: ArrayBuffer;
  readonly #bytes: Buffer;
  readonly #meta: Int32Array;
  #receiver: unknown;
  /**
   * Sends gathered while a received batch is handled, sent with one sendmmsg() at its end: one
   * system call for all, and the receiver (a UA, the next hop) woken once rather than per
   * datagram. Under load a batch holds several requests; with one datagram per wake-up nothing
   * changes but a copy. The area holds the bytes, the meta their offset, length, port, address.
   */
  readonly #sendArea = new ArrayBuffer(SEND_AREA);
  readonly #sendBytes = Buffer.from(this.#sendArea);
  readonly #sendMeta = new Int32Array(SEND_SLOTS * 4);
  readonly #sendFailures: Array<SendFailure | undefined> = [];
  readonly #sendArgs: unknown[] = [];
  #queued = 0;
  #queuedBytes = 0;
  #inBatch = false;

  private constructor(mod: UdpIoModule, socket: dgram.Socket, fd: number, onDatagram: (buf: Buffer, address: string, port: number) => void) {
    this.#mod = mod;
    this.#socket = socket;
    this.#fd = fd;
    this.#onDatagram = onDatagram;
    this.#data = new ArrayBuffer(mod.BATCH * mod.SLOT);
    this.#bytes = Buffer.from(this.#data);
    this.#meta = new Int32Array(mod.BATCH * mod.META);
  }

  /** Takes over a bound udp4 socket; undefined when its descriptor cannot be had. */
  static attach(mod: UdpIoModule, socket: dgram.Socket, onDatagram: (buf: Buffer, address: string, port: number) => void): NativeUdpSocket | undefined {
    const fd = dgramHandle(socket)?.fd;
    if (typeof fd !== 'number' || fd < 0) return undefined;
    return new NativeUdpSocket(mod, socket, fd, onDatagram);
  }

  /** Reads the socket here (dgram's reading stopped); false when the addon could not watch it. */
  startReceiving(): boolean {
    if (this.#receiver !== undefined) return true;
    const h = this.#mod.open(this.#fd, this.#data, this.#meta, this.#onBatch);
    if (typeof h === 'string' || h === undefined) return false;
    dgramHandle(this.#socket)?.recvStop?.();
    this.#receiver = h;
    return true;
  }

  stopReceiving(): void {
    if (this.#receiver === undefined) return;
    this.#mod.stop(this.#receiver);
    this.#receiver = undefined;
  }

  get receiving(): boolean {
    return this.#receiver !== undefined;
  }

  /**
   * Sends at once when it can: 0 when sent, a negative errno when the send failed (see
   * {@link sendError}), 1 when the caller must send through dgram instead (a name rather than an
   * IPv4 literal, or a full send buffer, which dgram queues).
   */
  trySend(data: Buffer, port: number, address: string): number {
    const ip = ipv4Number(address);
    if (ip < 0) return 1;
    if (this.#queued !== 0) this.flush(); // what was gathered goes first
    const rc = this.#mod.send(this.#fd, data, port, ip);
    return rc === -EAGAIN || rc === -ENOBUFS ? 1 : rc;
  }

  /**
   * While this socket's received batch is handled: takes `data` to be sent at the batch's end and
   * returns true; a failure then reaches `onError(err, arg)` (asynchronously, as `transmit`
   * reports them; a full send buffer hands the datagram to dgram, which queues it). False
   * outside a batch or for a name rather than an IPv4 literal: the caller sends now.
   */
  queue<A>(data: Buffer, port: number, address: string, onError: (err: Error, arg: A) => void, arg: A): boolean {
    if (!this.#inBatch || !gatherSends) return false;
    const ip = ipv4Number(address);
    const len = data.length;
    if (ip < 0 || len > SEND_AREA) return false;
    if (this.#queued === SEND_SLOTS || this.#queuedBytes + len > SEND_AREA) this.flush();
    const at = this.#queuedBytes;
    data.copy(this.#sendBytes, at);
    const q = this.#queued;
    const meta = this.#sendMeta;
    meta[q * 4] = at;
    meta[q * 4 + 1] = len;
    meta[q * 4 + 2] = port;
    meta[q * 4 + 3] = ip;
    this.#sendFailures[q] = onError as SendFailure;
    this.#sendArgs[q] = arg;
    this.#queued = q + 1;
    this.#queuedBytes = at + len;
    return true;
  }

  /** Sends what `queue` gathered (the end of a batch does it). */
  flush(): void {
    const count = this.#queued;
    sendBatches.inc();
    sentInBatches.inc(count);
    let i = 0;
    while (i < count) {
      const n = this.#mod.sendBatch(this.#fd, this.#sendArea, this.#sendMeta, i, Math.min(count - i, this.#mod.SEND_BATCH));
      if (n > 0) i += n;
      else this.#sendFailed(i++, n);
    }
    for (let k = 0; k < count; k++) {
      this.#sendFailures[k] = undefined;
      this.#sendArgs[k] = undefined;
    }
    this.#queued = 0;
    this.#queuedBytes = 0;
  }

  #sendFailed(i: number, rc: number): void {
    const meta = this.#sendMeta;
    const off = meta[i * 4]!;
    const port = meta[i * 4 + 2]!;
    const address = addressOf(meta[i * 4 + 3]! >>> 0);
    const onError = this.#sendFailures[i];
    const arg = this.#sendArgs[i];
    if (rc === -EAGAIN || rc === -ENOBUFS) {
      const copy = Buffer.from(this.#sendBytes.subarray(off, off + meta[i * 4 + 1]!));
      try {
        this.#socket.send(copy, port, address, (err) => {
          if (err) onError?.(err, arg);
        });
      } catch (err) {
        queueMicrotask(() => onError?.(err as Error, arg));
      }
      return;
    }
    const err = sendError(rc);
    queueMicrotask(() => onError?.(err, arg));
  }

  readonly #onBatch = (count: number): void => {
    const meta = this.#meta;
    const m = this.#mod.META;
    this.#inBatch = true;
    try {
      for (let i = 0; i < count; i++) {
        const off = meta[i * m]!;
        const len = meta[i * m + 1]!;
        if (len < 0) continue; // larger than a datagram can be: cannot happen with 64 kB slots
        // Copied out: the area is refilled by the next batch, and parsed messages keep their bytes.
        const buf = Buffer.allocUnsafe(len);
        this.#bytes.copy(buf, 0, off, off + len);
        this.#onDatagram(buf, addressOf(meta[i * m + 3]! >>> 0), meta[i * m + 2]!);
      }
    } finally {
      this.#inBatch = false;
      if (this.#queued !== 0) this.flush();
    }
  };
}
