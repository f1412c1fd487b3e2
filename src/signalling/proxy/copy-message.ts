import { SipRequest, SipResponse } from '../../sip/message/sip-message.js';

/** Copy of a request with its own header list (the body buffer is shared; buffers are immutable). */
export function copyRequest(req: SipRequest): SipRequest {
  return new SipRequest(req.method, req.uri, req.headers.clone(), req.body);
}

/** Copy of a response with its own header list. */
export function copyResponse(res: SipResponse): SipResponse {
  return new SipResponse(res.status, res.reason, res.headers.clone(), res.body);
}
