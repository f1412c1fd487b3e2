/**
 * The channel between the workers of one node (`tandem start --workers N`): one UDP socket per
 * worker on 127.0.0.1 (bound exclusive, never shared through the cluster module). A message a
 * worker received for a call another worker holds is sent on here with where it came from; a
 * send over a TCP/TLS connection another worker accepted is handed to that worker the same way.
 * Datagrams keep the framing for free and a send costs one syscall (`sendmsg` with the header
 * and the message as two buffers, no copy).
 *
 * ```
 *  0      1      2                 10        11     12     13      15      17             25
 * +------+------+-----------------+---------+------+------+-------+-------+--------------+----
 * | 0x54 | kind | node token (8)  | transp. | alen | llen | port  | lport | connection id| address, local address, message
 * +------+------+-----------------+---------+------+------+-------+-------+--------------+----
 * kind 1: a received message (above);  kind 2: write on a connection:
 * | 0x54 | 2    | node token (8)  | connection id (float64 BE) | bytes to write
 * kind 3: several received messages for one worker:
 * | 0x54 | 3    | node token (8)  | length (u16 BE) | kind 1 datagram | length | kind 1 datagram | ...
 * ```
 *
 * Messages for a worker are batched: those read in one turn of the event loop (libuv reads up to
 * 32 datagrams per socket per turn) go out in one datagram when that turn ends (`setImmediate`),
 * or as soon as a batch is full. A send and the receiving worker's wake-up, which cost more than
 * the rest of a hand-over, are then paid per batch instead of per message.
 *
 * The token (random per node, given to every worker) keeps other local processes from
 * injecting messages with a forged source.
 */
import dgram from 'node:dgram';
import type { Source, TransportName } from '../../sip/transport/types.js';
import { counter } from '../../util/metrics.js';
import { rateLimitedLog, createLogger } from '../../util/logger.js';

const log = createLogger('workers');
const MAGIC = 0x54;
const KIND_MESSAGE = 1;
const KIND_WRITE = 2;
const KIND_BATCH = 3;
const HEADER_MESSAGE = 25;
const HEADER_BATCH = 10;
/** Most messages in one batch (each takes two buffers of the send's iovec). */
const BATCH_MAX_MESSAGES = 64;
const HEADER_WRITE = 18;
/** Largest UDP payload on loopback. */
const MAX_DATAGRAM = 65_507;

const steered = counter('tandem_workers_steered_total', 'Messages a worker received for a call another worker holds, sent on to it');
const steerDropped = counter('tandem_workers_steer_dropped_total', 'Messages that could not be handed to the worker holding their call, by reason', ['reason']);
const TRANSPORTS: TransportName[] = ['udp', 'tcp', 'tls'];

export interface WorkerChannelEvents {
  /** A message another worker received for a call of ours. */
  onMessage(data: Buffer, source: Source): void;
  /** Bytes another worker asks us to write on one of our connections. */
  onWrite(connectionId: number, data: Buffer): void;
}

export class WorkerChannel {
  readonly #socket: dgram.Socket;
  readonly #token: Buffer;
  readonly #events: WorkerChannelEvents;
  /** Channel port of each worker index (0: unknown or down). */
  #ports: number[] = [];
  #port = 0;
  /** Messages waiting to go to each worker index, and their sources (to handle them here if it goes down). */
  #pending: Pending[] = [];
  #flushScheduled = false;
  readonly #flushAll = (): void => {
    this.#flushScheduled = false;
    for (let i = 0; i < this.#pending.length; i++) this.#flush(i);
  };

  constructor(token: Buffer, events: WorkerChannelEvents) {
    if (token.length !== 8) throw new Error('worker channel token must be 8 bytes');
    this.#token = token;
    this.#events = events;
    this.#socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024, sendBufferSize: 8 * 1024 * 1024 });
    this.#socket.on('message', (buf) => this.#onDatagram(buf));
    this.#socket.on('error', (err) => rateLimitedLog('worker-channel-error', (s) => log.warn({ err, suppressed: s }, 'worker channel socket error')));
  }

  /** Binds 127.0.0.1 on a free port (exclusive); returns it. */
  async open(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind({ address: '127.0.0.1', port: 0, exclusive: true }, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
    this.#port = this.#socket.address().port;
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  /** Channel ports of the workers, by index (0 for a worker that is down). */
  setPeers(ports: number[]): void {
    this.#ports = ports;
  }

  /** Sends a received message on to worker `index`; false when it cannot (worker down, too big). */
  forward(index: number, data: Buffer, source: Source): boolean {
    const port = this.#ports[index];
    if (!port) {
      steerDropped.inc({ reason: 'worker_down' });
      return false;
    }
    const address = Buffer.from(source.address, 'latin1');
    const local = Buffer.from(source.localAddress, 'latin1');
    if (HEADER_MESSAGE + address.length + local.length + data.length > MAX_DATAGRAM || address.length > 255 || local.length > 255) {
      steerDropped.inc({ reason: 'too_big' });
      return false;
    }
    // The record's length (for a batch) then its kind 1 header, in one buffer.
    const rec = Buffer.allocUnsafe(2 + HEADER_MESSAGE + address.length + local.length);
    const h = rec.subarray(2);
    h[0] = MAGIC;
    h[1] = KIND_MESSAGE;
    this.#token.copy(h, 2);
    h[10] = TRANSPORTS.indexOf(source.transport);
    h[11] = address.length;
    h[12] = local.length;
    h.writeUInt16BE(source.port & 0xffff, 13);
    h.writeUInt16BE(source.localPort & 0xffff, 15);
    h.writeDoubleBE(source.connectionId ?? -1, 17);
    address.copy(h, HEADER_MESSAGE);
    local.copy(h, HEADER_MESSAGE + address.length);
    const size = h.length + data.length;
    rec.writeUInt16BE(size, 0);
    let q = this.#pending[index];
    if (q !== undefined && (q.bytes + 2 + size > MAX_DATAGRAM || q.messages.length === BATCH_MAX_MESSAGES)) this.#flush(index);
    q = this.#pending[index] ??= { buffers: [], bytes: HEADER_BATCH, messages: [], sources: [] };
    q.buffers.push(rec, data);
    q.bytes += 2 + size;
    q.messages.push(data);
    q.sources.push(source);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flushAll);
    }
    steered.inc();
    return true;
  }

