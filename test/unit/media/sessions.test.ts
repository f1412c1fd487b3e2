import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMediaNode, type MediaNode } from '../../../src/media/media-node.js';
import { NgClient } from '../../../src/ng/ng-client.js';
import { estimateMosX10 } from '../../../src/media/sessions/mos.js';
import { deriveMaxSessions, effectiveMaxSessions, validateMediaConfig } from '../../../src/media/config-schema.js';
import { audioSdp, randomRtpRange, rtpPacket, sdpMedia, sendTo, sleep, udpPeer, waitFor } from '../../integration/media/media-harness.js';

const H = '127.0.0.1';
let node: MediaNode;
let ng: NgClient;

beforeAll(async () => {
  node = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(600), workers: 2, noMediaTimeoutSec: 0.6, portQuarantineMs: 0 });
  ng = new NgClient({ host: H, port: node.ngPort, retransmitIntervalMs: 500, retransmits: 2 });
});
afterAll(async () => {
  ng?.close();
  await node?.close();
});

const twoStreams = (p1: number, p2: number): string =>
  ['v=0', `o=- 5 5 IN IP4 ${H}`, 's=-', 't=0 0', `m=audio ${p1} RTP/AVP 0`, `c=IN IP4 ${H}`, 'a=rtcp-mux', `m=video ${p2} RTP/AVP 96`, `c=IN IP4 ${H}`, 'a=rtpmap:96 H264/90000', ''].join('\r\n');

/** Replaces the relay's port numbers with PORT so SDP can be compared as text. */
function withPlaceholders(sdp: string, ports: number[]): string {
  let out = sdp;
  for (const p of ports) out = out.replaceAll(String(p), 'PORT');
  return out;
}

