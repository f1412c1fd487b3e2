/**
 * Stable error codes of the message layer and the one table that maps each to the SIP status
 * a UAS/proxy answers with (RFC 3261 §8.2, §16.3, §18.3, §21.4). The `reason` of a failed
 * parse is the reason phrase to send with it (`400 Missing Call-ID`).
 */
export type SipErrorCode =
  | 'SIP_ERR_TOO_LARGE'
  | 'SIP_ERR_EMPTY'
  | 'SIP_ERR_BAD_START_LINE'
  | 'SIP_ERR_BAD_VERSION'
  | 'SIP_ERR_INCOMPLETE'
  | 'SIP_ERR_BAD_HEADER'
  | 'SIP_ERR_MISSING_HEADER'
  | 'SIP_ERR_BAD_CONTENT_LENGTH'
  | 'SIP_ERR_BAD_VIA'
  | 'SIP_ERR_BAD_CSEQ'
  | 'SIP_ERR_BAD_CALL_ID'
  | 'SIP_ERR_BAD_FROM'
  | 'SIP_ERR_BAD_TO'
  | 'SIP_ERR_BAD_MAX_FORWARDS'
  | 'SIP_ERR_BAD_URI'
  | 'SIP_ERR_UNSUPPORTED_URI_SCHEME';

/** Status code to answer a request that failed with `code` (when it can be answered at all). */
export const SIP_ERROR_STATUS: Readonly<Record<SipErrorCode, number>> = {
  SIP_ERR_TOO_LARGE: 513, // Message Too Large (§21.5.13)
  SIP_ERR_EMPTY: 400,
  SIP_ERR_BAD_START_LINE: 400,
  SIP_ERR_BAD_VERSION: 505, // Version Not Supported (§21.5.7)
  SIP_ERR_INCOMPLETE: 400,
  SIP_ERR_BAD_HEADER: 400,
  SIP_ERR_MISSING_HEADER: 400,
  SIP_ERR_BAD_CONTENT_LENGTH: 400, // §18.3
  SIP_ERR_BAD_VIA: 400,
  SIP_ERR_BAD_CSEQ: 400,
  SIP_ERR_BAD_CALL_ID: 400,
  SIP_ERR_BAD_FROM: 400,
  SIP_ERR_BAD_TO: 400,
  SIP_ERR_BAD_MAX_FORWARDS: 400,
  SIP_ERR_BAD_URI: 400,
  SIP_ERR_UNSUPPORTED_URI_SCHEME: 416, // Unsupported URI Scheme (§21.4.14)
};

export function sipErrorStatus(code: string): number {
  return (SIP_ERROR_STATUS as Record<string, number>)[code] ?? 400;
}
