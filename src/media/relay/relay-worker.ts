/**
 * Forwarding worker: owns the UDP sockets of the pairs the control thread gives it and relays
 * packets between the two legs of each pair. The per-packet path (Channel.onPeerMessage and
 * Channel.onMessage) allocates nothing itself beyond a new SSRC's stats, parses only the
 * 12-octet fixed header, and never throws out of the handler.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { RtpStreamStats } from '../../rtp/stream-stats.js';
import { staticClockRate } from '../../rtp/rtp-header.js';
import { createLogger, escapeSnippet, rateLimitedLog } from '../../util/logger.js';
import type { ChannelStats, Endpoint, LegStats, PairStats, Side } from './types.js';
import type { ControlToWorker, WorkerCounters, WorkerToControl } from './worker-protocol.js';

const { index: workerIndex, bindAddress, socketBufferBytes } = workerData as {
  index: number;
  bindAddress: string;
  socketBufferBytes: number;
};
const log = createLogger(`relay-worker-${workerIndex}`);
const port = parentPort!;
const timeOrigin = performance.timeOrigin;

/** Drop reasons, indexed like DROP_REASONS. */
const DROP_MALFORMED = 0;
const DROP_NO_PEER = 1;
const DROP_STRICT = 2;
const DROP_SEND = 3;

const KIND_RTP = 0;
const KIND_RTCP = 1;

