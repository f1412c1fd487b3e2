import { formatVia } from '../message/header-values.js';
import { parseMessage } from '../message/parser.js';
import { SipRequest, type SipResponse } from '../message/sip-message.js';

function build(lines: string[]): SipRequest {
  const r = parseMessage(Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8'));
  if (!r.ok || !(r.value instanceof SipRequest)) {
    throw new Error(`SIP_ERR_INTERNAL: built an invalid request (${r.ok ? 'not a request' : r.reason})`);
  }
  return r.value;
}

function routeLines(req: SipRequest): string[] {
  return req.getAll('Route').map((r) => `Route: ${r}`);
}

/**
 * ACK for a non-2xx final response, built by the INVITE client transaction (RFC 3261
 * §17.1.1.3): "The ACK request constructed by the client transaction MUST contain values for
 * the Call-ID, From, and Request-URI that are equal to the values of those header fields in the
 * request passed to the transport by the client transaction ... The To header field in the ACK
 * MUST equal the To header field in the response being acknowledged ... The ACK MUST contain a
 * single Via header field, and this MUST be equal to the top Via header field of the original
 * request ... The CSeq header field in the ACK MUST contain the same value for the sequence
 * number as was present in the original request, but the method parameter MUST be equal to
 * "ACK" ... If the INVITE request whose response is being acknowledged had Route header
 * fields, those header fields MUST appear in the ACK."
 */
export function buildNon2xxAck(invite: SipRequest, res: SipResponse): SipRequest {
  return build([
    `ACK ${invite.uri} SIP/2.0`,
    `Via: ${formatVia(invite.topVia)}`,
    ...routeLines(invite),
    'Max-Forwards: 70',
    `From: ${invite.get('From') ?? ''}`,
    `To: ${res.get('To') ?? ''}`,
    `Call-ID: ${invite.callId}`,
    `CSeq: ${invite.cseq.seq} ACK`,
    'Content-Length: 0',
  ]);
}

/**
 * CANCEL for a pending request (RFC 3261 §9.1): "The Request-URI, Call-ID, To, the numeric
 * part of CSeq, and From header fields in the CANCEL request MUST be identical to those in the
 * request being cancelled, including tags. A CANCEL constructed by a client MUST have only a
 * single Via header field value matching the top Via value in the request being cancelled ...
 * If the request being cancelled contains a Route header field, the CANCEL request MUST
 * include that Route header field's values."
 */
export function buildCancel(req: SipRequest, reason?: string): SipRequest {
  return build([
    `CANCEL ${req.uri} SIP/2.0`,
    `Via: ${formatVia(req.topVia)}`,
    ...routeLines(req),
    'Max-Forwards: 70',
    `From: ${req.get('From') ?? ''}`,
    `To: ${req.get('To') ?? ''}`,
    `Call-ID: ${req.callId}`,
    `CSeq: ${req.cseq.seq} CANCEL`,
    ...(reason ? [`Reason: ${reason}`] : []),
    'Content-Length: 0',
  ]);
}

/**
 * A request a transaction kept as bytes only (its parsed form dropped to save memory), parsed
 * again. The bytes are our own serialization of a request that parsed: this cannot fail.
 */
export function requestFromOwnBytes(bytes: Buffer): SipRequest {
  const p = parseMessage(bytes);
  return (p.ok ? p.value : p.partial) as SipRequest;
}
