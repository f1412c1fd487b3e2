import type { SipUri } from '../../sip/uri/sip-uri.js';

/**
 * Canonical address-of-record key: `sip:user@host`, host lower-cased, user unescaped, no port or
 * parameters (RFC 3261 §10.3 step 5: "converting it to a canonical form ... all URI parameters
 * MUST be removed"). `sips` AORs share the `sip` key.
 */
export function aorKey(uri: SipUri): string {
  let user = uri.user ?? '';
  try {
    user = decodeURIComponent(user);
  } catch {
    /* keep as written */
  }
  return `sip:${user}@${uri.host.toLowerCase()}`;
}