/** dgram calls this for every send to a non-connected socket; peers are always IP literals. */
function literalLookup(address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

function newSocket(): Socket {
  return createSocket({
    type: socketType,
    reuseAddr: true,
    recvBufferSize: socketBufferBytes,
    sendBufferSize: socketBufferBytes,
    lookup: literalLookup as never,
  });
}

/** dgram keeps its UDP handle under this symbol (Node 12+); found once, by description. */
let stateSymbol: symbol | undefined | null = null;

/**
 * Delivers each datagram of a bound `sock` to `fn`. Where the socket's UDP handle can be reached, its
 * `onmessage` hook is set directly: that skips dgram's EventEmitter dispatch (a megamorphic
 * lookup when sockets carry different listener sets) and its `rinfo.size` property addition,
 * both measurable at 100k packets/s. Otherwise it falls back to the 'message' event. Receive
 * errors still go to the socket's 'error' event as dgram would emit them.
 */
function onDatagram(sock: Socket, fn: (msg: Buffer, rinfo: RemoteInfo) => void): void {
  if (stateSymbol === null) {
    stateSymbol = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  }
  const handle = stateSymbol ? ((sock as unknown as Record<symbol, { handle?: { onmessage?: unknown } }>)[stateSymbol]?.handle) : undefined;
  if (!handle || typeof handle.onmessage !== 'function') {
    sock.on('message', fn);
    return;
  }
  handle.onmessage = (nread: number, _handle: unknown, buf: Buffer, rinfo: RemoteInfo): void => {
    if (nread < 0) {
      sock.emit('error', Object.assign(new Error(`recvmsg failed (${nread})`), { errno: nread, syscall: 'recvmsg' }));
      return;
    }
    fn(buf, rinfo);
  };
}

function closeQuietly(sock: Socket): void {
  try {
    sock.close();
  } catch {
    // not bound yet or already closed
  }
}

const socketType = bindAddress.includes(':') ? 'udp6' : 'udp4';

/** Set when the worker stops: no new sockets. */
let closing = false;

/** One socket of a leg (its RTP or its RTCP port) and the peer behind it. */
class Channel {
  readonly kind: number;
  readonly pair: Pair;
  readonly side: Side;
  readonly localPort: number;
  socket: Socket;
  /** Connected twin of `socket` (same local port), once the peer address is settled. */
  conn: Socket | null = null;
  connPending: Socket | null = null;
  /** The channel of the same kind on the other leg: what arrives here goes out of there. */
  other!: Channel;
  /** Where this channel's peer is; what the other leg receives is sent here. Port 0 = unknown. */
  peerAddress = '';
  peerPort = 0;
  /** The peer's address from SDP (setPeer); latching may replace peerAddress/peerPort. */
  sdpAddress = '';
  sdpPort = 0;
  /** Latching: learn peerAddress/peerPort from the first packet received. Symmetric by default. */
  latch = true;
  strict = false;
  latched = false;
  clockRate = 8000;
  packets = 0;
  bytes = 0;
  forwarded = 0;
  lastArrivalMs = 0;
  dropped = [0, 0, 0, 0];
  /** Streams received here, by SSRC; the last one is cached since a leg rarely has more than one. */
  streams: Map<number, RtpStreamStats> | null = null;
  lastStream: RtpStreamStats | null = null;
  rtcpMuxPackets = 0;
  /** Set when the pair is closed: no new twin sockets. */
  dead = false;

  constructor(pair: Pair, side: Side, kind: number, localPort: number) {
    this.pair = pair;
    this.side = side;
    this.kind = kind;
    this.localPort = localPort;
    this.socket = newSocket();
  }

  /** After a successful bind: start receiving; later socket errors are logged, never fatal. */
  guard(): void {
    this.socket.on('error', (err) => this.onSocketError(err));
    onDatagram(this.socket, (msg, rinfo) => this.onMessage(msg, rinfo));
  }

  onSocketError(err: Error): void {
    rateLimitedLog(`relay-sock-err-${workerIndex}`, (suppressed) => log.warn({ err, port: this.localPort, suppressed }, 'media socket error'));
  }

  /**
   * Once the peer's address is settled (latched, or fixed by SDP when not latching), a second
   * socket is bound to the same local port (SO_REUSEADDR) and connected to the peer. Sends go
   * out of it (the kernel keeps the route; no per-packet address parsing), and the kernel
   * delivers the peer's packets to it in preference to the unconnected socket, so they skip the
   * source checks. Packets from anyone else still reach the unconnected socket.
   */
  connectPeer(): void {
    this.disconnectPeer();
    if (this.peerPort === 0 || this.dead || closing) return;
    const sock = newSocket();
    const address = this.peerAddress;
    const peerPort = this.peerPort;
    this.connPending = sock;
    sock.on('error', (err) => this.onSocketError(err));
    try {
      sock.bind({ address: bindAddress, port: this.localPort, exclusive: true }, () => {
        // Until connected, whatever reaches this socket is checked like any other packet.
        onDatagram(sock, (msg, rinfo) => (this.conn === sock ? this.onPeerMessage(msg) : this.onMessage(msg, rinfo)));
        if (this.connPending !== sock) return;
        sock.connect(peerPort, address, (err?: Error) => {
          if (this.connPending !== sock) return;
          this.connPending = null;
          if (err) {
            this.onSocketError(err);
            closeQuietly(sock);
            return;
          }
          this.conn = sock;
        });
      });
    } catch (err) {
      this.connPending = null;
      this.onSocketError(err as Error);
      closeQuietly(sock);
    }
  }

  disconnectPeer(): void {
    if (this.conn) closeQuietly(this.conn);
    if (this.connPending) closeQuietly(this.connPending);
    this.conn = null;
    this.connPending = null;
  }

  /** Fast path: a packet on the connected socket, so from the peer itself. */
  onPeerMessage(msg: Buffer): void {
    try {
      const len = msg.length;
      if (len < 8 || (msg[0]! & 0xc0) !== 0x80) return this.dropFromPeer(DROP_MALFORMED, msg);
      const b1 = msg[1]!;
      const rtcpType = b1 >= 192 && b1 <= 223;
      if (this.kind === KIND_RTP) {
        if (rtcpType) this.rtcpMuxPackets++;
        else if (len < 12) return this.dropFromPeer(DROP_MALFORMED, msg);
      } else if (!rtcpType) return this.dropFromPeer(DROP_MALFORMED, msg);
      this.accept(msg, len, this.kind === KIND_RTP && !rtcpType);
      const o = this.other;
      const c = o.conn;
      if (c !== null) c.send(msg);
      else if (o.peerPort !== 0) o.socket.send(msg, o.peerPort, o.peerAddress);
      else return void this.dropped[DROP_NO_PEER]!++;
      this.forwarded++;
    } catch (err) {
      this.sendFailed(err, this.peerAddress, this.peerPort);
    }
  }

  accept(msg: Buffer, len: number, rtp: boolean): void {
    const now = performance.now();
    this.packets++;
    this.bytes += len;
    this.lastArrivalMs = now;
    if (rtp) {
      const ssrc = ((msg[8]! << 24) | (msg[9]! << 16) | (msg[10]! << 8) | msg[11]!) >>> 0;
      let s = this.lastStream;
      if (s === null || s.ssrc !== ssrc) s = this.stream(ssrc, msg[1]! & 0x7f);
      s.update((msg[2]! << 8) | msg[3]!, ((msg[4]! << 24) | (msg[5]! << 16) | (msg[6]! << 8) | msg[7]!) >>> 0, len, now);
    }
  }

  sendFailed(err: unknown, address: string, port: number): void {
    this.dropped[DROP_SEND]!++;
    rateLimitedLog(`relay-fwd-${workerIndex}`, (suppressed) =>
      log.warn({ err, from: `${address}:${port}`, port: this.localPort, suppressed }, 'media packet not forwarded'),
    );
  }

  dropFromPeer(reason: number, msg: Buffer): void {
    this.dropped[reason]!++;
    rateLimitedLog(`relay-drop-${workerIndex}-${reason}`, (suppressed) =>
      log.debug({ from: `${this.peerAddress}:${this.peerPort}`, port: this.localPort, reason, snippet: escapeSnippet(msg, 24), suppressed }, 'media packet dropped'),
    );
  }

  /** A packet on the unconnected socket: source checks and latching apply. */
  onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    try {
      const len = msg.length;
      // RTP needs 12 octets, RTCP 8; both are version 2 (RFC 3550 5.1, 6.4.1). On the RTP port,
      // RTCP types (second octet 192..223) are multiplexed RTCP (RFC 5761 4).
      if (len < 8 || (msg[0]! & 0xc0) !== 0x80) return this.drop(DROP_MALFORMED, msg, rinfo);
      const b1 = msg[1]!;
      const rtcpType = b1 >= 192 && b1 <= 223;
      if (this.kind === KIND_RTP) {
        if (rtcpType) this.rtcpMuxPackets++;
        else if (len < 12) return this.drop(DROP_MALFORMED, msg, rinfo);
      } else if (!rtcpType) return this.drop(DROP_MALFORMED, msg, rinfo);
      if (this.latched) {
        if (this.strict && (rinfo.port !== this.peerPort || rinfo.address !== this.peerAddress)) return this.drop(DROP_STRICT, msg, rinfo);
      } else if (this.latch) {
        this.peerAddress = rinfo.address;
        this.peerPort = rinfo.port;
        this.latched = true;
        this.notifyLatched();
        this.connectPeer();
      } else if (this.strict && (rinfo.port !== this.peerPort || rinfo.address !== this.peerAddress)) {
        return this.drop(DROP_STRICT, msg, rinfo);
      }
      this.accept(msg, len, this.kind === KIND_RTP && !rtcpType);
      const o = this.other;
      const c = o.conn;
      if (c !== null) c.send(msg);
      else if (o.peerPort !== 0) o.socket.send(msg, o.peerPort, o.peerAddress);
      else return this.drop(DROP_NO_PEER, msg, rinfo);
      this.forwarded++;
    } catch (err) {
      this.sendFailed(err, rinfo.address, rinfo.port);
    }
  }

  drop(reason: number, msg: Buffer, rinfo: RemoteInfo): void {
    this.dropped[reason]!++;
    if (reason === DROP_NO_PEER) return;
    rateLimitedLog(`relay-drop-${workerIndex}-${reason}`, (suppressed) =>
      log.debug(
        { from: `${rinfo.address}:${rinfo.port}`, port: this.localPort, reason, snippet: escapeSnippet(msg, 24), suppressed },
        'media packet dropped',
      ),
    );
  }

  stream(ssrc: number, payloadType: number): RtpStreamStats {
    if (this.streams === null) this.streams = new Map();
    let s = this.streams.get(ssrc);
    if (s === undefined) {
      // Bound the table: a peer cycling SSRCs must not grow memory without limit.
      if (this.streams.size >= 64) this.streams.delete(this.streams.keys().next().value!);
      s = new RtpStreamStats(ssrc, staticClockRate(payloadType) ?? this.clockRate);
      this.streams.set(ssrc, s);
    }
    this.lastStream = s;
    return s;
  }

  notifyLatched(): void {
    const msg: WorkerToControl = {
      t: 'latched',
      id: this.pair.id,
      side: this.side,
      kind: this.kind === KIND_RTP ? 'rtp' : 'rtcp',
      endpoint: { address: this.peerAddress, port: this.peerPort },
    };
    port.postMessage(msg);
  }

  /** `latched`: the peer was latched already (by the node that ran the pair before a takeover). */
  setPeer(ep: Endpoint | undefined, latch: boolean, strict: boolean, clockRate: number, latched?: Endpoint): void {
    const wasLatch = this.latch;
    this.latch = latch;
    this.strict = strict;
    this.clockRate = clockRate;
    if (ep) {
      // A new SDP address restarts latching (re-INVITE, media moved).
      if (!this.latched || ep.address !== this.sdpAddress || ep.port !== this.sdpPort || wasLatch !== latch) {
        this.sdpAddress = ep.address;
        this.sdpPort = ep.port;
        this.peerAddress = ep.address;
        this.peerPort = ep.port;
        this.latched = false;
        this.disconnectPeer();
        // Asymmetric: the SDP address is final.
        if (!latch) this.connectPeer();
      }
      if (latched && latch && latched.port !== 0 && (!this.latched || latched.address !== this.peerAddress || latched.port !== this.peerPort)) {
        this.peerAddress = latched.address;
        this.peerPort = latched.port;
        this.latched = true;
        this.connectPeer();
      }
    }
  }

  droppedTotal(): number {
    const d = this.dropped;
    return d[0]! + d[1]! + d[2]! + d[3]!;
  }

  stats(): ChannelStats {
    return {
      packets: this.packets,
      bytes: this.bytes,
      errors: this.droppedTotal(),
      forwarded: this.forwarded,
      lastPacketMs: this.lastArrivalMs === 0 ? 0 : Math.round(timeOrigin + this.lastArrivalMs),
      ...(this.peerPort !== 0 ? { endpoint: { address: this.peerAddress, port: this.peerPort } } : {}),
      latched: this.latched,
    };
  }

  addTo(c: WorkerCounters): void {
    if (this.kind === KIND_RTP) {
      c.rtpPackets += this.packets;
      c.rtpBytes += this.bytes;
      c.rtpErrors += this.droppedTotal();
    } else {
      c.rtcpPackets += this.packets;
      c.rtcpBytes += this.bytes;
      c.rtcpErrors += this.droppedTotal();
    }
    c.forwarded += this.forwarded;
    for (let i = 0; i < 4; i++) c.dropped[i] = (c.dropped[i] ?? 0) + this.dropped[i]!;
  }
}

