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
 * ```
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
const HEADER_MESSAGE = 25;
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
    const h = Buffer.allocUnsafe(HEADER_MESSAGE + address.length + local.length);
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
    this.#socket.send([h, data], port, '127.0.0.1', onSendError);
    steered.inc();
    return true;
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
    try {
      this.#socket.close();
    } catch {
      /* already closed */
    }
  }
}

function onSendError(err: Error | null): void {
  if (err) steerDropped.inc({ reason: 'send_error' });
}
