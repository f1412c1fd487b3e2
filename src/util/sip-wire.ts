/**
 * The `tandem:sip:wire` diagnostics channel: the SIP transport publishes every message it receives
 * (before parsing, so malformed ones too) and every message it sends, as raw bytes with both
 * addresses. Tracing (HEP export to Homer) subscribes to it; with no subscriber the transport
 * only tests `sipWire.hasSubscribers`, so the hot path costs next to nothing.
 */
import diagnostics_channel from 'node:diagnostics_channel';

export const SIP_WIRE_CHANNEL = 'tandem:sip:wire';

/** One SIP message as it crossed the wire. */
export interface SipWireMessage {
  direction: 'in' | 'out';
  /** The message's bytes (not copied: subscribers must not keep or change them past the call). */
  data: Buffer;
  transport: 'udp' | 'tcp' | 'tls';
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** When it crossed, ms since the epoch. */
  atMs: number;
}

export const sipWire = diagnostics_channel.channel(SIP_WIRE_CHANNEL);

/** Publishes one message; callers test `sipWire.hasSubscribers` first. */
export function publishSipWire(
  direction: 'in' | 'out',
  data: Buffer,
  transport: 'udp' | 'tcp' | 'tls',
  localAddress: string,
  localPort: number,
  remoteAddress: string,
  remotePort: number,
): void {
  const m: SipWireMessage = { direction, data, transport, localAddress, localPort, remoteAddress, remotePort, atMs: Date.now() };
  sipWire.publish(m);
}
