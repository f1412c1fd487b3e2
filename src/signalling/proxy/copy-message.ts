import { SipRequest, SipResponse } from '../../sip/message/sip-message.js';

/**
 * Copy of a request with its own header list (the body buffer is shared; buffers are treated as
 * immutable). `clone()` keeps the received bytes so unchanged header lines are relayed as-is.
 */
export function copyRequest(req: SipRequest): SipRequest {
  try {
    return req.clone();
  } catch {
    return new SipRequest(req.method, req.uri, req.headers.clone(), req.body);
  }
}

/** Copy of a response with its own header list. */
export function copyResponse(res: SipResponse): SipResponse {
  try {
    return res.clone();
  } catch {
    return new SipResponse(res.status, res.reason, res.headers.clone(), res.body);
  }
}
