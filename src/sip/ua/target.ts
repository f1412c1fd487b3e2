import { isIP } from 'node:net';
import { parseNameAddr, parseUri, type SipUri } from '../uri/sip-uri.js';
import { bareHost } from '../transport/response-routing.js';
import { DEFAULT_PORTS, type Endpoint, type TransportName } from '../transport/types.js';

/**
 * Where to send a request for `uri` (a small subset of RFC 3263: no NAPTR/SRV): the URI's
 * `maddr` or host, its port or the transport's default, `transport=` parameter, `sips` means TLS.
 */
export function uriToEndpoint(uri: SipUri | string, defaultTransport: TransportName = 'udp'): Endpoint | undefined {
  let u: SipUri;
  if (typeof uri === 'string') {
    const r = parseUri(uri);
    if (!r.ok) {
      const na = parseNameAddr(uri);
      if (!na.ok) return undefined;
      u = na.value.uri;
    } else u = r.value;
  } else u = uri;
  if (u.scheme === 'tel') return undefined;
  const tp = u.params.get('transport')?.toLowerCase();
  let transport: TransportName = u.scheme === 'sips' ? 'tls' : defaultTransport;
  if (tp === 'udp' || tp === 'tcp' || tp === 'tls') transport = u.scheme === 'sips' && tp === 'tcp' ? 'tls' : tp;
  const maddr = u.params.get('maddr');
  const host = bareHost(maddr ?? u.host);
  return { transport, address: host, port: u.port ?? DEFAULT_PORTS[transport] };
}

/** Host as written in a URI (`[::1]` for IPv6). */
export function uriHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}
