import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { randomInt } from 'node:crypto';
import { rateLimitedLog, createLogger } from '../../util/logger.js';
import { LatencyHistogram } from '../histogram.js';
import { emptyRtp, type RtpTotals } from '../stats.js';
import { FRAME_SAMPLES, generateTone } from './g711.js';
import type { G711Audio } from './wav.js';
import { RtpStreamStats } from './rtp-stream-stats.js';

const log = createLogger('loadgen-rtp');

/** `send`: own stream out, count what comes in; `echo`: return every packet to its sender; `recv`: count only. */
export type RtpMode = 'send' | 'echo' | 'recv';

export interface RtpMediaOptions {
  /** Local address RTP sockets bind to. */
  address: string;
  /** Audio to loop; default a generated 440 Hz tone in PCMU. */
  audio?: G711Audio;
  /** Local port range (inclusive, even ports only); default any free port. */
  portMin?: number;
  portMax?: number;
  /** Period of the one pacing timer shared by all streams. @default 10 */
  tickMs?: number;
  /** Packet interval. @default 20 */
  ptimeMs?: number;
  /** Most packets one stream may send in one tick to catch up after a late tick. @default 5 */
  maxBurst?: number;
}

/** RTP header + 160 bytes of G.711 = 172 bytes per 20 ms. */
const HEADER = 12;

/** Adds one stream's packet counters, lateness and longest gap into running totals. */
function addStreamCounters(t: RtpTotals, s: RtpStream): void {
  t.packetsSent += s.sent;
  t.packetsReceived += s.stats.received;
  t.packetsLost += s.stats.lost;
  t.packetsExpected += s.stats.expected;
  t.sendLate += s.sendLate;
  if (s.stats.maxGapMs > t.worstGapMs) t.worstGapMs = s.stats.maxGapMs;
}

/**
 * All RTP streams of one thread: one socket per stream (each call has its own port, as a
 * phone has), one pacing timer for every stream. A tick sends each stream the packets that
 * are due by its own start time, so streams started at different moments spread over the
 * 20 ms period instead of bursting together.
 */
export class RtpMedia {
  readonly #opts: Required<Omit<RtpMediaOptions, 'portMin' | 'portMax' | 'audio'>> & { portMin?: number; portMax?: number };
  readonly #audio: G711Audio;
  readonly #sending = new Set<RtpStream>();
  readonly #open = new Set<RtpStream>();
  #timer: NodeJS.Timeout | undefined;
  #nextPort: number;
  #closed = emptyRtp();
  #jitter = new LatencyHistogram();
  #gaps = new LatencyHistogram();

  constructor(opts: RtpMediaOptions) {
    this.#opts = { tickMs: 10, ptimeMs: 20, maxBurst: 5, ...opts };
    const a = opts.audio;
    // audio that crossed a thread boundary arrives as a plain Uint8Array
    this.#audio = a ? { payloadType: a.payloadType, data: Buffer.isBuffer(a.data) ? a.data : Buffer.from(a.data as Uint8Array) } : { payloadType: 0, data: generateTone() };
    this.#nextPort = opts.portMin ?? 0;
  }

  get audio(): G711Audio {
    return this.#audio;
  }

  get openStreams(): number {
    return this.#open.size;
  }

