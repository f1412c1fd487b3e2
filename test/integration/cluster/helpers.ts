/** What the cluster tests share: a callee that answers everything, media nodes' session counts. */
import { NgClient } from '../../../src/ng/ng-client.js';
import type { SipRequest } from '../../../src/sip/message/sip-message.js';
import { SAMPLE_SDP, type TestUa } from '../signalling/helpers/test-ua.js';

/**
 * The callee answers every INVITE with 200 (with SDP on `sdpPort`, or none) and every BYE with
 * 200, until no request comes for `idleMs`.
 */
export function autoAnswer(callee: TestUa, o: { sdpPort?: number; idleMs?: number } = {}): void {
  void (async () => {
    for (;;) {
      let req: SipRequest;
      try {
        req = (await callee.waitFor((m) => m.isRequest() && ['INVITE', 'BYE'].includes((m as SipRequest).method), o.idleMs ?? 120_000)) as SipRequest;
      } catch {
        return;
      }
      if (req.method === 'INVITE') callee.send(callee.response(req, 200, 'OK', { toTag: `t${req.callId.slice(0, 6)}`, ...(o.sdpPort ? { body: SAMPLE_SDP(o.sdpPort) } : {}) }));
      else callee.send(callee.response(req, 200, 'OK'));
    }
  })();
}

/** Calls a media node holds now (ng `statistics`, sessionsown); -1 when it does not answer. */
export async function mediaSessions(ngPort: number): Promise<number> {
  const c = new NgClient({ host: '127.0.0.1', port: ngPort, timeoutMs: 2000 });
  try {
    const r = await c.statistics();
    const st = r.ok ? (r.value['statistics'] as { currentstatistics?: { sessionsown?: number } } | undefined) : undefined;
    return st?.currentstatistics?.sessionsown ?? -1;
  } finally {
    c.close();
  }
}
