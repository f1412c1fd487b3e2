import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { fail, ok, type Result } from '../util/result.js';
import { bdecode, bencode, type BDict } from './bencode.js';
import { isDict } from './ng-message.js';

/** Options of {@link NgClient}. */
export interface NgClientOptions {
  /** Media node's ng address (IPv4/IPv6 literal). */
  host: string;
  /** Media node's ng UDP port. */
  port: number;
  /** Retransmissions after the first send when no reply comes (Kamailio `rtpengine_retr`). @default 5 */
  retransmits?: number;
  /** Interval between (re)transmissions, ms. @default 1000 */
  retransmitIntervalMs?: number;
  /** Give up after this long, ms. @default (retransmits + 1) * retransmitIntervalMs */
  timeoutMs?: number;
  /** Local address to bind. @default any */
  localAddress?: string;
}

/** Common call identification for offer/answer/delete/query. */
export interface NgCallRef {
  callId: string;
  fromTag: string;
  toTag?: string;
  viaBranch?: string;
}

/** Options of offer/answer. Extra ng keys go in `extra` verbatim. */
export interface NgOfferOptions extends NgCallRef {
  sdp: string;
  /** Address the SIP message came from; the media node uses it instead of SDP addresses unless `trust-address`. */
  receivedFrom?: string;
  /** ng flags, e.g. `['trust-address']`, `['symmetric']`, `['strict-source']`. */
  flags?: string[];
  /** `replace` list, e.g. `['origin', 'session-connection']`. */
  replace?: string[];
  ice?: 'remove' | 'force' | 'default' | 'optional';
  transportProtocol?: string;
  label?: string;
  extra?: Record<string, unknown>;
}

/** Successful offer/answer: the rewritten SDP and the full reply. */
export interface NgSdpReply {
  sdp: string;
  reply: BDict;
}

/** Error codes returned by NgClient. */
export type NgClientErrorCode = 'NG_ERR_TIMEOUT' | 'NG_ERR_REMOTE' | 'NG_ERR_LOAD_LIMIT' | 'NG_ERR_BAD_REPLY' | 'NG_ERR_SEND' | 'NG_ERR_CLOSED';

interface Pending {
  resolve: (r: Result<BDict>) => void;
  timer: NodeJS.Timeout;
  retransmitTimer: NodeJS.Timeout;
}

/**
 * ng client for controllers (the signalling node uses it to drive media nodes).
 *
 * One UDP socket per client; every request gets a unique cookie and is resent with the same
 * cookie every `retransmitIntervalMs` up to `retransmits` times, like Kamailio's rtpengine module,
 * so the server's cookie cache turns retransmissions into one execution. Never throws: every
 * call resolves to a Result (`NG_ERR_TIMEOUT`, `NG_ERR_REMOTE` carrying `error-reason`,
 * `NG_ERR_LOAD_LIMIT` when the node is full and another should be tried).
 *
 * ```ts
 * const ng = new NgClient({ host: '127.0.0.1', port: 2223 });
 * const o = await ng.offer({ callId, fromTag, sdp, receivedFrom: '192.0.2.1', flags: ['trust-address'] });
 * if (o.ok) sendInvite(o.value.sdp);
 * const a = await ng.answer({ callId, fromTag, toTag, sdp: answerSdp });
 * await ng.delete({ callId, fromTag });
 * ng.close();
 * ```
 */
export class NgClient {
  readonly #opts: Required<Omit<NgClientOptions, 'localAddress'>> & { localAddress?: string };
  #socket: dgram.Socket | undefined;
  #ready: Promise<void> | undefined;
  readonly #pending = new Map<string, Pending>();
  readonly #prefix = randomBytes(6).toString('hex');
  #seq = 0;
  #closed = false;

