/**
 * Sends every SIP message the node receives or sends to a Homer collector (heplify-server,
 * homer-app) as HEPv3 over UDP. It subscribes to the transport's `tandem:sip:wire` diagnostics
 * channel; a collector that is slow or gone costs at most `maxQueue` datagrams in flight, past
 * which messages are dropped and counted, never buffered.
 */
import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import { isIP, isIPv6 } from 'node:net';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter } from '../../util/metrics.js';
import { fail, ok, type Result } from '../../util/result.js';
import { sipWire, type SipWireMessage } from '../../util/sip-wire.js';
import { encodeHep, HEP_PROTO_SIP } from './hep-codec.js';

const log = createLogger('admin/hep');
const sent = counter('tandem_hep_sent_total', 'SIP messages sent to the HEP collector');
const dropped = counter('tandem_hep_dropped_total', 'SIP messages not sent to the HEP collector, by reason', ['reason']);

export interface HepExporterOptions {
  /** Collector, `udp:HOST:PORT` (`udp:[::1]:9060` for IPv6). */
  target: string;
  /** HEP capture agent id (chunk 12): a number naming this node to Homer. @default 2001 */
  captureId?: number;
  /** HEP auth key (chunk 14), as heplify-server's `HEPPassword`/`-hp`. */
  password?: string;
  /** Capture node name (chunk 19): the cluster node id. */
  nodeName?: string;
  /** Datagrams in flight at most before messages are dropped. @default 1000 */
  maxQueue?: number;
}

/** `udp:HOST:PORT` -> host and port. */
export function parseHepTarget(s: string): Result<{ host: string; port: number }> {
  const m = /^udp:(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/i.exec(s.trim());
  if (!m) return fail('HEP_ERR_TARGET', `HEP target must be udp:HOST:PORT, got ${JSON.stringify(s)}`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return fail('HEP_ERR_TARGET', `HEP port out of range: ${port}`);
  return ok({ host: m[1]!.replace(/^\[|\]$/g, ''), port });
}

export class HepExporter {
  readonly #o: Required<Omit<HepExporterOptions, 'password' | 'nodeName'>> & Pick<HepExporterOptions, 'password' | 'nodeName'>;
  #socket: dgram.Socket | undefined;
  #host = '';
  #port = 0;
  readonly #onMessage = (m: unknown): void => this.#export(m as SipWireMessage);
  #enabled = true;
  /** Messages sent since start. */
  sent = 0;

  constructor(opts: HepExporterOptions) {
    this.#o = { captureId: 2001, maxQueue: 1000, ...opts };
  }

  /** Resolves the collector's address once, opens the socket and starts exporting. */
  async start(): Promise<void> {
    const t = parseHepTarget(this.#o.target);
    if (!t.ok) throw new Error(t.reason);
    const host = isIP(t.value.host) ? t.value.host : (await dns.lookup(t.value.host)).address;
    this.#host = host;
    this.#port = t.value.port;
    const socket = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    socket.on('error', (err) => rateLimitedLog('hep-socket', (n) => log.warn({ err, suppressed: n }, 'HEP socket error')));
    await new Promise<void>((resolve) => socket.bind(0, resolve));
    socket.unref();
    this.#socket = socket;
    if (this.#enabled) sipWire.subscribe(this.#onMessage);
    log.info({ collector: `${host}:${this.#port}`, captureId: this.#o.captureId, node: this.#o.nodeName }, 'exporting SIP to HEP collector');
  }

  /** `udp:HOST:PORT` as configured. */
  get target(): string {
    return this.#o.target;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Stops or resumes exporting (the admin API's trace switch); off, the transport pays nothing. */
  setEnabled(on: boolean): void {
    if (on === this.#enabled || !this.#socket) {
      this.#enabled = on;
      return;
    }
    this.#enabled = on;
    if (on) sipWire.subscribe(this.#onMessage);
    else sipWire.unsubscribe(this.#onMessage);
    log.info({ enabled: on }, 'HEP export switched');
  }

  close(): void {
    sipWire.unsubscribe(this.#onMessage);
    this.#socket?.close();
    this.#socket = undefined;
  }

  #export(m: SipWireMessage): void {
    const socket = this.#socket;
    if (!socket) return;
    try {
      if (socket.getSendQueueCount() >= this.#o.maxQueue) {
        dropped.inc({ reason: 'queue-full' });
        return;
      }
      const inbound = m.direction === 'in';
      const v6 = isIPv6(m.remoteAddress);
      const enc = encodeHep({
        family: v6 ? 10 : 2,
        ipProtocol: m.transport === 'udp' ? 17 : 6,
        srcIp: inbound ? m.remoteAddress : m.localAddress,
        dstIp: inbound ? m.localAddress : m.remoteAddress,
        srcPort: inbound ? m.remotePort : m.localPort,
        dstPort: inbound ? m.localPort : m.remotePort,
        timeSec: Math.floor(m.atMs / 1000),
        timeUsec: (m.atMs % 1000) * 1000,
        protoType: HEP_PROTO_SIP,
        captureId: this.#o.captureId,
        ...(this.#o.password ? { password: this.#o.password } : {}),
        ...(this.#o.nodeName ? { nodeName: this.#o.nodeName } : {}),
        payload: m.data,
      });
      if (!enc.ok) {
        dropped.inc({ reason: 'too-big' });
        return;
      }
      socket.send(enc.value, this.#port, this.#host, (err) => {
        if (err) dropped.inc({ reason: 'send-error' });
      });
      this.sent++;
      sent.inc();
    } catch (err) {
      // Tracing never breaks the SIP path that published the message.
      dropped.inc({ reason: 'fault' });
      rateLimitedLog('hep-export', (n) => log.warn({ err, suppressed: n }, 'HEP export failed'));
    }
  }
}
