/**
 * A small SIP user agent for tests: raw UDP or TCP sockets, messages written as text, parsed
 * with Tandem's parser, digest answered with src/sip/auth. It lets tests see and control every
 * message (including wrong ones) instead of hiding them behind a full UA.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { parseMessage } from '../../../../src/sip/message/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../../../src/sip/message/sip-message.js';
import { buildAuthorization } from '../../../../src/sip/auth/digest.js';

export interface TestUaOptions {
  transport: 'udp' | 'tcp' | 'tls';
  proxy: { host: string; port: number };
  user: string;
  password: string;
  domain: string;
  /** Pretend to be behind NAT: this host:port goes into Via and Contact instead of the socket's. */
  advertise?: string;
  /** Loopback address the UDP socket binds to (another source address). @default 127.0.0.1 */
  bindAddress?: string;
}

const rand = (n = 8) => randomBytes(n).toString('hex');

export const SAMPLE_SDP = (port: number) =>
  `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;

type Waiter = { pred: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void; timer: NodeJS.Timeout };

export class TestUa {
  readonly opts: TestUaOptions;
  port = 0;
  #udp: dgram.Socket | undefined;
  #tcp: net.Socket | tls.TLSSocket | undefined;
  #tcpBuf = Buffer.alloc(0);
  #inbox: SipMessage[] = [];
  /** Where each UDP request came from, by its top Via branch. */
  #requestSources = new Map<string, { address: string; port: number }>();
  #waiters: Waiter[] = [];
  /** Every message received, in order. */
  readonly received: SipMessage[] = [];
  #cseq = 1;
  readonly callIdReg = `${rand()}@test`;
  readonly regTag = rand(4);

  constructor(opts: TestUaOptions) {
    this.opts = opts;
  }

  static async create(opts: TestUaOptions): Promise<TestUa> {
    const ua = new TestUa(opts);
    await ua.#open();
    return ua;
  }

  async #open(): Promise<void> {
    if (this.opts.transport === 'udp') {
      const s = dgram.createSocket('udp4');
      this.#udp = s;
      s.on('message', (buf, rinfo) => this.#onBytes(buf, rinfo));
      await new Promise<void>((r) => s.bind(0, this.opts.bindAddress ?? '127.0.0.1', () => r()));
      this.port = s.address().port;
    } else {
      const isTls = this.opts.transport === 'tls';
      const sock = isTls
        ? tls.connect({ port: this.opts.proxy.port, host: this.opts.proxy.host, rejectUnauthorized: false })
        : net.connect(this.opts.proxy.port, this.opts.proxy.host);
      this.#tcp = sock;
      await new Promise<void>((r, j) => {
        sock.once(isTls ? 'secureConnect' : 'connect', () => r());
        sock.once('error', j);
      });
      this.port = sock.localPort!;
      sock.on('data', (chunk) => {
        this.#tcpBuf = Buffer.concat([this.#tcpBuf, chunk]);
        this.#drainTcp();
      });
      sock.on('error', () => undefined);
    }
  }

  #drainTcp(): void {
    for (;;) {
      const text = this.#tcpBuf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /\r\n(?:content-length|l)\s*:\s*(\d+)/i.exec(text.slice(0, end + 2));
      const len = m ? Number(m[1]) : 0;
      if (this.#tcpBuf.length < end + 4 + len) return;
      const one = this.#tcpBuf.subarray(0, end + 4 + len);
      this.#tcpBuf = this.#tcpBuf.subarray(end + 4 + len);
      this.#onBytes(Buffer.from(one));
    }
  }

  #onBytes(buf: Buffer, rinfo?: dgram.RemoteInfo): void {
    const r = parseMessage(buf);
    if (!r.ok) return;
    const msg = r.value;
    this.received.push(msg);
    // A UDP request's answer goes back where it came from (RFC 3261 §18.2.2 with rport).
    const branch = msg.isRequest() ? msg.topVia.branch : undefined;
    if (rinfo && branch) {
      this.#requestSources.set(branch, { address: rinfo.address, port: rinfo.port });
      if (this.#requestSources.size > 10_000) this.#requestSources.delete(this.#requestSources.keys().next().value!);
    }
    const i = this.#waiters.findIndex((w) => w.pred(msg));
    if (i >= 0) {
      const w = this.#waiters.splice(i, 1)[0]!;
      clearTimeout(w.timer);
      w.resolve(msg);
    } else {
      this.#inbox.push(msg);
    }
  }

  get transportToken(): string {
    return this.opts.transport.toUpperCase();
  }

  get aor(): string {
    return `sip:${this.opts.user}@${this.opts.domain}`;
  }

  get hostPort(): string {
    return this.opts.advertise ?? `${this.opts.bindAddress ?? '127.0.0.1'}:${this.port}`;
  }

  get contact(): string {
    return `sip:${this.opts.user}@${this.hostPort}${this.opts.transport !== 'udp' ? `;transport=${this.opts.transport}` : ''}`;
  }

  via(branch = `z9hG4bK${rand()}`): string {
    return `SIP/2.0/${this.transportToken} ${this.hostPort};branch=${branch};rport`;
  }

  /** Sends a request to the proxy, or a response to where its request came from. */
  send(text: string | Buffer): void {
    const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
    if (this.#udp) {
      const to = this.#responseDestination(buf) ?? this.opts.proxy;
      this.#udp.send(buf, to.port, 'address' in to ? to.address : to.host);
    } else this.#tcp!.write(buf);
  }

  #responseDestination(buf: Buffer): { address: string; port: number } | undefined {
    if (buf.subarray(0, 8).toString('latin1') !== 'SIP/2.0 ') return undefined;
    const branch = /\r\nVia:[^\r]*?;branch=([^;\r\s,]+)/i.exec(buf.toString('latin1'))?.[1];
    return branch ? this.#requestSources.get(branch) : undefined;
  }

  /** Waits for a message matching `pred` (already queued ones first). */
  waitFor(pred: (m: SipMessage) => boolean, timeoutMs = 5000, what = 'message'): Promise<SipMessage> {
    const i = this.#inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve,
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          reject(new Error(`${this.opts.user}: timed out waiting for ${what}`));
        }, timeoutMs),
      };
      this.#waiters.push(w);
    });
  }

  async waitResponse(callId: string, method: string, pred: (s: number) => boolean = (s) => s >= 200, timeoutMs = 5000): Promise<SipResponse> {
    return (await this.waitFor(
      (m) => !m.isRequest() && m.callId === callId && m.cseq.method === method && pred((m as SipResponse).status),
      timeoutMs,
      `${method} response`,
    )) as SipResponse;
  }

  async waitRequest(method: string, timeoutMs = 5000, callId?: string): Promise<SipRequest> {
    return (await this.waitFor((m) => m.isRequest() && (m as SipRequest).method === method && (!callId || m.callId === callId), timeoutMs, `${method} request`)) as SipRequest;
  }

  /** Builds a request as text. */
  request(o: { method: string; uri: string; callId: string; cseq: number; fromTag: string; to: string; toTag?: string; headers?: string[]; body?: string; branch?: string }): string {
    const body = o.body ?? '';
    const lines = [
      `${o.method} ${o.uri} SIP/2.0`,
      `Via: ${this.via(o.branch)}`,
      'Max-Forwards: 70',
      `From: <${this.aor}>;tag=${o.fromTag}`,
      `To: <${o.to}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
      `Call-ID: ${o.callId}`,
      `CSeq: ${o.cseq} ${o.method}`,
      `Contact: <${this.contact}>`,
      ...(o.headers ?? []),
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    return lines.join('\r\n');
  }

  /** Response to a received request as text (Via, From, To, Call-ID, CSeq, Record-Route copied). */
  response(req: SipRequest, status: number, reason: string, o: { toTag?: string; body?: string; headers?: string[] } = {}): string {
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of req.getAll('Via')) lines.push(`Via: ${v}`);
    lines.push(`From: ${req.get('From')}`);
    const to = req.get('To')!;
    lines.push(`To: ${to}${!/;\s*tag=/i.test(to) && o.toTag ? `;tag=${o.toTag}` : ''}`);
    lines.push(`Call-ID: ${req.callId}`, `CSeq: ${req.get('CSeq')}`);
    if (status > 100 && status < 300) for (const rr of req.getAll('Record-Route')) lines.push(`Record-Route: ${rr}`);
    if (status > 100 && status < 300) lines.push(`Contact: <${this.contact}>`);
    for (const h of o.headers ?? []) lines.push(h);
    const body = o.body ?? '';
    if (body) lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    return lines.join('\r\n');
  }

  /** REGISTER with digest: returns the final response (after the challenge when one came). */
  /**
   * REGISTER, answering a 401. `retransmit`: resend each request as a UDP client transaction does
   * (Timer E: 500 ms doubling to 4 s) until it is answered or `timeoutMs` runs out, for tests
   * where the node may be slow to answer (a Redis failover) rather than silent.
   */
  async register(expires = 3600, opts: { password?: string; extraHeaders?: string[]; contactParams?: string; timeoutMs?: number; retransmit?: boolean } = {}): Promise<SipResponse> {
    const uri = `sip:${this.opts.domain}`;
    const mk = (auth?: string) =>
      this.request({
        method: 'REGISTER',
        uri,
        callId: this.callIdReg,
        cseq: this.#cseq++,
        fromTag: this.regTag,
        to: this.aor,
        headers: [`Expires: ${expires}`, ...(auth ? [`Authorization: ${auth}`] : []), ...(opts.extraHeaders ?? [])],
      }).replace(`Contact: <${this.contact}>`, `Contact: <${this.contact}>${opts.contactParams ?? ''}`);
    const transaction = async (text: string): Promise<SipResponse> => {
      this.send(text);
      if (!opts.retransmit) return this.waitResponse(this.callIdReg, 'REGISTER', undefined, opts.timeoutMs);
      // Retransmissions may draw more than one answer: take the final one to this CSeq only.
      const seq = this.#cseq - 1;
      const final = (m: SipMessage) => !m.isRequest() && m.callId === this.callIdReg && m.cseq.method === 'REGISTER' && m.cseq.seq === seq && (m as SipResponse).status >= 200;
      let interval = 500;
      const timer = (): NodeJS.Timeout =>
        setTimeout(() => {
          this.send(text);
          interval = Math.min(interval * 2, 4000);
          pending = timer();
        }, interval);
      let pending = timer();
      try {
        return (await this.waitFor(final, opts.timeoutMs, 'REGISTER response')) as SipResponse;
      } finally {
        clearTimeout(pending);
      }
    };
    let res = await transaction(mk());
    if (res.status === 401) res = await transaction(mk(this.answer(res, 'WWW-Authenticate', 'REGISTER', uri, opts.password)));
    return res;
  }

  /** Authorization value answering the first challenge of `res`. */
  answer(res: SipResponse, header: 'WWW-Authenticate' | 'Proxy-Authenticate', method: string, uri: string, password?: string): string {
    const ch = res.getAll(header)[0]!;
    const a = buildAuthorization(ch, { username: this.opts.user, password: password ?? this.opts.password }, method, uri, 1);
    if (!a.ok) throw new Error(a.reason);
    return a.value;
  }

  nextCseq(): number {
    return this.#cseq++;
  }

  close(): void {
    for (const w of this.#waiters) clearTimeout(w.timer);
    this.#waiters = [];
    this.#udp?.close();
    this.#tcp?.destroy();
  }
}

