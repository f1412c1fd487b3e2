import type { SipMessage } from './sip-message.js';

/**
 * Serializes a message (RFC 3261 §7). Content-Length is set from the body. An unmodified
 * parsed message comes back as its received bytes (a view of the receive buffer, no copy);
 * in a modified one, every untouched header line is still copied byte for byte.
 */
export function serialize(msg: SipMessage): Buffer {
  return msg.toBuffer();
}