  constructor(opts: NgClientOptions) {
    const retransmits = opts.retransmits ?? 5;
    const retransmitIntervalMs = opts.retransmitIntervalMs ?? 1000;
    this.#opts = {
      host: opts.host,
      port: opts.port,
      retransmits,
      retransmitIntervalMs,
      timeoutMs: opts.timeoutMs ?? (retransmits + 1) * retransmitIntervalMs,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    };
  }

  /** The `host:port` this client talks to. */
  get target(): string {
    return `${this.#opts.host}:${this.#opts.port}`;
  }

  #open(): Promise<void> {
    if (this.#ready) return this.#ready;
    const type = isIP(this.#opts.host) === 6 ? 'udp6' : 'udp4';
    const socket = dgram.createSocket(type);
    this.#socket = socket;
    socket.on('message', (msg) => this.#onMessage(msg));
    socket.on('error', () => {
      /* ICMP errors etc.: the request times out */
    });
    this.#ready = new Promise((resolve) => {
      // exclusive: in a cluster worker (`tandem start --workers N`) a shared port-0 socket would
      // hand one worker's replies to another.
      socket.bind({ port: 0, exclusive: true, ...(this.#opts.localAddress ? { address: this.#opts.localAddress } : {}) }, () => {
        socket.unref();
        resolve();
      });
    });
    return this.#ready;
  }

  #onMessage(msg: Buffer): void {
    const idx = msg.indexOf(0x20);
    if (idx <= 0) return;
    const cookie = msg.toString('latin1', 0, idx);
    const p = this.#pending.get(cookie);
    if (!p) return; // late duplicate reply
    this.#finish(cookie, p, (() => {
      const d = bdecode(msg.subarray(idx + 1), { strings: 'utf8' });
      if (!d.ok) return fail('NG_ERR_BAD_REPLY', d.reason);
      if (!isDict(d.value)) return fail('NG_ERR_BAD_REPLY', 'reply is not a dictionary');
      return ok(d.value);
    })());
  }

  #finish(cookie: string, p: Pending, r: Result<BDict>): void {
    clearTimeout(p.timer);
    clearInterval(p.retransmitTimer);
    this.#pending.delete(cookie);
    p.resolve(r);
  }

  /** Sends a raw command dictionary; resolves to the reply dictionary whatever its `result`. */
  async request(dict: Record<string, unknown>): Promise<Result<BDict>> {
    if (this.#closed) return fail('NG_ERR_CLOSED', 'client closed');
    await this.#open();
    const socket = this.#socket!;
    const cookie = `${this.#prefix}_${++this.#seq}`;
    let msg: Buffer;
    try {
      msg = Buffer.concat([Buffer.from(`${cookie} `, 'latin1'), bencode(dict, 'utf8')]);
    } catch (err) {
      return fail('NG_ERR_SEND', String(err));
    }
    return new Promise((resolve) => {
      const send = (): void => {
        socket.send(msg, this.#opts.port, this.#opts.host, () => {
          /* send errors surface as timeouts */
        });
      };
      let sent = 0;
      const p: Pending = {
        resolve,
        timer: setTimeout(() => this.#finish(cookie, p, fail('NG_ERR_TIMEOUT', `no reply from ${this.target}`)), this.#opts.timeoutMs),
        retransmitTimer: setInterval(() => {
          if (++sent > this.#opts.retransmits) return clearInterval(p.retransmitTimer);
          send();
        }, this.#opts.retransmitIntervalMs),
      };
      this.#pending.set(cookie, p);
      send();
    });
  }

  /** Sends a command and maps `result` to a Result: ok/pong -> ok, error -> NG_ERR_REMOTE, load limit -> NG_ERR_LOAD_LIMIT. */
  async command(dict: Record<string, unknown>): Promise<Result<BDict>> {
    const r = await this.request(dict);
    if (!r.ok) return r;
    const result = r.value['result'];
    if (result === 'ok' || result === 'pong') return r;
    if (result === 'load limit') return fail('NG_ERR_LOAD_LIMIT', String(r.value['message'] ?? 'load limit'));
    if (result === 'error') return fail('NG_ERR_REMOTE', String(r.value['error-reason'] ?? 'error'));
    return fail('NG_ERR_BAD_REPLY', `unexpected result ${JSON.stringify(String(result))}`);
  }

  /** `ping`: ok when the node answers `pong`. */
  async ping(): Promise<Result<true>> {
    const r = await this.command({ command: 'ping' });
    if (!r.ok) return r;
    return r.value['result'] === 'pong' ? ok(true) : fail('NG_ERR_BAD_REPLY', 'no pong');
  }

  offer(o: NgOfferOptions): Promise<Result<NgSdpReply>> {
    return this.#sdpCommand('offer', o);
  }

  /** `answer`: `toTag` is required. */
  answer(o: NgOfferOptions & { toTag: string }): Promise<Result<NgSdpReply>> {
    return this.#sdpCommand('answer', o);
  }

  /** `delete`: the reply carries the call's final statistics. */
  /** `deleteDelaySec` is whole seconds (bencode has only integers). */
  delete(ref: NgCallRef & { flags?: string[]; deleteDelaySec?: number }): Promise<Result<BDict>> {
    return this.command({
      command: 'delete',
      ...callKeys(ref),
      ...(ref.flags ? { flags: ref.flags } : {}),
      ...(ref.deleteDelaySec !== undefined ? { 'delete delay': ref.deleteDelaySec } : {}),
    });
  }

  query(ref: { callId: string; fromTag?: string; toTag?: string }): Promise<Result<BDict>> {
    return this.command({ command: 'query', 'call-id': ref.callId, 'from-tag': ref.fromTag, 'to-tag': ref.toTag });
  }

  list(limit?: number): Promise<Result<BDict>> {
    return this.command({ command: 'list', limit });
  }

  statistics(): Promise<Result<BDict>> {
    return this.command({ command: 'statistics' });
  }

  async #sdpCommand(command: 'offer' | 'answer', o: NgOfferOptions): Promise<Result<NgSdpReply>> {
    const dict: Record<string, unknown> = {
      ...o.extra,
      command,
      ...callKeys(o),
      sdp: o.sdp,
      supports: ['load limit'],
    };
    if (o.receivedFrom) dict['received-from'] = [isIP(o.receivedFrom) === 6 ? 'IP6' : 'IP4', o.receivedFrom];
    if (o.flags?.length) dict['flags'] = o.flags;
    if (o.replace?.length) dict['replace'] = o.replace;
    if (o.ice) dict['ICE'] = o.ice;
    if (o.transportProtocol) dict['transport-protocol'] = o.transportProtocol;
    if (o.label) dict['label'] = o.label;
    const r = await this.command(dict);
    if (!r.ok) return r;
    const sdp = r.value['sdp'];
    if (typeof sdp !== 'string') return fail('NG_ERR_BAD_REPLY', 'reply has no sdp');
    return ok({ sdp, reply: r.value });
  }

  /** Closes the socket; pending requests resolve with NG_ERR_CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [cookie, p] of this.#pending) this.#finish(cookie, p, fail('NG_ERR_CLOSED', 'client closed'));
    try {
      this.#socket?.close();
    } catch {
      /* already closed */
    }
  }
}

function callKeys(ref: NgCallRef): Record<string, string> {
  const out: Record<string, string> = { 'call-id': ref.callId, 'from-tag': ref.fromTag };
  if (ref.toTag) out['to-tag'] = ref.toTag;
  if (ref.viaBranch) out['via-branch'] = ref.viaBranch;
  return out;
}
