import { buildAuthorization } from '../sip/auth/digest.js';
import { createLogger } from '../util/logger.js';
import { newBranch, newCallId, newTag } from '../sip/message/builders.js';
import type { SipResponse } from '../sip/message/sip-message.js';
import { hostPort, templateMessage } from './sip/sip-templates.js';
import type { SipEndpoint, Peer } from './sip/sip-endpoint.js';

const log = createLogger('loadgen-uas-reg');

/** Where and as whom a UAS registers its contact, so a proxy can route calls to it. */
export interface UasRegistrationOptions {
  registrar: Peer;
  /** Domain of the AOR (`sip:user@domain`) and Request-URI. */
  domain: string;
  user: string;
  password: string;
  /** @default 300 */
  expiresSec?: number;
}

/**
 * Keeps a UAS registered (RFC 3261 §10.2): REGISTER with digest on a challenge, retransmitted
 * over UDP (Timer E, T1 doubling up to T2, given up at 64*T1), refreshed at half the granted
 * expiry, removed (Expires: 0) on stop.
 */
export class UasRegistration {
  readonly #o: Required<UasRegistrationOptions>;
  readonly #ep: SipEndpoint;
  readonly #t1Ms: number;
  readonly #t2Ms: number;
  readonly #callId: string;
  readonly #fromTag = newTag();
  #cseq = 0;
  #branch = '';
  #challenge: { header: string; value: string } | undefined;
  #authTries = 0;
  #nc = 0;
  #retrans: NodeJS.Timeout | undefined;
  #giveUp: NodeJS.Timeout | undefined;
  #refresh: NodeJS.Timeout | undefined;
  #waiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #expires: number;

  constructor(ep: SipEndpoint, opts: UasRegistrationOptions, t1Ms: number, t2Ms: number) {
    this.#ep = ep;
    this.#o = { expiresSec: 300, ...opts };
    this.#t1Ms = t1Ms;
    this.#t2Ms = t2Ms;
    this.#callId = newCallId(ep.local.address);
    this.#expires = this.#o.expiresSec;
  }

  /** Registers; resolves at the 200, rejects on a final error or after 64*T1 without one. */
  register(expiresSec = this.#o.expiresSec): Promise<void> {
    this.#expires = expiresSec;
    this.#authTries = 0;
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#send();
    });
  }

  /** Handles a response; returns false if it is not ours. */
  onResponse(msg: SipResponse): boolean {
    const cseq = msg.cseq;
    if (msg.callId !== this.#callId || cseq.method !== 'REGISTER') return false;
    if (cseq.seq !== this.#cseq || msg.status < 200) return true;
    this.#clear();
    if ((msg.status === 401 || msg.status === 407) && this.#authTries < 2) {
      const values = msg.getAll(msg.status === 407 ? 'Proxy-Authenticate' : 'WWW-Authenticate');
      const digest = values.find((v) => /algorithm\s*=\s*"?md5"?(?:[,\s]|$)/i.test(v)) ?? values[0];
      if (digest) {
        this.#authTries++;
        this.#nc = 0;
        this.#challenge = { header: msg.status === 407 ? 'Proxy-Authorization' : 'Authorization', value: digest };
        this.#send();
        return true;
      }
    }
    if (msg.status >= 300) {
      this.#settle(new Error(`REGISTER answered ${msg.status} ${msg.reason}`));
      return true;
    }
    // granted expiry: our contact's expires param, else Expires, else what we asked
    const mine = msg.contacts.map((c) => (c === '*' ? NaN : Number(c.params.get('expires') ?? NaN))).find((n) => Number.isFinite(n) && n > 0);
    const granted = mine ?? (msg.expires || this.#expires);
    if (this.#expires > 0) {
      this.#refresh = setTimeout(() => {
        this.register(this.#o.expiresSec).catch((err: Error) => log.warn({ err: err.message }, 'UAS registration refresh failed'));
      }, Math.max(1, granted / 2) * 1000);
      this.#refresh.unref();
    }
    this.#settle();
    return true;
  }

  /** Removes the binding (best effort, bounded) and stops refreshing. */
  async unregister(): Promise<void> {
    if (this.#refresh) clearTimeout(this.#refresh);
    this.#refresh = undefined;
    await Promise.race([this.register(0).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    this.#clear();
  }

  #settle(err?: Error): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    if (!w) return;
    if (err) w.reject(err);
    else w.resolve();
  }

  #clear(): void {
    if (this.#retrans) clearTimeout(this.#retrans);
    if (this.#giveUp) clearTimeout(this.#giveUp);
    this.#retrans = this.#giveUp = undefined;
  }

  #send(): void {
    const o = this.#o;
    this.#cseq++;
    this.#branch = newBranch();
    const l = this.#ep.local;
    const sentBy = hostPort(l.address, l.port);
    const tcp = this.#ep.transport === 'tcp';
    const uri = `sip:${o.domain}`;
    const headers: [string, string][] = [
      ['Via', `SIP/2.0/${tcp ? 'TCP' : 'UDP'} ${sentBy};branch=${this.#branch};rport`],
      ['Max-Forwards', '70'],
      ['From', `<sip:${o.user}@${o.domain}>;tag=${this.#fromTag}`],
      ['To', `<sip:${o.user}@${o.domain}>`],
      ['Call-ID', this.#callId],
      ['CSeq', `${this.#cseq} REGISTER`],
      ['Contact', `<sip:${o.user}@${sentBy}${tcp ? ';transport=tcp' : ''}>`],
      ['Expires', String(this.#expires)],
    ];
    if (this.#challenge) {
      this.#nc++;
      const r = buildAuthorization(this.#challenge.value, { username: o.user, password: o.password }, 'REGISTER', uri, this.#nc);
      if (r.ok) headers.push([this.#challenge.header, r.value]);
    }
    headers.push(['User-Agent', 'tandem-load-uas']);
    const buf = templateMessage(`REGISTER ${uri} SIP/2.0`, headers);
    this.#ep.send(buf, o.registrar);
    if (!tcp) {
      let interval = this.#t1Ms;
      const again = (): void => {
        this.#ep.send(buf, o.registrar);
        interval = Math.min(interval * 2, this.#t2Ms);
        this.#retrans = setTimeout(again, interval);
      };
      this.#retrans = setTimeout(again, interval);
    }
    this.#giveUp = setTimeout(() => {
      this.#clear();
      this.#settle(new Error('REGISTER timed out'));
    }, 64 * this.#t1Ms);
  }
}