class Pair {
  readonly id: number;
  readonly callKey: string;
  readonly createdMs = Date.now();
  readonly createdPerf = performance.now();
  readonly channels: Channel[];

  constructor(id: number, callKey: string, ports: [number, number, number, number]) {
    this.id = id;
    this.callKey = callKey;
    const aRtp = new Channel(this, 'a', KIND_RTP, ports[0]);
    const aRtcp = new Channel(this, 'a', KIND_RTCP, ports[1]);
    const bRtp = new Channel(this, 'b', KIND_RTP, ports[2]);
    const bRtcp = new Channel(this, 'b', KIND_RTCP, ports[3]);
    aRtp.other = bRtp;
    bRtp.other = aRtp;
    aRtcp.other = bRtcp;
    bRtcp.other = aRtcp;
    this.channels = [aRtp, aRtcp, bRtp, bRtcp];
  }

  async bind(address: string): Promise<{ ok: boolean; failedPort?: number; error?: string }> {
    const results = await Promise.all(
      this.channels.map(
        (ch) =>
          new Promise<string | undefined>((resolve) => {
            const onError = (err: Error): void => resolve(err.message);
            ch.socket.once('error', onError);
            try {
              ch.socket.bind({ address, port: ch.localPort, exclusive: true }, () => {
                ch.socket.off('error', onError);
                ch.guard();
                resolve(undefined);
              });
            } catch (err) {
              resolve((err as Error).message);
            }
          }),
      ),
    );
    const i = results.findIndex((r) => r !== undefined);
    if (i < 0) return { ok: true };
    await this.close();
    return { ok: false, failedPort: this.channels[i]!.localPort, error: results[i] };
  }

