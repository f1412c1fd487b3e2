import { randomBytes } from 'node:crypto';
import { parseMessage } from '../../sip/message/parser.js';
import { SipRequest } from '../../sip/message/sip-message.js';
import type { Endpoint, TransportName } from '../../sip/transport/types.js';
import { parseUri } from '../../sip/uri/sip-uri.js';
import type { Result } from '../../util/result.js';
import { fail, ok } from '../../util/result.js';
import type { ProxyStack } from '../proxy/proxy-stack.js';
import type { ProbeReply, ProbeSender } from './prober.js';
import { workerCallIdPrefix } from '../../util/worker-tag.js';

/**
 * Next hop for a destination URI (RFC 3263 without DNS: the host must be an address or a name
 * the OS resolves). Port defaults to 5060 (5061 for sips / TLS); `transport=` selects the
 * transport, sips means TLS.
 */
export function endpointOf(uri: string): Result<Endpoint> {
  const p = parseUri(uri);
  if (!p.ok) return p;
  const u = p.value;
  if (u.scheme === 'tel' || !u.host) return fail('DISPATCHER_ERR_BAD_URI', `not a sip URI: ${uri}`);
  const tp = (u.params.get('transport') ?? '').toLowerCase();
  const transport: TransportName = u.scheme === 'sips' || tp === 'tls' ? 'tls' : tp === 'tcp' ? 'tcp' : 'udp';
  const address = u.host.startsWith('[') ? u.host.slice(1, -1) : u.host;
  return ok({ transport, address, port: u.port ?? (transport === 'tls' ? 5061 : 5060) });
}

export interface OptionsSenderOptions {
  /** From URI of the probes. @default sip:dispatcher@<local interface host> */
  fromUri?: string;
}

/**
 * Sends OPTIONS probes as client transactions of the proxy's stack, so retransmissions (Timer
 * E) and transaction timeout (Timer F) follow RFC 3261 §17.1.2; the prober's own timeout only
 * decides when a probe counts as failed.
 *
 *   OPTIONS sip:pbx1:5060 SIP/2.0        (RFC 3261 §11: OPTIONS to learn a peer is alive)
 *   Max-Forwards: 70 ... -> any final response; the configured OK list decides "up".
 */
export function optionsProbeSender(stack: ProxyStack, opts: OptionsSenderOptions = {}): ProbeSender {
  let seq = 1;
  return (uri, timeoutMs) =>
    new Promise<ProbeReply>((resolve) => {
      const ep = endpointOf(uri);
      if (!ep.ok) return resolve({ error: ep.reason });
      let done = false;
      const finish = (r: ProbeReply) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => finish({ timeout: true }), timeoutMs);
      timer.unref();
      try {
        const req = buildOptions(stack, uri, ep.value, opts.fromUri, seq++);
        if (!req.ok) return finish({ error: req.reason });
        stack.sendRequest(req.value, ep.value, {
          onFinal: (res) => finish({ status: res.status }),
          onTimeout: () => finish({ timeout: true }),
          onTransportError: (err) => finish({ error: err.message }),
        });
      } catch (err) {
        finish({ error: err instanceof Error ? err.message : String(err) });
      }
    });
}

function buildOptions(stack: ProxyStack, uri: string, target: Endpoint, fromUri: string | undefined, cseq: number): Result<SipRequest> {
  const itf = stack.interfaceFor(target);
  const host = itf.host.includes(':') ? `[${itf.host}]` : itf.host;
  const tp = itf.transport.toUpperCase();
  const rand = randomBytes(8).toString('hex');
  const from = fromUri ?? `sip:dispatcher@${host}:${itf.port}`;
  const text =
    `OPTIONS ${uri} SIP/2.0\r\n` +
    `Via: SIP/2.0/${tp} ${host}:${itf.port};branch=z9hG4bK-ds${rand};rport\r\n` +
    `Max-Forwards: 70\r\n` +
    `From: <${from}>;tag=ds${rand.slice(0, 8)}\r\n` +
    `To: <${uri}>\r\n` +
    `Call-ID: ${workerCallIdPrefix()}ds-${rand}@${host}\r\n` +
    `CSeq: ${cseq} OPTIONS\r\n` +
    `Accept: application/sdp\r\n` +
    `User-Agent: Tandem dispatcher\r\n` +
    `Content-Length: 0\r\n\r\n`;
  const parsed = parseMessage(Buffer.from(text, 'latin1'));
  if (!parsed.ok) return fail(parsed.code, parsed.reason);
  if (!(parsed.value instanceof SipRequest)) return fail('DISPATCHER_ERR_BUILD', 'not a request');
  return ok(parsed.value);
}