/** An outgoing call from a TestUa, with the dialog state needed for ACK/BYE/CANCEL. */
export class TestCall {
  readonly ua: TestUa;
  readonly callId = `${rand()}@test`;
  readonly fromTag = rand(4);
  readonly target: string;
  cseq = 1;
  branch = '';
  inviteText = '';
  toTag: string | undefined;
  routeSet: string[] = [];
  remoteTarget: string | undefined;

  constructor(ua: TestUa, targetUser: string) {
    this.ua = ua;
    this.target = `sip:${targetUser}@${ua.opts.domain}`;
  }

  /** Sends INVITE; answers a 407 with credentials (ACKing the 407). Returns after the 100/first response. */
  /**
   * `retransmit`: resend the INVITE as Timer A does (500 ms, doubling) until a response arrives,
   * for tests that send many calls on a loaded machine, where one lost datagram is not the
   * behaviour under test.
   */
  async invite(opts: { sdp?: string; password?: string; noAuth?: boolean; retransmit?: boolean } = {}): Promise<SipResponse> {
    const send = (auth?: string) => {
      this.branch = `z9hG4bK${rand()}`;
      this.inviteText = this.ua.request({
        method: 'INVITE',
        uri: this.target,
        callId: this.callId,
        cseq: this.cseq,
        fromTag: this.fromTag,
        to: this.target,
        branch: this.branch,
        headers: auth ? [`Proxy-Authorization: ${auth}`] : [],
        body: opts.sdp ?? SAMPLE_SDP(40000),
      });
      this.ua.send(this.inviteText);
    };
    send();
    let res = await this.#firstResponse(opts.retransmit === true);
    if (res.status === 407 && !opts.noAuth) {
      this.ackNon2xx(res);
      this.cseq++;
      send(this.ua.answer(res, 'Proxy-Authenticate', 'INVITE', this.target, opts.password));
      res = await this.#firstResponse(opts.retransmit === true);
    }
    return res;
  }