  async close(): Promise<void> {
    for (const ch of this.channels) {
      ch.dead = true;
      ch.disconnectPeer();
    }
    await Promise.all(
      this.channels.map(
        (ch) =>
          new Promise<void>((resolve) => {
            try {
              ch.socket.close(() => resolve());
            } catch {
              resolve(); // never bound or already closed
            }
          }),
      ),
    );
  }

  legStats(side: Side): LegStats {
    const [rtp, rtcp] = side === 'a' ? [this.channels[0]!, this.channels[1]!] : [this.channels[2]!, this.channels[3]!];
    const ssrcs = [...(rtp.streams?.values() ?? [])].map((s) => ({
      ssrc: s.ssrc,
      packets: s.packets,
      bytes: s.bytes,
      lost: s.lost,
      extendedHighestSeq: s.extendedMax,
      lastSeq: s.lastSeq,
      lastTimestamp: s.lastTimestamp,
      jitter: Math.round(s.jitter * 100) / 100,
      jitterMs: Math.round((s.jitter / s.clockRate) * 1000 * 100) / 100,
      clockRate: s.clockRate,
      lastPacketMs: Math.round(timeOrigin + s.lastArrivalMs),
    }));
    return { ports: { rtpPort: rtp.localPort, rtcpPort: rtcp.localPort }, rtp: rtp.stats(), rtcp: rtcp.stats(), ssrcs };
  }