  /** Sends worker `index` its waiting messages, one datagram; handles them here if it went down meanwhile. */
  #flush(index: number): void {
    const q = this.#pending[index];
    if (q === undefined || q.messages.length === 0) return;
    const { buffers, messages, sources } = q;
    this.#pending[index] = { buffers: [], bytes: HEADER_BATCH, messages: [], sources: [] };
    const port = this.#ports[index];
    if (!port) {
      for (let i = 0; i < messages.length; i++) this.#deliver(messages[i]!, sources[i]!);
      return;
    }
    if (messages.length === 1) {
      // One message: sent as such (kind 1), without the batch framing.
      this.#socket.send([buffers[0]!.subarray(2), buffers[1]!], port, '127.0.0.1', onSendError);
      return;
    }
    const head = Buffer.allocUnsafe(HEADER_BATCH);
    head[0] = MAGIC;
    head[1] = KIND_BATCH;
    this.#token.copy(head, 2);
    buffers.unshift(head);
    this.#socket.send(buffers, port, '127.0.0.1', onSendError);
  }

  /** A message handled by this worker after all (its owner went down before the batch left). */
  #deliver(data: Buffer, source: Source): void {
    try {
      this.#events.onMessage(data, source);
    } catch (err) {
      rateLimitedLog('worker-channel-fault', (s) => log.error({ err, suppressed: s }, 'worker channel handler failed'));
    }
  }

  /** Asks worker `index` to write `data` on its connection `connectionId`. */
  write(index: number, connectionId: number, data: Buffer): boolean {
    const port = this.#ports[index];
    if (!port || HEADER_WRITE + data.length > MAX_DATAGRAM) {
      steerDropped.inc({ reason: port ? 'too_big' : 'worker_down' });
      return false;
    }
    const h = Buffer.allocUnsafe(HEADER_WRITE);
    h[0] = MAGIC;
    h[1] = KIND_WRITE;
    this.#token.copy(h, 2);
    h.writeDoubleBE(connectionId, 10);
    this.#socket.send([h, data], port, '127.0.0.1', onSendError);
    return true;
  }

  #onDatagram(buf: Buffer): void {
    if (buf.length >= HEADER_BATCH && buf[1] === KIND_BATCH) {
      if (buf[0] !== MAGIC || !this.#token.equals(buf.subarray(2, 10))) {
        steerDropped.inc({ reason: 'bad_channel_datagram' });
        return;
      }
      // each record is a kind 1 datagram (checked as one: its own magic and token)
      let at = HEADER_BATCH;
      while (at + 2 <= buf.length) {
        const len = buf.readUInt16BE(at);
        const end = at + 2 + len;
        if (end > buf.length || buf[at + 3] === KIND_BATCH) {
          steerDropped.inc({ reason: 'bad_channel_datagram' });
          return;
        }
        this.#onDatagram(buf.subarray(at + 2, end));
        at = end;
      }
      return;
    }
    try {
      if (buf.length < HEADER_WRITE || buf[0] !== MAGIC || !this.#token.equals(buf.subarray(2, 10))) {
        steerDropped.inc({ reason: 'bad_channel_datagram' });
        return;
      }
      if (buf[1] === KIND_WRITE) {
        this.#events.onWrite(buf.readDoubleBE(10), buf.subarray(HEADER_WRITE));
        return;
      }
      if (buf[1] !== KIND_MESSAGE || buf.length < HEADER_MESSAGE) return;
      const alen = buf[11]!;
      const llen = buf[12]!;
      const body = HEADER_MESSAGE + alen + llen;
      const transport = TRANSPORTS[buf[10]!];
      if (!transport || body > buf.length) return;
      const connectionId = buf.readDoubleBE(17);
      const source: Source = {
        transport,
        address: buf.toString('latin1', HEADER_MESSAGE, HEADER_MESSAGE + alen),
        port: buf.readUInt16BE(13),
        localAddress: buf.toString('latin1', HEADER_MESSAGE + alen, body),
        localPort: buf.readUInt16BE(15),
        ...(connectionId >= 0 ? { connectionId } : {}),
      };
      this.#events.onMessage(buf.subarray(body), source);
    } catch (err) {
      rateLimitedLog('worker-channel-fault', (s) => log.error({ err, suppressed: s }, 'worker channel handler failed'));
    }
  }

  close(): void {
    this.#pending = [];
    try {
      this.#socket.close();
    } catch {
      /* already closed */
    }
  }
}

interface Pending {
  /** Per message: its length (2 bytes) and kind 1 header in one buffer, then the message. */
  buffers: Buffer[];
  /** Size of the batch datagram so far. */
  bytes: number;
  messages: Buffer[];
  sources: Source[];
}

function onSendError(err: Error | null): void {
  if (err) steerDropped.inc({ reason: 'send_error' });
}
