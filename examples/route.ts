/**
 * Sample routing script for `tandem start --route examples/route.ts`.
 * Numbers starting with 9 go to the dispatcher set "pbx" (defined in the config's
 * `dispatcher.sets`); everything else uses the built-in route (registered users).
 */
import type { SipRequest } from '../src/sip/message/sip-message.js';
import type { RouteContext, RouteResult } from '../src/signalling/proxy/types.js';

export default function route(request: SipRequest, context: RouteContext): RouteResult {
  if (request.method === 'MESSAGE' && !context.authUser && !context.inDialog) return { kind: 'reply', status: 403, reason: 'Forbidden' };
  const user = request.requestUri.user ?? '';
  const dispatcher = context.services['dispatcher'] as { dispatch?: (set: string, req: SipRequest) => RouteResult } | undefined;
  if (!context.inDialog && request.method === 'INVITE' && user.startsWith('9') && dispatcher?.dispatch) {
    return dispatcher.dispatch('pbx', request);
  }
  return { kind: 'default' };
}