describe('SDP returned by offer/answer (text with PORT placeholders)', () => {
  it('offer-rewrites-connection-ports-rtcp-drops-ice', async () => {
    const sdp = [
      'v=0',
      'o=alice 2890844526 2890844527 IN IP4 192.0.2.10',
      's=Talk',
      'c=IN IP4 192.0.2.10',
      'b=AS:84',
      't=0 0',
      'a=ice-options:trickle',
      'm=audio 49170 RTP/AVP 8 0 101',
      'a=rtpmap:8 PCMA/8000',
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-16',
      'a=ptime:20',
      'a=rtcp:49171',
      'a=ice-ufrag:F7gI',
      'a=ice-pwd:x9cml/YzichV2+XlhiMu8g',
      'a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host',
      'a=sendrecv',
      '',
    ].join('\r\n');
    const o = await ng.offer({ callId: 'golden', fromTag: 'A', sdp, flags: ['trust-address'], replace: ['origin', 'session-connection'], ice: 'remove' });
    if (!o.ok) throw new Error(o.reason);
    const port = sdpMedia(o.value.sdp).port;
    expect(withPlaceholders(o.value.sdp, [port, port + 1])).toBe(
      [
        'v=0',
        `o=alice 2890844526 2890844527 IN IP4 ${H}`,
        's=Talk',
        `c=IN IP4 ${H}`,
        'b=AS:84',
        't=0 0',
        'm=audio PORT RTP/AVP 8 0 101',
        'a=rtpmap:8 PCMA/8000',
        'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:101 telephone-event/8000',
        'a=fmtp:101 0-16',
        'a=ptime:20',
        'a=rtcp:PORT',
        'a=sendrecv',
        '',
      ].join('\r\n'),
    );
    const answer = ['v=0', 'o=bob 1 1 IN IP4 198.51.100.7', 's=-', 'c=IN IP4 198.51.100.7', 't=0 0', 'm=audio 3456 RTP/AVP 8 101', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\n');
    const a = await ng.answer({ callId: 'golden', fromTag: 'A', toTag: 'B', sdp: answer, flags: ['trust-address'] });
    if (!a.ok) throw new Error(a.reason);
    const aport = sdpMedia(a.value.sdp).port;
    expect(aport).not.toBe(port);
    // No replace-origin on the answer: o= kept; LF line endings kept.
    expect(withPlaceholders(a.value.sdp, [aport])).toBe(
      ['v=0', 'o=bob 1 1 IN IP4 198.51.100.7', 's=-', `c=IN IP4 ${H}`, 't=0 0', 'm=audio PORT RTP/AVP 8 101', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\n'),
    );
    await ng.delete({ callId: 'golden', fromTag: 'A' });
  });
});

describe('sessions', () => {
  it('re-INVITE from the callee swaps roles and keeps the ports', async () => {
    const callId = 'reinv';
    const o = await ng.offer({ callId, fromTag: 'A', sdp: audioSdp(4000), flags: ['trust-address'] });
    const a = await ng.answer({ callId, fromTag: 'A', toTag: 'B', sdp: audioSdp(5000), flags: ['trust-address'] });
    if (!o.ok || !a.ok) throw new Error('offer/answer failed');
    const toB = sdpMedia(o.value.sdp).port;
    const toA = sdpMedia(a.value.sdp).port;
    // Callee re-INVITEs: from-tag B offers, A answers.
    const ro = await ng.offer({ callId, fromTag: 'B', toTag: 'A', sdp: audioSdp(5002), flags: ['trust-address'] });
    const ra = await ng.answer({ callId, fromTag: 'B', toTag: 'A', sdp: audioSdp(4002), flags: ['trust-address'] });
    if (!ro.ok || !ra.ok) throw new Error('re-offer failed');
    expect(sdpMedia(ro.value.sdp).port).toBe(toA); // toward A: A's leg
    expect(sdpMedia(ra.value.sdp).port).toBe(toB); // toward B: B's leg
    const q = await ng.query({ callId });
    expect(q.ok && Object.keys(q.value['tags'] as object).sort()).toEqual(['A', 'B']);
    await ng.delete({ callId, fromTag: 'A' });
  });

  it('several m= lines, rtcp-mux, rejected stream (port 0) left alone', async () => {
    const callId = 'multi';
    const o = await ng.offer({ callId, fromTag: 'A', sdp: twoStreams(4000, 0), flags: ['trust-address'] });
    if (!o.ok) throw new Error(o.reason);
    const ports = [...o.value.sdp.matchAll(/^m=\S+ (\d+) /gm)].map((m) => Number(m[1]));
    expect(ports[0]).not.toBe(4000);
    expect(ports[1]).toBe(0);
    expect(o.value.sdp).toContain('a=rtcp-mux');
    expect(o.value.sdp.match(/c=IN IP4/g)?.length).toBe(2);
    const o2 = await ng.offer({ callId, fromTag: 'A', sdp: twoStreams(4000, 4010), flags: ['trust-address'] });
    if (!o2.ok) throw new Error(o2.reason);
    const ports2 = [...o2.value.sdp.matchAll(/^m=\S+ (\d+) /gm)].map((m) => Number(m[1]));
    expect(ports2[0]).toBe(ports[0]);
    expect(ports2[1]).toBeGreaterThan(0);
    await ng.delete({ callId, fromTag: 'A' });
  });

  it('hold (c=0.0.0.0) leaves the peer unknown; packets to it are dropped, not sent to 0.0.0.0', async () => {
    const callId = 'hold';
    const b = await udpPeer();
    try {
      const o = await ng.offer({ callId, fromTag: 'A', sdp: audioSdp(4000, '0.0.0.0'), flags: ['trust-address'] });
      const a = await ng.answer({ callId, fromTag: 'A', toTag: 'B', sdp: audioSdp(b.port), flags: ['trust-address'] });
      if (!o.ok || !a.ok) throw new Error('failed');
      expect(o.value.sdp).toContain(`c=IN IP4 ${node.advertisedAddress}`);
      await sendTo(b.sock, rtpPacket(1, 1), sdpMedia(o.value.sdp).port);
      await sleep(50);
      const q = await ng.query({ callId });
      expect(q.ok && (q.value['totals'] as { RTP: { errors: number } }).RTP.errors).toBe(1);
    } finally {
      b.close();
      await ng.delete({ callId, fromTag: 'A' });
    }
  });

  it('answer for an unknown call, delete fatal, delete with unknown tag, delete delay', async () => {
    expect(await ng.answer({ callId: 'nope', fromTag: 'a', toTag: 'b', sdp: audioSdp(1) })).toMatchObject({ ok: false, reason: 'Unknown call-id' });
    expect(await ng.delete({ callId: 'nope', fromTag: 'a', flags: ['fatal'] })).toMatchObject({ ok: false, reason: 'Unknown call-id' });
    await ng.offer({ callId: 'dd', fromTag: 'A', sdp: audioSdp(4000) });
    const wrongTag = await ng.delete({ callId: 'dd', fromTag: 'X' });
    expect(wrongTag.ok && wrongTag.value['warning']).toMatch(/not found/);
    const d = await ng.delete({ callId: 'dd', fromTag: 'A', deleteDelaySec: 1 });
    expect(d.ok && d.value['created']).toBeGreaterThan(0);
    expect((await ng.query({ callId: 'dd' })).ok).toBe(true);
    await sleep(1200);
    expect((await ng.query({ callId: 'dd' })).ok).toBe(false);
  });

  it('a call without media is torn down after the no-media timeout; one with media is not', async () => {
    const a = await udpPeer();
    const b = await udpPeer();
    try {
      await ng.offer({ callId: 'idle', fromTag: 'A', sdp: audioSdp(4000) });
      const o = await ng.offer({ callId: 'busy', fromTag: 'A', sdp: audioSdp(a.port), flags: ['trust-address'] });
      await ng.answer({ callId: 'busy', fromTag: 'A', toTag: 'B', sdp: audioSdp(b.port), flags: ['trust-address'] });
      if (!o.ok) throw new Error(o.reason);
      const toB = sdpMedia(o.value.sdp).port;
      const deadline = Date.now() + 1500;
      let seq = 0;
      while (Date.now() < deadline) {
        await sendTo(b.sock, rtpPacket(seq++, 9), toB);
        await sleep(40);
      }
      expect((await ng.query({ callId: 'idle' })).ok).toBe(false);
      expect((await ng.query({ callId: 'busy' })).ok).toBe(true);
      expect(node.sessions.totals.timeout).toBeGreaterThanOrEqual(1);
      await ng.delete({ callId: 'busy', fromTag: 'A' });
    } finally {
      a.close();
      b.close();
    }
  });

  it('a call reaching the hard session limit is torn down even with media', async () => {
    const short = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(8), workers: 1, maxSessionSec: 0.5, noMediaTimeoutSec: 60 });
    const c = new NgClient({ host: H, port: short.ngPort, retransmitIntervalMs: 500, retransmits: 1 });
    try {
      expect((await c.offer({ callId: 'long', fromTag: 'a', sdp: audioSdp(4000) })).ok).toBe(true);
      expect(await waitFor(() => short.sessions.size === 0, 4000)).toBe(true);
      expect(short.sessions.totals.hardLimit).toBe(1);
    } finally {
      c.close();
      await short.close();
    }
  });

  it('port exhaustion answers an error and the node keeps serving', async () => {
    // An explicit session limit wins over the derived one (1 for 8 ports), so the ports run out first.
    const small = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(8), workers: 1, maxSessions: 10 });
    const c = new NgClient({ host: H, port: small.ngPort, retransmitIntervalMs: 500, retransmits: 1 });
    try {
      // 8 ports hold at most two calls (fewer if another process holds one of the ports).
      const placed: string[] = [];
      let refused: Awaited<ReturnType<typeof c.offer>> | undefined;
      for (let i = 1; i <= 4 && !refused; i++) {
        const r = await c.offer({ callId: `x${i}`, fromTag: 'a', sdp: audioSdp(4000) });
        if (r.ok) placed.push(`x${i}`);
        else refused = r;
      }
      expect(placed.length).toBeGreaterThanOrEqual(1);
      expect(placed.length).toBeLessThanOrEqual(2);
      expect(refused).toMatchObject({ ok: false, code: 'NG_ERR_REMOTE', reason: 'Ran out of ports' });
      expect((await c.ping()).ok).toBe(true);
      const l = await c.list();
      expect(l.ok && l.value['calls']).toEqual(placed);
    } finally {
      c.close();
      await small.close();
    }
  });

  it('concurrent offers/answers/deletes (bounded) all succeed and leave no call behind', async () => {
    const before = node.sessions.size;
    let next = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 200) {
          const i = next++;
          const callId = `stress-${i}`;
          // Two offers for the same call at once must not allocate twice.
          const [o1, o2] = await Promise.all([
            ng.offer({ callId, fromTag: 'a', sdp: audioSdp(4000) }),
            ng.offer({ callId, fromTag: 'a', sdp: audioSdp(4000) }),
          ]);
          const a = await ng.answer({ callId, fromTag: 'a', toTag: 'b', sdp: audioSdp(5000) });
          if (!o1.ok || !o2.ok || !a.ok) failures.push(callId);
          else if (sdpMedia(o1.value.sdp).port !== sdpMedia(o2.value.sdp).port) failures.push(`${callId}: two allocations`);
          const d = await ng.delete({ callId, fromTag: 'a' });
          if (!d.ok) failures.push(`${callId}: delete`);
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(node.sessions.size).toBe(before);
  });

  it('IPv6: ng over [::1], media advertised as IP6', async () => {
    const v6 = await startMediaNode({ ng: '[::1]:0', interface: '::1', rtpPorts: randomRtpRange(16), workers: 1 });
    const c = new NgClient({ host: '::1', port: v6.ngPort, retransmitIntervalMs: 500, retransmits: 1 });
    try {
      const o = await c.offer({ callId: 'v6', fromTag: 'a', sdp: 'v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n' });
      expect(o.ok && o.value.sdp).toMatch(/^c=IN IP6 ::1\r$/m);
    } finally {
      c.close();
      await v6.close();
    }
  });

  it('a dead relay worker ends the dialogues on it; the call ends with its last one', async () => {
    const one = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(40), workers: 1, sparePairs: 0 });
    const c = new NgClient({ host: H, port: one.ngPort, retransmitIntervalMs: 500, retransmits: 1 });
    try {
      expect((await c.offer({ callId: 'w', fromTag: 'a', sdp: audioSdp(4000) })).ok).toBe(true);
      expect((await c.offer({ callId: 'w', fromTag: 'x', sdp: audioSdp(4002) })).ok).toBe(true);
      expect(one.sessions.dialogueCount).toBe(2);
      one.sessions.onWorkerExit(0);
      expect(one.sessions.dialogueCount).toBe(0);
      expect(one.sessions.size).toBe(0);
    } finally {
      c.close();
      await one.close();
    }
  });

  it('calls on a relay worker that died are ended', async () => {
    const one = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(16), workers: 1 });
    const c = new NgClient({ host: H, port: one.ngPort, retransmitIntervalMs: 500, retransmits: 1 });
    try {
      expect((await c.offer({ callId: 'w0', fromTag: 'a', sdp: audioSdp(4000) })).ok).toBe(true);
      one.sessions.onWorkerExit(1); // another worker: untouched
      expect(one.sessions.size).toBe(1);
      one.sessions.onWorkerExit(0);
      expect(one.sessions.size).toBe(0);
      expect(await c.query({ callId: 'w0' })).toMatchObject({ ok: false, reason: 'Unknown call-id' });
    } finally {
      c.close();
      await one.close();
    }
  });

  it('an idle fork times out alone; the call with media keeps running', async () => {
    const a = await udpPeer();
    const b = await udpPeer();
    const callId = 'fork-idle';
    try {
      const o = await ng.offer({ callId, fromTag: 'A', sdp: audioSdp(a.port), flags: ['trust-address'] });
      await ng.answer({ callId, fromTag: 'A', toTag: 'B', sdp: audioSdp(b.port), flags: ['trust-address'] });
      const fork = await ng.offer({ callId, fromTag: 'X', sdp: audioSdp(4000), flags: ['trust-address'] });
      if (!o.ok || !fork.ok) throw new Error('offer failed');
      const dialoguesBefore = node.sessions.dialogueCount;
      const toB = sdpMedia(o.value.sdp).port;
      const deadline = Date.now() + 1500;
      let seq = 0;
      while (Date.now() < deadline) {
        await sendTo(b.sock, rtpPacket(seq++, 9), toB);
        await sleep(40);
      }
      const q = await ng.query({ callId });
      expect(q.ok && Object.keys(q.value['tags'] as object).sort()).toEqual(['A', 'B']);
      expect(node.sessions.dialogueCount).toBe(dialoguesBefore - 1);
      expect(a.received.length).toBeGreaterThan(10);
      await ng.delete({ callId, fromTag: 'A' });
      expect((await ng.query({ callId })).ok).toBe(false);
    } finally {
      a.close();
      b.close();
    }
  });

  it('answers go to the dialogue of their tags; an answer from a tag that offered nothing is refused', async () => {
    const callId = 'fork-answer';
    const o = await ng.offer({ callId, fromTag: 'A', sdp: audioSdp(4000), flags: ['trust-address'] });
    const a = await ng.answer({ callId, fromTag: 'A', toTag: 'B', sdp: audioSdp(5000), flags: ['trust-address'] });
    const fo = await ng.offer({ callId, fromTag: 'X', sdp: audioSdp(4100), flags: ['trust-address'] });
    const fa = await ng.answer({ callId, fromTag: 'X', toTag: 'Y', sdp: audioSdp(5100), flags: ['trust-address'] });
    if (!o.ok || !a.ok || !fo.ok || !fa.ok) throw new Error('offer/answer failed');
    const main = { toB: sdpMedia(o.value.sdp).port, toA: sdpMedia(a.value.sdp).port };
    const forked = { toB: sdpMedia(fo.value.sdp).port, toA: sdpMedia(fa.value.sdp).port };
    expect(new Set([main.toA, main.toB, forked.toA, forked.toB]).size).toBe(4);
    // Re-answers land in their own dialogue: the answer toward A carries A's leg, toward X the fork's.
    const ra = await ng.answer({ callId, fromTag: 'A', toTag: 'B', sdp: audioSdp(5002), flags: ['trust-address'] });
    const rx = await ng.answer({ callId, fromTag: 'X', toTag: 'Y', sdp: audioSdp(5102), flags: ['trust-address'] });
    expect(ra.ok && sdpMedia(ra.value.sdp).port).toBe(main.toA);
    expect(rx.ok && sdpMedia(rx.value.sdp).port).toBe(forked.toA);
    expect(await ng.answer({ callId, fromTag: 'Q', toTag: 'B', sdp: audioSdp(6000) })).toMatchObject({ ok: false, reason: 'Unknown tag' });
    expect(await ng.answer({ callId, fromTag: 'B', toTag: 'B', sdp: audioSdp(6000) })).toMatchObject({ ok: false, reason: 'From-tag and to-tag are the same' });
    // The callee re-INVITEs: its own dialogue, its own leg, not the fork.
    const ro = await ng.offer({ callId, fromTag: 'B', sdp: audioSdp(5004), flags: ['trust-address'] });
    expect(ro.ok && sdpMedia(ro.value.sdp).port).toBe(main.toA);
    const s = node.sessions.summaries().find((c) => c.callId === callId);
    expect(s?.dialogues.map((d) => d.tags)).toEqual([['A', 'B'], ['X', 'Y']]);
    expect(s?.tags).toEqual(['A', 'B', 'X', 'Y']);
    await ng.delete({ callId, fromTag: '' });
    expect(node.sessions.summaries().find((c) => c.callId === callId)).toBeUndefined();
  });

  it('delete delay on a fork ends only the fork', async () => {
    // Own node: the shared one's 0.6 s no-media timeout would end both dialogues first.
    const n = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(40), workers: 1 });
    const c = new NgClient({ host: H, port: n.ngPort, retransmitIntervalMs: 500, retransmits: 1 });
    try {
      const callId = 'fork-delay';
      await c.offer({ callId, fromTag: 'A', sdp: audioSdp(4000) });
      await c.offer({ callId, fromTag: 'X', sdp: audioSdp(4100) });
      const d = await c.delete({ callId, fromTag: 'X', deleteDelaySec: 1 });
      expect(d.ok && Object.keys(d.value['tags'] as object)).toEqual(['X']);
      const q1 = await c.query({ callId });
      expect(q1.ok && Object.keys(q1.value['tags'] as object).sort()).toEqual(['A', 'X']);
      await sleep(1200);
      const q2 = await c.query({ callId });
      expect(q2.ok && Object.keys(q2.value['tags'] as object)).toEqual(['A']);
      expect(n.sessions.dialogueCount).toBe(1);
    } finally {
      c.close();
      await n.close();
    }
  });

  it('statistics reports sessions and control counters', async () => {
    const s = await ng.statistics();
    expect(s.ok).toBe(true);
    if (!s.ok) return;
    const st = s.value['statistics'] as Record<string, Record<string, unknown>>;
    expect(st['currentstatistics']).toHaveProperty('sessionsown');
    expect(st['totalstatistics']!['managedsessions']).toBeGreaterThan(0);
    expect((st['controlstatistics']!['proxies'] as Array<Record<string, number>>)[0]!['offercount']).toBeGreaterThan(0);
  });
});

