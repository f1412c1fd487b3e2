/**
 * The trust decision for a request that reached the signalling node: which proof it must bring
 * before anything acts on it. One pure function of a few facts, so that a reader sees at a glance
 * why a request is, or is not, challenged.
 *
 * The rules (who can trigger what, and with what proof):
 * - REGISTER for a domain we serve goes to the registrar, challenged with 401 when auth is on.
 * - A request with a To-tag is in-dialog only when it comes back through a Route value we issued
 *   whose route token verifies for its Call-ID and tags (route-token.ts): the equivalent of
 *   Kamailio's `has_totag() && loose_route()`, except that our Route cannot be forged. Only such
 *   a request may end a dialog or touch its media, and it is not challenged (the UA that set the
 *   dialog up already proved who it is; RFC 3261 §22.1 does not ask proxies to challenge
 *   in-dialog requests).
 * - A To-tag without that proof proves nothing: the request is treated as out-of-dialog. An ACK
 *   is the exception: it cannot be answered or challenged (§17.2.1), so it is absorbed.
 * - Out-of-dialog requests that claim a local user in From must prove it (407) when auth is on.
 *   The rest (calls from other domains to our users) are routed by the relay rules of the
 *   default route, which never relays from a foreign domain to a foreign domain.
 */

export interface RequestFacts {
  method: string;
  /** The request carries a To-tag. */
  hasToTag: boolean;
  /** A Route value of ours with a valid route token was consumed (ProxyCore.preprocessRoutes). */
  routeAuthentic: boolean;
  /** REGISTER addressed to a domain we serve, with no Route left to follow. */
  forOurRegistrar: boolean;
  /** The From URI names a domain we serve. */
  fromLocalUser: boolean;
  /** Digest authentication is on. */
  authEnabled: boolean;
}

export type TrustDecision =
  /** Registrar; `authenticate`: digest (401) first. */
  | { step: 'registrar'; authenticate: boolean }
  /** Follows a route set we issued: forward along it; BYE ends the dialog and its media. */
  | { step: 'in-dialog' }
  /** Claims a local user: digest (407) first, then the relay rules. */
  | { step: 'authenticate' }
  /** Routed by the relay rules with no credentials asked. */
  | { step: 'out-of-dialog' }
  /** ACK with a To-tag and no route of ours: dropped without an answer. */
  | { step: 'absorb' };

export function decideTrust(f: RequestFacts): TrustDecision {
  if (f.method === 'REGISTER' && f.forOurRegistrar) return { step: 'registrar', authenticate: f.authEnabled };
  if (f.hasToTag && f.routeAuthentic) return { step: 'in-dialog' };
  if (f.method === 'ACK') return { step: 'absorb' };
  if (f.authEnabled && f.fromLocalUser) return { step: 'authenticate' };
  return { step: 'out-of-dialog' };
}