  /** Opens a socket for a new stream (port from the range, else any free port), on `address` if given. */
  async open(address = this.#opts.address): Promise<RtpStream> {
    const { portMin, portMax } = this.#opts;
    const attempts = portMin && portMax ? Math.max(1, Math.floor((portMax - portMin) / 2) + 1) : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      let port = 0;
      if (portMin && portMax) {
        port = this.#nextPort;
        this.#nextPort += 2;
        if (this.#nextPort > portMax) this.#nextPort = portMin;
      }
      try {
        const socket = await bindSocket(address, port);
        const stream = new RtpStream(this, socket);
        this.#open.add(stream);
        return stream;
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr instanceof Error ? lastErr : new Error('no free RTP port');
  }

  /** @internal */
  startSending(s: RtpStream): void {
    this.#sending.add(s);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#tick(), this.#opts.tickMs);
    }
  }

  /** @internal */
  stopSending(s: RtpStream): void {
    this.#sending.delete(s);
    if (this.#sending.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** @internal */
  closed(s: RtpStream): void {
    this.stopSending(s);
    if (!this.#open.delete(s)) return;
    this.#closed.streams++;
    addStreamCounters(this.#closed, s);
    if (s.stats.received > 1) {
      this.#jitter.record(s.stats.jitterMs);
      this.#gaps.record(s.stats.maxGapMs);
    }
  }

  #tick(): void {
    const now = performance.now();
    const { ptimeMs, maxBurst } = this.#opts;
    for (const s of this.#sending) {
      try {
        s.pump(now, ptimeMs, maxBurst);
      } catch (err) {
        rateLimitedLog('rtp-send', (n) => log.warn({ err, suppressed: n }, 'RTP send failed'));
      }
    }
  }

  /** Closed streams' totals plus the open streams' counters so far (jitter from closed streams). */
  snapshot(): RtpTotals {
    const t = { ...this.#closed, jitter: this.#jitter.snapshot(), gaps: this.#gaps.snapshot() };
    for (const s of this.#open) addStreamCounters(t, s);
    return t;
  }

  close(): void {
    for (const s of [...this.#open]) s.close();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function bindSocket(address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
    const onError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onError);
    socket.bind(port, address, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** One RTP stream: its socket, what it sent, what it received (RFC 3550 receiver stats). */
export class RtpStream {
  readonly stats = new RtpStreamStats();
  readonly port: number;
  sent = 0;
  sendLate = 0;
  mode: RtpMode = 'recv';
  readonly #media: RtpMedia;
  readonly #socket: Socket;
  #connected = false;
  #remote: { address: string; port: number } | undefined;
  #ssrc = randomInt(0, 0xffffffff);
  #seqBase = randomInt(0, 0xffff);
  #tsBase = randomInt(0, 0xffffffff);
  #startMs = 0;
  #index = 0;
  #audioOffset = 0;
  #closed = false;

  constructor(media: RtpMedia, socket: Socket) {
    this.#media = media;
    this.#socket = socket;
    this.port = socket.address().port;
    socket.on('error', (err) => {
      // ICMP unreachable on a connected socket and the like: count nothing, never crash
      rateLimitedLog('rtp-socket', (n) => log.debug({ err: err.message, suppressed: n }, 'RTP socket error'));
    });
    socket.on('message', (msg, rinfo) => {
      const now = performance.now();
      this.stats.onPacket(msg, now);
      if (this.mode === 'echo') {
        if (this.#connected) this.#socket.send(msg);
        else {
          this.#socket.send(msg, rinfo.port, rinfo.address);
          this.#latch(rinfo.address, rinfo.port);
        }
        this.sent++;
      }
    });
  }

  /** Latches (connects) the socket to the peer so sends skip the per-packet address lookup. */
  #latch(address: string, port: number): void {
    if (this.#remote || this.#closed) return;
    this.#remote = { address, port };
    this.#socket.connect(port, address, () => {
      if (!this.#closed) this.#connected = true;
    });
  }

  /** Starts the stream toward `remote` (ignored for echo, which answers each packet's source). */
  start(mode: RtpMode, remote?: { address: string; port: number }): void {
    if (this.#closed) return;
    this.mode = mode;
    if (mode === 'send' && remote && remote.port > 0) {
      this.#latch(remote.address, remote.port);
      this.#startMs = performance.now();
      this.#media.startSending(this);
    }
  }

  /** @internal Sends the packets due at `now`. */
  pump(now: number, ptimeMs: number, maxBurst: number): void {
    if (!this.#connected) return;
    let due = Math.floor((now - this.#startMs) / ptimeMs) + 1 - this.#index;
    if (due > maxBurst) {
      // the thread was too busy: skip the backlog instead of bursting, and say so
      this.sendLate += due - maxBurst;
      this.#startMs += (due - maxBurst) * ptimeMs;
      due = maxBurst;
    }
    const audio = this.#media.audio;
    for (; due > 0; due--) {
      const pkt = Buffer.allocUnsafe(HEADER + FRAME_SAMPLES);
      pkt[0] = 0x80;
      pkt[1] = audio.payloadType;
      pkt.writeUInt16BE((this.#seqBase + this.#index) & 0xffff, 2);
      pkt.writeUInt32BE((this.#tsBase + this.#index * FRAME_SAMPLES) >>> 0, 4);
      pkt.writeUInt32BE(this.#ssrc, 8);
      if (this.#audioOffset + FRAME_SAMPLES > audio.data.length) this.#audioOffset = 0;
      audio.data.copy(pkt, HEADER, this.#audioOffset, this.#audioOffset + FRAME_SAMPLES);
      this.#audioOffset += FRAME_SAMPLES;
      this.#index++;
      this.#socket.send(pkt);
      this.sent++;
    }
  }

  /** Stops sending; the socket keeps counting what still arrives. */
  stopSending(): void {
    this.#media.stopSending(this);
    if (this.mode === 'echo') this.mode = 'recv';
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#media.closed(this);
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }
}
