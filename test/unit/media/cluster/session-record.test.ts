import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeSessionRecord, encodeSessionRecord } from '../../../../src/media/cluster/session-record.js';
import { createMediaCore, type MediaCore } from '../../../../src/media/media-node.js';
import { validateMediaConfig } from '../../../../src/media/config-schema.js';
import type { NgRequest } from '../../../../src/ng/ng-request.js';
import type { CallExport } from '../../../../src/media/sessions/session-export.js';
import { audioSdp, randomRtpRange, rtpPacket, sdpMedia, sendTo, udpPeer, waitFor } from '../../../integration/media/media-harness.js';

const sample: CallExport = {
  callId: 'c1',
  createdMs: 1,
  lastSignalMs: 2,
  dialogues: [
    {
      a: { tag: 'A', createdMs: 1 },
      b: { tag: 'B', createdMs: 2 },
      answered: true,
      createdMs: 1,
      lastSignalMs: 2,
      media: [
        {
          index: 0,
          type: 'audio',
          protocol: 'RTP/AVP',
          rtcpMux: false,
          ports: { a: { rtpPort: 30000, rtcpPort: 30001 }, b: { rtpPort: 30002, rtcpPort: 30003 } },
          advertised: { a: { address: '192.0.2.1', port: 4000 } },
          peer: { a: { rtp: { address: '192.0.2.1', port: 4000 }, latch: true, strict: false, latchedRtp: { address: '198.51.100.7', port: 5004 } } },
        },
      ],
    },
  ],
};

describe('session record codec', () => {
  it('round-trips a call', () => {
    const d = decodeSessionRecord(encodeSessionRecord(sample), 'c1');
    expect(d.ok && d.value).toEqual(sample);
  });

  it('names the fault of a bad record: json, schema, fields, call-id', () => {
    const bad = (text: string, id?: string): string => {
      const d = decodeSessionRecord(text, id);
      return d.ok ? 'ok' : d.reason;
    };
    expect(bad('{oops')).toBe('json');
    expect(bad('null')).toBe('schema');
    expect(bad(JSON.stringify({ ...sample, schema: 2 }))).toBe('schema');
    expect(bad(JSON.stringify({ schema: 1, callId: 'c1' }))).toBe('fields');
    expect(bad(encodeSessionRecord({ ...sample, dialogues: [] }))).toBe('fields');
    expect(bad(encodeSessionRecord(sample).replace('"rtpPort":30000', '"rtpPort":0'))).toBe('fields');
    expect(bad(encodeSessionRecord(sample).replace('"198.51.100.7"', '"not-an-ip"'))).toBe('fields');
    expect(bad(encodeSessionRecord(sample), 'c2')).toBe('call-id');
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.anything().map((x) => { try { return JSON.stringify({ schema: 1, ...(typeof x === 'object' && x ? x : { x }) }); } catch { return ''; } })), (text) => {
        const d = decodeSessionRecord(text);
        expect(typeof d.ok).toBe('boolean');
      }),
      { numRuns: 500 },
    );
  });
});

function req(r: Partial<NgRequest> & { command: string }): NgRequest {
  return { flags: new Set<string>(), replace: new Set<string>(), supports: new Set<string>(), direction: [], unknown: [], raw: {}, ...r };
}