  stats(): PairStats {
    return { id: this.id, callKey: this.callKey, createdMs: this.createdMs, a: this.legStats('a'), b: this.legStats('b') };
  }

  lastActivity(): number {
    let last = this.createdPerf;
    for (const ch of this.channels) if (ch.lastArrivalMs > last) last = ch.lastArrivalMs;
    return last;
  }
}

const pairs = new Map<number, Pair>();
const retired: WorkerCounters = { rtpPackets: 0, rtpBytes: 0, rtpErrors: 0, rtcpPackets: 0, rtcpBytes: 0, rtcpErrors: 0, forwarded: 0, dropped: [0, 0, 0, 0] };

function counters(): WorkerCounters {
  const c: WorkerCounters = { ...retired, dropped: [...retired.dropped] };
  for (const p of pairs.values()) for (const ch of p.channels) ch.addTo(c);
  return c;
}

function reply(req: number, value: unknown): void {
  const msg: WorkerToControl = { t: 'reply', req, value };
  port.postMessage(msg);
}

async function closePair(p: Pair): Promise<void> {
  pairs.delete(p.id);
  for (const ch of p.channels) ch.addTo(retired);
  await p.close();
}

async function handle(msg: ControlToWorker): Promise<void> {
  switch (msg.t) {
    case 'open': {
      const p = new Pair(msg.id, msg.callKey, msg.ports);
      const res = await p.bind(bindAddress);
      if (res.ok) pairs.set(p.id, p);
      reply(msg.req, res);
      return;
    }
    case 'peer': {
      const p = pairs.get(msg.id);
      if (!p) return;
      const [rtp, rtcp] = msg.side === 'a' ? [p.channels[0]!, p.channels[1]!] : [p.channels[2]!, p.channels[3]!];
      rtp.setPeer(msg.rtp, msg.latch, msg.strict, msg.clockRate, msg.latchedRtp);
      rtcp.setPeer(msg.rtcp, msg.latch, msg.strict, msg.clockRate, msg.latchedRtcp);
      return;
    }
    case 'close': {
      const p = pairs.get(msg.id);
      if (p) await closePair(p);
      reply(msg.req, true);
      return;
    }
    case 'stats':
      reply(msg.req, pairs.get(msg.id)?.stats());
      return;
    case 'idle': {
      const cutoff = performance.now() - msg.idleMs;
      const ids: number[] = [];
      for (const p of pairs.values()) if (p.lastActivity() <= cutoff) ids.push(p.id);
      reply(msg.req, ids);
      return;
    }
    case 'totals':
      reply(msg.req, counters());
      return;
    case 'stop': {
      closing = true;
      await Promise.all([...pairs.values()].map((p) => closePair(p)));
      reply(msg.req, counters());
      return;
    }
  }
}

port.on('message', (msg: ControlToWorker) => {
  handle(msg).catch((err: unknown) => {
    log.error({ err, t: msg.t }, 'relay worker control message failed');
    if ('req' in msg) reply(msg.req, undefined);
  });
});
const ready: WorkerToControl = { t: 'ready' };
port.postMessage(ready);