describe('MOS estimate', () => {
  it('is about 4.4 for a clean G.711 stream and falls with loss and jitter', () => {
    expect(estimateMosX10(0, 0)).toBe(44);
    expect(estimateMosX10(10, 20)).toBeLessThan(36);
    expect(estimateMosX10(30, 100)).toBeLessThan(25);
    expect(estimateMosX10(100, 1000)).toBe(10);
  });
});

describe('media config', () => {
  it('applies defaults and lists every problem', () => {
    const ok = validateMediaConfig({});
    expect(ok.ok && ok.value.rtpPorts).toBe('30000-39999');
    expect(ok.ok && ok.value.noMediaTimeoutSec).toBe(60);
    const bad = validateMediaConfig({ ng: 'nope', rtpPorts: '5-4', interface: 'x' } as never);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.reason.split('\n').length).toBe(3);
    expect(validateMediaConfig({ bogus: 1 } as never).ok).toBe(false);
  });

  it('derives the session limit from the port range: 4 ports per call, minus the spare pairs', () => {
    // 30000-39999: 5000 RTP/RTCP slots, 2500 relay pairs, 4 kept spare.
    expect(deriveMaxSessions(30000, 39999, 4)).toBe(2496);
    expect(deriveMaxSessions(30000, 39999, 0)).toBe(2500);
    // An odd start loses a port: 30001-30008 holds slots 30002, 30004, 30006 -> one pair.
    expect(deriveMaxSessions(30001, 30008, 0)).toBe(1);
    expect(deriveMaxSessions(30000, 30031, 4)).toBe(4);
    // Never 0 (which would mean "no limit") while the range holds a pair.
    expect(deriveMaxSessions(30000, 30003, 4)).toBe(1);
    const defaults = validateMediaConfig({});
    if (!defaults.ok) throw new Error(defaults.reason);
    expect(defaults.value.maxSessions).toBe(0);
    expect(effectiveMaxSessions(defaults.value)).toBe(2496);
    expect(effectiveMaxSessions({ ...defaults.value, rtpPorts: '20000-20099', sparePairs: 0 })).toBe(25);
    // An explicit number wins, above or below the derived one.
    expect(effectiveMaxSessions({ ...defaults.value, maxSessions: 5000 })).toBe(5000);
    expect(effectiveMaxSessions({ ...defaults.value, maxSessions: 3 })).toBe(3);
    // A range that cannot hold one call is refused.
    expect(validateMediaConfig({ rtpPorts: '30001-30004' }).ok).toBe(false);
    expect(validateMediaConfig({ rtpPorts: '30000-30003' }).ok).toBe(true);
  });

  it('hard duration limit is off by default and can be set; the node applies the derived session limit', async () => {
    const defaults = validateMediaConfig({});
    expect(defaults.ok && defaults.value.maxSessionSec).toBe(0);
    expect(validateMediaConfig({ maxSessionSec: 7200 }).ok).toBe(true);
    expect(validateMediaConfig({ maxSessionSec: -1 }).ok).toBe(false);
    expect(node.sessions.limits.maxSessionMs).toBe(0);
    // beforeAll: 600 ports = 300 slots = 150 pairs, 4 spare.
    expect(node.sessions.limits.maxSessions).toBe(146);
    const set = await startMediaNode({ ng: `${H}:0`, rtpPorts: randomRtpRange(16), workers: 1, maxSessionSec: 7200, maxSessions: 2 });
    try {
      expect(set.sessions.limits).toMatchObject({ maxSessionMs: 7_200_000, maxSessions: 2 });
    } finally {
      await set.close();
    }
  });
});