describe.each(['native', 'js'] as const)('export and adopt between two media cores, %s forwarder (same ports, latched peers, counters carried over)', (forwarder) => {
  let one: MediaCore;
  let two: MediaCore;
  const changes: Array<[string, string | undefined]> = [];
  beforeAll(async () => {
    const cfg = validateMediaConfig({ interface: '127.0.0.1', rtpPorts: randomRtpRange(100), workers: 1, sparePairs: 0, portQuarantineMs: 0, forwarder });
    if (!cfg.ok) throw new Error(cfg.reason);
    one = await createMediaCore(cfg.value, { onSessionChange: (id, ended) => changes.push([id, ended]) });
    two = await createMediaCore(cfg.value);
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
  });

  it('a call exported from one core runs on the other at the same ports, to the latched addresses, with its counters', async () => {
    const a = await udpPeer();
    const b = await udpPeer();
    try {
      // The SDP names ports nobody listens on: only latching finds the real senders.
      const o = await one.handler(req({ command: 'offer', callId: 'x1', fromTag: 'A', sdp: audioSdp(9, '127.0.0.1'), flags: new Set(['trust-address']) }), { address: '127.0.0.1', port: 1, transport: 'udp' });
      const an = await one.handler(req({ command: 'answer', callId: 'x1', fromTag: 'A', toTag: 'B', sdp: audioSdp(11, '127.0.0.1'), flags: new Set(['trust-address']) }), { address: '127.0.0.1', port: 1, transport: 'udp' });
      expect(o['result']).toBe('ok');
      expect(an['result']).toBe('ok');
      const toB = sdpMedia(o['sdp'] as string).port;
      const toA = sdpMedia(an['sdp'] as string).port;
      for (let i = 0; i < 5; i++) {
        await sendTo(a.sock, rtpPacket(i, 111), toA);
        await sendTo(b.sock, rtpPacket(i, 222), toB);
      }
      await waitFor(() => a.received.length >= 4 && b.received.length >= 4);
      await waitFor(() => {
        const p = one.sessions.exportCall('x1')?.dialogues[0]?.media[0]?.peer;
        return p?.a?.latchedRtp?.port === a.port && p?.b?.latchedRtp?.port === b.port;
      });
      await one.sessions.refreshCounters();
      const rec = one.sessions.exportCall('x1')!;
      expect(changes.some(([id, ended]) => id === 'x1' && ended === undefined)).toBe(true);
      expect(rec.dialogues[0]!.media[0]!.counters!.a.rtp.packets).toBe(5);

      // The first node stops serving (its sockets close), the second adopts from the record.
      one.sessions.handOver();
      expect(changes.at(-1)).toEqual(['x1', 'handover']);
      const decoded = decodeSessionRecord(encodeSessionRecord(rec), 'x1');
      if (!decoded.ok) throw new Error(decoded.reason);
      // The JS forwarder closes the old sockets asynchronously: the ports may be busy a moment.
      let adopted = await two.sessions.adopt(decoded.value);
      for (let i = 0; i < 20 && !adopted.ok; i++) {
        await new Promise((r) => setTimeout(r, 50));
        adopted = await two.sessions.adopt(decoded.value);
      }
      expect(adopted.ok).toBe(true);
      expect(two.sessions.isAdopted('x1')).toBe(true);
      // Latched as the old node had it, before any packet reached the new one.
      const q0 = await two.handler(req({ command: 'query', callId: 'x1' }), { address: '127.0.0.1', port: 1, transport: 'udp' });
      const streams = Object.values(q0['tags'] as Record<string, { medias: Array<{ streams: Array<{ flags: string[]; endpoint?: { port: number } }> }> }>).map((t) => t.medias[0]!.streams[0]!);
      expect(streams.map((x) => x.flags.includes('confirmed'))).toEqual([true, true]);
      expect(streams.map((x) => x.endpoint?.port).sort()).toEqual([a.port, b.port].sort());
      a.received.length = 0;
      b.received.length = 0;
      // B has not spoken to the new node yet, A's packets still reach B: the latched address is used.
      await sendTo(a.sock, rtpPacket(5, 111), toA);
      await waitFor(() => b.received.length === 1);
      await sendTo(b.sock, rtpPacket(5, 222), toB);
      await waitFor(() => a.received.length === 1);
      const q = await two.handler(req({ command: 'query', callId: 'x1' }), { address: '127.0.0.1', port: 1, transport: 'udp' });
      expect((q['totals'] as { RTP: { packets: number } }).RTP.packets).toBe(12);
      // Adopting twice is refused; a delete ends it on the new node.
      expect((await two.sessions.adopt(decoded.value)).ok).toBe(false);
      const d = await two.handler(req({ command: 'delete', callId: 'x1', fromTag: 'A' }), { address: '127.0.0.1', port: 1, transport: 'udp' });
      expect(d['result']).toBe('ok');
      expect(two.sessions.size).toBe(0);
    } finally {
      a.close();
      b.close();
    }
  });
});
