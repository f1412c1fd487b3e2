/**
 * Route tokens: proof, carried in our own Record-Route, that an in-dialog request follows a
 * route set this cluster issued.
 *
 * RFC 3261 §16.4 lets a proxy recognise "a value this proxy previously placed into a
 * Record-Route header field" by its URI alone, and Kamailio's `loose_route()` does just that, so
 * anyone who writes our address into a Route header passes for an established dialog. Here the
 * Record-Route value we insert carries `;tk=` = HMAC-SHA256(cluster secret, Call-ID, the
 * caller's tag, the flow tokens beside it), truncated to 96 bits. A request is in-dialog only
 * when the Route value it brings back verifies for its own Call-ID and one of its tags (the
 * caller's tag is the From-tag of the caller's requests and the To-tag of the callee's). Any node
 * that shares the secret checks it with no lookup; a Route copied from another call, or made up,
 * fails.
 *
 * The To-tag cannot be bound: the Record-Route is fixed by the INVITE, before a To-tag exists,
 * and the callee's route set is taken from that INVITE (§12.1.1).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { GenerationalMap } from '../../util/generational-map.js';
import { HmacSha256 } from '../../util/hmac-sha256.js';
import { ownString as flat } from '../../util/string-calls.js';

/** Record-Route URI parameter that carries the token. */
export const ROUTE_TOKEN_PARAM = 'tk';

const TOKEN_BYTES = 12;
/**
 * Tokens are lower-case hex. Base64url (16 characters, issued before) can spell header names, and
 * a peer that finds a header by searching the whole message for its name reads the wrong line:
 * SIPp takes the CSeq method from the first "CSeq" it finds, so a 200 whose Record-Route carried
 * `tk=EEGX3DPrwRsCSeqM` failed its call (1 in ~70,000 calls in the signalling bench). Hex has no
 * capitals and no colon. Base64url tokens are still accepted (dialogs set up by an older node).
 */
const TOKEN_CHARS = 24;
const LEGACY_TOKEN_CHARS = 16;

/**
 * Tokens this node issued, remembered so that its own dialogs' requests skip the HMAC: sized for
 * the ACK that follows each answer and the requests of short calls. A longer call's BYE costs
 * one or two MACs (~1.2 µs each). It was 200,000: at 3,000 calls/s that is 66 s of calls, two
 * strings and a map slot each, the largest set of objects the node kept after its transactions,
 * which every full collection marks to save a microsecond or two per call.
 */
const ISSUED_MAX = 16_384;

export class RouteToken {
  readonly #hmac: HmacSha256;
  /** token -> what it binds (`callId\0tag\0flows`), oldest first; bounded. */
  readonly #issued = new GenerationalMap<string, string>(ISSUED_MAX);

  /** `key`: the cluster's shared secret (derived key, never the raw auth secret). */
  constructor(key: Buffer) {
    this.#hmac = new HmacSha256(key);
  }

  /** Token for a dialog set up by a request with this Call-ID and From-tag, next to `flowParams` (`;ft=..;ftc=..` text or ''). */
  sign(callId: string, callerTag: string, flowParams = ''): string {
    const token = this.#mac(callId, callerTag, flowParams).toString('hex');
    // A flat copy: the Call-ID and tag are slices of the request's whole header block.
    this.#issued.set(token, flat(`${callId}\0${callerTag}\0${flowParams}`));
    return token;
  }

  /**
   * Whether `token` was issued for this Call-ID and either tag of the request (the caller may be
   * on either side of an in-dialog request). Constant-time comparison.
   */
  verify(token: string, callId: string, fromTag: string | undefined, toTag: string | undefined, flowParams = ''): boolean {
    if (token.length === TOKEN_CHARS ? !isLowerHex(token) : token.length !== LEGACY_TOKEN_CHARS) return false;
    // Issued here: compare what it binds, no HMAC (a peer's token, or one older than the last
    // ISSUED_MAX, is checked by its MAC).
    const bound = this.#issued.get(token);
    if (bound !== undefined) return bound === `${callId}\0${fromTag ?? ''}\0${flowParams}` || bound === `${callId}\0${toTag ?? ''}\0${flowParams}`;
    const given = Buffer.from(token, token.length === TOKEN_CHARS ? 'hex' : 'base64url');
    if (given.length !== TOKEN_BYTES) return false;
    if (fromTag !== undefined && timingSafeEqual(given, this.#mac(callId, fromTag, flowParams))) return true;
    if (toTag !== undefined && timingSafeEqual(given, this.#mac(callId, toTag, flowParams))) return true;
    return false;
  }

  #mac(callId: string, tag: string, flowParams: string): Buffer {
    return this.#hmac.start().add(callId).add('\0').add(tag).add('\0').add(flowParams).digest().subarray(0, TOKEN_BYTES);
  }
}

/**
 * Only the form tokens are issued in: Buffer.from(s, 'hex') also reads capitals and stops at the
 * first other character, so an altered token could decode to the same bytes.
 */
function isLowerHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** The route-token key derived from the cluster secret (nodes sharing the secret accept each other's tokens). */
export function routeTokenKey(secret: string | Buffer): Buffer {
  return createHmac('sha256', secret).update('tandem route token').digest();
}
