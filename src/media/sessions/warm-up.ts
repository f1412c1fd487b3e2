/**
 * Warm-up of the ng command path as a media node starts.
 *
 * A fresh Node process runs the ng path in V8's interpreter and baseline tiers until enough calls
 * have gone through for the optimising compiler to take over; measured with a C ng client at
 * 50 calls/s (bench/ng.bench.ts), a node just started answered offer+answer with p99 4-5 ms for
 * about 40 s (2,000 calls) and 0.6-0.7 ms after. A node that starts (or a standby that takes
 * over a dead one's VIP) takes its first calls at full speed only if that happens before it
 * answers. So the node runs synthetic calls through the same code first: ng decoding, request
 * normalisation, a SessionManager (offer, answer, delete with SDP parse and rewrite), reply
 * encoding. The relay under that SessionManager is a stand-in that binds nothing, so no port is
 * taken and no packet is sent; its counters and metrics are put back afterwards.
 */
import { formatNgMessage, parseNgMessage } from '../../ng/ng-message.js';
import { parseNgRequest } from '../../ng/ng-request.js';
import { bencode } from '../../ng/bencode.js';
import type { AllocatedPair, ChannelStats, LegStats, PairStats, RelayTotals, Side } from '../relay/types.js';
import { resetSessionMetrics, SessionManager, type RelayApi } from './session-manager.js';

export interface WarmUpOptions {
  /** Synthetic calls (offer, answer, delete). */
  calls: number;
  /** Address the stand-in relay advertises (the node's own, so SDP rewriting sees its family). */
  advertisedAddress: string;
  /** As the node's SessionManager, so the spare-pair path is exercised too. */
  sparePairs: number;
}

const channel = (): ChannelStats => ({ packets: 0, bytes: 0, errors: 0, forwarded: 0, lastPacketMs: 0, latched: false });

/** A relay that binds and forwards nothing, shaped like RelayEngine's answers. */
function standInRelay(address: string): RelayApi {
  let nextId = 1;
  let port = 2;
  const pairs = new Map<number, { callKey: string; createdMs: number; a: { rtpPort: number; rtcpPort: number }; b: { rtpPort: number; rtcpPort: number } }>();
  const leg = (ports: { rtpPort: number; rtcpPort: number }): LegStats => ({ ports, rtp: channel(), rtcp: channel(), ssrcs: [] });
  const relay = {
    advertisedAddress: address,
    async allocatePair(callKey: string): Promise<{ ok: true; value: AllocatedPair }> {
      port = port >= 65_000 ? 2 : port + 4;
      const p = { id: nextId++, address, a: { rtpPort: port, rtcpPort: port + 1 }, b: { rtpPort: port + 2, rtcpPort: port + 3 }, worker: 0 };
      pairs.set(p.id, { callKey, createdMs: Date.now(), a: p.a, b: p.b });
      return { ok: true, value: p };
    },
    setPeer(_id: number, _side: Side): void {},
    release(id: number): void {
      pairs.delete(id);
    },
    async stats(id: number): Promise<PairStats | undefined> {
      const p = pairs.get(id);
      return p ? { id, callKey: p.callKey, createdMs: p.createdMs, a: leg(p.a), b: leg(p.b) } : undefined;
    },
    async idlePairs(): Promise<number[]> {
      return [];
    },
    async totals(): Promise<RelayTotals> {
      throw new Error('not used by the warm-up');
    },
  };
  return relay as unknown as RelayApi;
}

function sdp(address: string, port: number, version: number): string {
  const family = address.includes(':') ? 'IP6' : 'IP4';
  return (
    `v=0\r\no=- ${1000 + version} ${version} IN ${family} ${address}\r\ns=-\r\nc=IN ${family} ${address}\r\nt=0 0\r\n` +
    `m=audio ${port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n` +
    'a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n'
  );
}

/** One command as a controller sends it, through decoding, the SessionManager and reply encoding. */
async function command(sessions: SessionManager, cookie: string, dict: Record<string, unknown>): Promise<boolean> {
  const msg = parseNgMessage(Buffer.concat([Buffer.from(`${cookie} `, 'latin1'), bencode(dict, 'latin1')]));
  if (!msg.ok) return false;
  const req = parseNgRequest(msg.value.dict);
  if (!req.ok) return false;
  const verb = req.value.command;
  const reply = verb === 'offer' ? await sessions.offer(req.value) : verb === 'answer' ? await sessions.answer(req.value) : await sessions.delete(req.value);
  formatNgMessage(msg.value.cookie, msg.value.encoding, reply);
  return reply['result'] === 'ok';
}

let once: Promise<{ calls: number; ms: number }> | undefined;

/** {@link warmUpNgPath} once per process: later media cores (one per VIP in a cluster node) share the first one's. */
export function warmUpNgPathOnce(opts: WarmUpOptions): Promise<{ calls: number; ms: number }> {
  return (once ??= warmUpNgPath(opts));
}

/**
 * Runs `calls` synthetic calls through the ng path (see the file comment). Yields to the event
 * loop between calls, so it can overlap the relay's own start. Resolves to the calls that went
 * through and the time taken.
 */
export async function warmUpNgPath(opts: WarmUpOptions): Promise<{ calls: number; ms: number }> {
  const started = performance.now();
  const sessions = new SessionManager({ relay: standInRelay(opts.advertisedAddress), sparePairs: opts.sparePairs });
  const peer = opts.advertisedAddress.includes(':') ? '2001:db8::7' : '192.0.2.7';
  let done = 0;
  try {
    for (let i = 0; i < opts.calls; i++) {
      const callId = `warm-up-${i}@tandem`;
      // Both ways Kamailio's rtpengine module sends them: SDP addresses trusted, or the source given.
      const where = i % 2 === 0 ? { flags: ['trust-address'] } : { 'received-from': ['IP4', '192.0.2.9'], flags: ['SIP-source-address'] };
      const ok =
        (await command(sessions, `w${i}o`, { command: 'offer', 'call-id': callId, 'from-tag': `f${i}`, sdp: sdp(peer, 10_000 + (i % 5000) * 2, i), replace: ['origin', 'session-connection'], ICE: 'remove', ...where })) &&
        (await command(sessions, `w${i}a`, { command: 'answer', 'call-id': callId, 'from-tag': `f${i}`, 'to-tag': `t${i}`, sdp: sdp(peer, 20_000 + (i % 5000) * 2, i + 1), replace: ['origin', 'session-connection'], ...where })) &&
        (await command(sessions, `w${i}d`, { command: 'delete', 'call-id': callId, 'from-tag': `f${i}`, 'delete delay': 0 }));
      if (ok) done++;
      await new Promise<void>((r) => setImmediate(r));
    }
  } finally {
    sessions.close();
    resetSessionMetrics();
  }
  return { calls: done, ms: performance.now() - started };
}