  /** The first response other than 100 to the INVITE just sent (Timer A retransmissions until any response). */
  async #firstResponse(retransmit: boolean): Promise<SipResponse> {
    if (retransmit) {
      const cseq = this.cseq;
      const ours = (m: SipMessage) => !m.isRequest() && m.callId === this.callId && m.cseq.method === 'INVITE' && m.cseq.seq === cseq;
      for (let wait = 500; wait <= 4000; wait *= 2) {
        const any = (await this.ua.waitFor(ours, wait).catch(() => undefined)) as SipResponse | undefined;
        if (any) return any.status !== 100 ? any : this.ua.waitResponse(this.callId, 'INVITE', (s) => s !== 100);
        this.ua.send(this.inviteText);
      }
    }
    return this.ua.waitResponse(this.callId, 'INVITE', (s) => s !== 100);
  }

  /** ACK for a non-2xx final: same branch as the INVITE (§17.1.1.3). */
  ackNon2xx(res: SipResponse): void {
    const lines = [
      `ACK ${this.target} SIP/2.0`,
      `Via: ${this.ua.via(this.branch)}`,
      'Max-Forwards: 70',
      `From: <${this.ua.aor}>;tag=${this.fromTag}`,
      `To: ${res.get('To')}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${this.cseq} ACK`,
      'Content-Length: 0',
      '',
      '',
    ];
    this.ua.send(lines.join('\r\n'));
  }

  /** Learns the dialog from a 2xx/1xx with To tag: route set = Record-Route reversed (§12.1.2). */
  learn(res: SipResponse): void {
    this.toTag = res.toTag;
    this.routeSet = res.getAll('Record-Route').slice().reverse();
    const c = res.get('Contact');
    if (c) this.remoteTarget = /<([^>]+)>/.exec(c)?.[1] ?? c;
  }

  inDialog(method: string, cseq: number, branch = `z9hG4bK${rand()}`): string {
    const lines = [
      `${method} ${this.remoteTarget ?? this.target} SIP/2.0`,
      `Via: ${this.ua.via(branch)}`,
      'Max-Forwards: 70',
      ...this.routeSet.map((r) => `Route: ${r}`),
      `From: <${this.ua.aor}>;tag=${this.fromTag}`,
      `To: <${this.target}>;tag=${this.toTag ?? ''}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`,
      'Content-Length: 0',
      '',
      '',
    ];
    return lines.join('\r\n');
  }

  ack2xx(): void {
    this.ua.send(this.inDialog('ACK', this.cseq));
  }

  async bye(): Promise<SipResponse> {
    this.cseq++;
    this.ua.send(this.inDialog('BYE', this.cseq));
    return this.ua.waitResponse(this.callId, 'BYE');
  }

  /** CANCEL: same Request-URI, Call-ID, From, To, CSeq number and branch as the INVITE (§9.1). */
  cancel(): void {
    const lines = [
      `CANCEL ${this.target} SIP/2.0`,
      `Via: ${this.ua.via(this.branch)}`,
      'Max-Forwards: 70',
      `From: <${this.ua.aor}>;tag=${this.fromTag}`,
      `To: <${this.target}>`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${this.cseq} CANCEL`,
      'Content-Length: 0',
      '',
      '',
    ];
    this.ua.send(lines.join('\r\n'));
  }
}
