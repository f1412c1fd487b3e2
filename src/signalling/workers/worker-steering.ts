/**
 * The receiving step of one worker of `tandem start --workers N`. All workers share the node's
 * listening sockets (the cluster module passes each the same UDP socket and spreads accepted
 * TCP/TLS connections), so any worker may read any message. Each message's Call-ID is hashed
 * (byte scan, no parse): slot = hash mod N names the worker holding the call's state. A message
 * of another worker's call is sent on to it over the worker channel; that worker handles it as if
 * it had read it itself and answers straight from the shared socket (or, for a connection another
 * worker holds, through it).
 *
 * While a worker is down (killed, restarting) its slots go to the next running worker, so its
 * calls' messages are still answered (without the transaction state it lost); when it is back
 * they return to it.
 */
import type { Source, TransportOptions } from '../../sip/transport/types.js';
import { callIdHash, callIdHashOf } from './call-id-hash.js';
import type { PeersMessage } from './hub-protocol.js';
import type { WorkerChannel } from './worker-channel.js';

/** Connection ids are `incarnation * 2^32 + n`: each worker process (every restart too) has its own range. */
export const CONNECTION_ID_RANGE = 2 ** 32;

export class WorkerSteering {
  readonly index: number;
  readonly count: number;
  readonly #channel: WorkerChannel;
  /** slot -> worker index serving it now. */
  readonly #owners: number[];
  readonly #alive: boolean[];
  #incarnations = new Map<number, number>();

  constructor(index: number, count: number, channel: WorkerChannel) {
    this.index = index;
    this.count = count;
    this.#channel = channel;
    this.#owners = Array.from({ length: count }, (_, i) => i);
    this.#alive = Array.from({ length: count }, () => true);
  }

  /** The primary's view of which workers run, their channel ports and connection-id ranges. */
  setPeers(m: PeersMessage): void {
    this.#channel.setPeers(m.ports);
    for (let i = 0; i < this.count; i++) this.#alive[i] = i === this.index || (m.ports[i] ?? 0) > 0;
    for (let s = 0; s < this.count; s++) {
      let w = s;
      for (let k = 0; k < this.count && !this.#alive[w]; k++) w = (w + 1) % this.count;
      this.#owners[s] = this.#alive[w] ? w : this.index;
    }
    this.#incarnations = new Map(m.incarnations);
    // One worker reads the shared UDP sockets (the lowest running index): a datagram then wakes
    // one process, not all. When it dies the next one reads; the kernel queue holds the gap.
    let reader = this.index;
    for (let i = 0; i < this.count; i++) {
      if (this.#alive[i]) {
        reader = i;
        break;
      }
    }
    this.onReader?.(reader === this.index);
  }

  /** Told after each change of the running workers whether this worker is the one reading UDP. */
  onReader: ((reads: boolean) => void) | undefined;

  /** Worker that holds the call of `data`. */
  ownerOf(data: Buffer): number {
    const h = callIdHash(data);
    if (h === -1) return this.index;
    if (h < -1) {
      const k = -2 - h;
      return k < this.count && this.#alive[k] ? k : this.index;
    }
    return this.#owners[h % this.count]!;
  }

  /** Worker that holds the call `callId` (a dialog claimed from a dead node goes there). */
  ownerOfCallId(callId: string): number {
    const h = callIdHashOf(callId);
    if (h === -1) return this.index;
    if (h < -1) {
      const k = -2 - h;
      return k < this.count && this.#alive[k] ? k : this.index;
    }
    return this.#owners[h % this.count]!;
  }

  /** `TransportOptions.steer`. */
  readonly steer = (data: Buffer, source: Source): boolean => {
    const owner = this.ownerOf(data);
    if (owner === this.index) return false;
    // Not deliverable (owner just died): handled here rather than lost.
    return this.#channel.forward(owner, data, source);
  };

  /** `TransportOptions.sendElsewhere`: a connection of another worker. */
  readonly sendElsewhere = (data: Buffer, connectionId: number): boolean => {
    const worker = this.#incarnations.get(Math.floor(connectionId / CONNECTION_ID_RANGE));
    if (worker === undefined || worker === this.index) return false;
    return this.#channel.write(worker, connectionId, data);
  };

  /** Transport options for a worker whose process incarnation is `incarnation`. */
  transportOptions(incarnation: number): TransportOptions {
    return { steer: this.steer, sendElsewhere: this.sendElsewhere, connectionIdBase: incarnation * CONNECTION_ID_RANGE + 1 };
  }
}
