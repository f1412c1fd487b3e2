import type { Worker } from 'node:worker_threads';
import { emptyRtp, mergeRtp, type RtpTotals } from '../stats.js';
import { spawnWorker } from '../spawn-worker.js';
import { RtpMedia, type RtpMediaOptions, type RtpStream } from './rtp-media.js';

/** Where a UAS keeps its RTP streams: in its own thread or spread over worker threads. */
export interface UasMediaBackend {
  readonly payloadType: number;
  /** Opens a stream socket (echoing from its first packet when `echo`); resolves with its id and local port. */
  open(echo?: boolean): Promise<{ id: number; port: number }>;
  start(id: number, mode: 'echo' | 'send', remote?: { address: string; port: number }): void;
  close(id: number): void;
  snapshot(): RtpTotals;
  shutdown(): Promise<void>;
}

/** Streams in the calling thread. */
export class LocalUasMedia implements UasMediaBackend {
  readonly #media: RtpMedia;
  readonly #streams = new Map<number, RtpStream>();
  #nextId = 1;

  constructor(opts: RtpMediaOptions) {
    this.#media = new RtpMedia(opts);
  }

  get payloadType(): number {
    return this.#media.audio.payloadType;
  }

  async open(echo = false): Promise<{ id: number; port: number }> {
    const s = await this.#media.open();
    if (echo) s.start('echo');
    const id = this.#nextId++;
    this.#streams.set(id, s);
    return { id, port: s.port };
  }

  start(id: number, mode: 'echo' | 'send', remote?: { address: string; port: number }): void {
    this.#streams.get(id)?.start(mode, remote);
  }

  close(id: number): void {
    this.#streams.get(id)?.close();
    this.#streams.delete(id);
  }

  snapshot(): RtpTotals {
    return this.#media.snapshot();
  }

  async shutdown(): Promise<void> {
    this.#media.close();
    this.#streams.clear();
  }
}

/** Messages between the UAS thread and its RTP workers. */
export type RtpWorkerRequest =
  | { op: 'open'; id: number; echo: boolean }
  | { op: 'start'; id: number; mode: 'echo' | 'send'; remote?: { address: string; port: number } }
  | { op: 'close'; id: number }
  | { op: 'snapshot' };
export type RtpWorkerReply =
  | { op: 'opened'; id: number; port: number }
  | { op: 'failed'; id: number; message: string }
  | { op: 'totals'; totals: RtpTotals; final: boolean };

/**
 * Streams spread round-robin over worker threads, each with its own sockets and one pacing
 * timer, so echoing or sending RTP is not bound to the SIP thread's core.
 */
export class WorkerUasMedia implements UasMediaBackend {
  readonly payloadType: number;
  readonly #workers: Worker[] = [];
  readonly #totals: RtpTotals[];
  readonly #owner = new Map<number, number>();
  readonly #pending = new Map<number, { resolve: (v: { id: number; port: number }) => void; reject: (e: Error) => void }>();
  readonly #finals: ((t: RtpTotals) => void)[] = [];
  #nextId = 1;
  #rr = 0;

  constructor(opts: RtpMediaOptions, n: number) {
    this.payloadType = opts.audio?.payloadType ?? 0;
    this.#totals = Array.from({ length: n }, () => emptyRtp());
    for (let i = 0; i < n; i++) {
      const media = { ...opts };
      if (opts.portMin && opts.portMax) {
        // each worker owns an even-aligned slice of the port range
        const slice = Math.max(2, Math.floor((opts.portMax - opts.portMin + 1) / n / 2) * 2);
        media.portMin = opts.portMin + i * slice;
        media.portMax = Math.min(opts.portMax, media.portMin + slice - 1);
      }
      const w = spawnWorker('rtp/rtp-worker', { media, reportMs: 500 });
      w.on('message', (m: RtpWorkerReply) => this.#onReply(i, m));
      w.on('error', () => {
        for (const [id, p] of this.#pending) {
          if (this.#owner.get(id) === i) p.reject(new Error('RTP worker failed'));
        }
      });
      w.unref();
      this.#workers.push(w);
    }
  }

  #onReply(i: number, m: RtpWorkerReply): void {
    if (m.op === 'totals') {
      this.#totals[i] = m.totals;
      if (m.final) this.#finals[i]?.(m.totals);
      return;
    }
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.op === 'opened') p.resolve({ id: m.id, port: m.port });
    else {
      this.#owner.delete(m.id);
      p.reject(new Error(m.message));
    }
  }

  open(echo = false): Promise<{ id: number; port: number }> {
    const id = this.#nextId++;
    const i = this.#rr++ % this.#workers.length;
    this.#owner.set(id, i);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#workers[i]!.postMessage({ op: 'open', id, echo } satisfies RtpWorkerRequest);
    });
  }

  start(id: number, mode: 'echo' | 'send', remote?: { address: string; port: number }): void {
    const i = this.#owner.get(id);
    if (i !== undefined) this.#workers[i]!.postMessage({ op: 'start', id, mode, ...(remote ? { remote } : {}) } satisfies RtpWorkerRequest);
  }

  close(id: number): void {
    const i = this.#owner.get(id);
    if (i === undefined) return;
    this.#owner.delete(id);
    this.#workers[i]!.postMessage({ op: 'close', id } satisfies RtpWorkerRequest);
  }

  snapshot(): RtpTotals {
    return this.#totals.reduce((a, b) => mergeRtp(a, b), emptyRtp());
  }

  /** Asks every worker for its final figures (bounded wait), then stops them. */
  async shutdown(): Promise<void> {
    await Promise.all(
      this.#workers.map(
        (w, i) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 1000);
            this.#finals[i] = () => {
              clearTimeout(t);
              resolve();
            };
            w.postMessage({ op: 'snapshot' } satisfies RtpWorkerRequest);
          }),
      ),
    );
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
