import { isIP } from 'node:net';
import { ownStringAs } from '../../util/string-calls.js';
import { DEFAULT_PORTS, isReliable, transportFromVia, type Endpoint, type Source, type TransportName } from './types.js';

/** The parts of a Via header that response routing reads. */
export interface ViaLike {
  transport: string;
  host: string;
  port?: number;
  params: Map<string, string | null>;
  received?: string;
  rport?: number | null;
  maddr?: string;
}

/** Dotted quad (no leading zeros) as a 32-bit number in host order, or -1 when `s` is not one. */
export function ipv4Number(s: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // no leading zeros (not octal, not ambiguous)
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

/** IPv6 references are written `[::1]` in SIP; sockets want `::1`. */
export function bareHost(host: string): string {
  return host.length > 1 && host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** `::1` -> `[::1]` for use in a Via/URI host. */
export function hostForHeader(host: string): string {
  // IPv4 literals and host names never contain ':' (skips the IP regex on the hot path).
  if (host.indexOf(':') === -1) return host;
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** `net.isIPv6` with a fast answer for IPv4 literals and host names (no ':'). */
export function isIPv6Literal(address: string): boolean {
  return address.indexOf(':') !== -1 && isIP(address) === 6;
}

function viaParam(via: ViaLike, name: string): string | null | undefined {
  const v = via.params.get(name);
  return v === undefined ? undefined : v;
}

/**
 * Where a response goes, from the top Via of the request (RFC 3261 §18.2.2, RFC 3581 §4):
 *
 * - reliable transport: the connection the request came on if it is still open (the caller
 *   checks `connectionId`), else the address in `received` (or sent-by host) and sent-by port;
 * - `maddr`: that address, sent-by port (default 5060);
 * - RFC 3581 `rport` with a value: the source IP and port of the request;
 * - `received`: that address, sent-by port;
 * - otherwise sent-by host and port.
 */
export function responseDestination(via: ViaLike, source?: Source): Endpoint | undefined {
  const transport: TransportName | undefined = transportFromVia(via.transport);
  if (!transport) return undefined;
  // A parsed Via carries received/maddr as fields (set from its parameters, `undefined` when
  // absent): reading them does not build the parameter Map. Other Via-like objects are asked.
  const received = 'received' in via ? via.received : viaParam(via, 'received') || undefined;
  const sentByPort = via.port ?? DEFAULT_PORTS[transport];
  if (isReliable(transport)) {
    const dest: Endpoint = { transport, address: settledAddress(received ?? via.host, source), port: sentByPort };
    if (source?.connectionId !== undefined) dest.connectionId = source.connectionId;
    return dest;
  }
  const maddr = 'maddr' in via ? via.maddr : viaParam(via, 'maddr');
  if (maddr) return { transport, address: settledAddress(maddr, source), port: sentByPort };
  let rport: number | null | undefined = via.rport;
  if (rport === undefined) {
    const raw = viaParam(via, 'rport');
    rport = raw === undefined ? undefined : raw === null || raw === '' ? null : Number(raw);
  }
  if (typeof rport === 'number' && Number.isInteger(rport) && rport > 0 && rport < 65536) {
    const address = settledAddress(received ?? source?.address ?? via.host, source);
    // The usual answer (RFC 3581): back where the request came from. The source is that endpoint
    // already, so no copy of it is made (a server transaction keeps its destination 32 s).
    if (source !== undefined && source.transport === transport && source.address === address && source.port === rport) return source;
    return { transport, address, port: rport };
  }
  if (rport === null && source) {
    // rport asked for but not filled in (message built locally): the source port is the answer.
    return { transport, address: source.address, port: source.port };
  }
  if (received) return { transport, address: settledAddress(received, source), port: sentByPort };
  return { transport, address: settledAddress(via.host, source), port: sentByPort };
}

/**
 * The address a response goes to, as a string that does not pin the message it was read from: a
 * server transaction keeps its destination until Timer J/L ends (32 s), and `received` is a slice
 * of the whole Via. Almost always it is the sender's address, which the transport already holds.
 */
function settledAddress(host: string, source: Source | undefined): string {
  const bare = bareHost(host);
  return ownStringAs(bare, source?.address);
}
