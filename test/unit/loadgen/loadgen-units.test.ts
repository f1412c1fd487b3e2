import { describe, expect, it } from 'vitest';
import { LatencyHistogram, mergeHistograms, percentileOf } from '../../../src/loadgen/histogram.js';
import { mergeSnapshots, StatsCollector, emptyRtp } from '../../../src/loadgen/stats.js';
import { RtpStreamStats } from '../../../src/loadgen/rtp/rtp-stream-stats.js';
import { parseWav } from '../../../src/loadgen/rtp/wav.js';
import { generateTone, linearToUlaw, linearToAlaw } from '../../../src/loadgen/rtp/g711.js';
import { parseUsersCsv } from '../../../src/loadgen/users.js';
import { parseDurationMs, parseHostPort, parseLocal } from '../../../src/loadgen/options.js';
import { parseMessage } from '../../../src/sip/message/parser.js';
import { formatNameAddr } from '../../../src/sip/uri/sip-uri.js';
import { sdpAudioTarget, uriTarget } from '../../../src/loadgen/sip/sip-templates.js';

/** The generator parses with the shared message layer; these checks pin what it reads from it. */
const parseSip = parseMessage;

describe('LatencyHistogram', () => {
  it('percentiles within 2% and merged from buckets, not averaged', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let i = 1; i <= 1000; i++) a.record(i / 10); // 0.1 .. 100 ms
    for (let i = 0; i < 1000; i++) b.record(500); // one slow worker
    expect(a.percentile(0.5)).toBeGreaterThan(49);
    expect(a.percentile(0.5)).toBeLessThan(51.1);
    const m = mergeHistograms(a.snapshot(), b.snapshot());
    expect(m.count).toBe(2000);
    // true p50 of the merged set is ~100 ms; p90 is 500 ms
    expect(percentileOf(m, 0.5)).toBeGreaterThan(98);
    expect(percentileOf(m, 0.5)).toBeLessThan(102.1);
    expect(percentileOf(m, 0.9)).toBe(500);
    expect(m.maxMs).toBe(500);
  });
  it('ignores NaN and negatives', () => {
    const h = new LatencyHistogram();
    h.record(NaN);
    h.record(-1);
    expect(h.count).toBe(0);
    expect(h.percentile(0.99)).toBe(0);
  });
});

describe('stats merge', () => {
  it('sums counters and failure reasons', () => {
    const a = new StatsCollector();
    const b = new StatsCollector();
    a.generated = 3;
    a.fail('timeout');
    b.generated = 2;
    b.fail('timeout');
    b.fail('status 503');
    const rtpA = { ...emptyRtp(), packetsSent: 10, worstGapMs: 40 };
    const rtpB = { ...emptyRtp(), packetsSent: 5, worstGapMs: 90 };
    const m = mergeSnapshots([a.snapshot(rtpA), b.snapshot(rtpB)]);
    expect(m.generated).toBe(5);
    expect(m.failures).toEqual({ timeout: 2, 'status 503': 1 });
    expect(m.rtp.packetsSent).toBe(15);
    expect(m.rtp.worstGapMs).toBe(90);
  });
});

function rtp(seq: number, ts: number): Buffer {
  const b = Buffer.alloc(172);
  b[0] = 0x80;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  return b;
}

describe('RtpStreamStats (RFC 3550 A.1, A.3, A.8)', () => {
  it('counts loss across a sequence wrap and the longest gap', () => {
    const s = new RtpStreamStats();
    let t = 0;
    for (let i = 0; i < 100; i++) {
      if (i === 50 || i === 51) continue; // two lost
      t = i * 20 + (i > 51 ? 500 : 0); // a 500 ms hole after the loss
      s.onPacket(rtp(65500 + i, i * 160), t);
    }
    expect(s.expected).toBe(100);
    expect(s.received).toBe(98);
    expect(s.lost).toBe(2);
    expect(s.maxGapMs).toBe(560);
  });
  it('jitter is zero for perfectly paced packets and grows with variance', () => {
    const s = new RtpStreamStats();
    for (let i = 0; i < 50; i++) s.onPacket(rtp(i, i * 160), i * 20);
    expect(s.jitterMs).toBeCloseTo(0, 6);
    const j = new RtpStreamStats();
    for (let i = 0; i < 200; i++) j.onPacket(rtp(i, i * 160), i * 20 + (i % 2 ? 5 : 0));
    expect(j.jitterMs).toBeGreaterThan(4);
    expect(j.jitterMs).toBeLessThan(5.1);
  });
  it('rejects non-RTP and duplicates do not count as negative loss', () => {
    const s = new RtpStreamStats();
    expect(s.onPacket(Buffer.from([1, 2, 3]), 0)).toBe(false);
    s.onPacket(rtp(1, 0), 0);
    s.onPacket(rtp(1, 0), 1);
    expect(s.lost).toBe(0);
    expect(s.invalid).toBe(1);
  });
});

describe('G.711 and WAV', () => {
  it('encodes silence and extremes', () => {
    expect(linearToUlaw(0)).toBe(0xff);
    expect(linearToUlaw(32767)).toBe(0x80);
    expect(linearToUlaw(-32768)).toBe(0x00);
    expect(linearToAlaw(0)).toBe(0xd5);
    expect(generateTone().length).toBe(8000);
  });
  it('reads 16-bit PCM 16 kHz stereo into 8 kHz mu-law, and rejects junk', () => {
    const frames = 16000; // 1 s
    const data = Buffer.alloc(frames * 4);
    const hdr = Buffer.alloc(44);
    hdr.write('RIFF', 0, 'latin1');
    hdr.writeUInt32LE(36 + data.length, 4);
    hdr.write('WAVEfmt ', 8, 'latin1');
    hdr.writeUInt32LE(16, 16);
    hdr.writeUInt16LE(1, 20);
    hdr.writeUInt16LE(2, 22);
    hdr.writeUInt32LE(16000, 24);
    hdr.writeUInt32LE(64000, 28);
    hdr.writeUInt16LE(4, 32);
    hdr.writeUInt16LE(16, 34);
    hdr.write('data', 36, 'latin1');
    hdr.writeUInt32LE(data.length, 40);
    const r = parseWav(Buffer.concat([hdr, data]));
    expect(r.ok && r.value.data.length).toBe(8000);
    expect(r.ok && r.value.payloadType).toBe(0);
    expect(parseWav(Buffer.from('RIFF1234WAVE')).ok).toBe(false);
    expect(parseWav(Buffer.from('nonsense')).ok).toBe(false);
  });
});

describe('options and users', () => {
  it('parses durations, addresses, ranges', () => {
    expect(parseDurationMs('6s')).toEqual({ ok: true, value: 6000 });
    expect(parseDurationMs('250ms')).toEqual({ ok: true, value: 250 });
    expect(parseDurationMs('2m')).toEqual({ ok: true, value: 120000 });
    expect(parseDurationMs('x').ok).toBe(false);
    expect(parseHostPort('127.0.0.1:5060', 5060)).toEqual({ ok: true, value: { address: '127.0.0.1', port: 5060 } });
    expect(parseHostPort('[::1]', 5090)).toEqual({ ok: true, value: { address: '::1', port: 5090 } });
    expect(parseLocal('127.0.0.1:5070-5080')).toEqual({ ok: true, value: { address: '127.0.0.1', portMin: 5070, portMax: 5080 } });
    expect(parseLocal('127.0.0.254-127.0.1.1:5070')).toEqual({
      ok: true,
      value: { address: '127.0.0.254', addresses: ['127.0.0.254', '127.0.0.255', '127.0.1.0', '127.0.1.1'], portMin: 5070, portMax: 5070 },
    });
    expect(parseLocal('127.0.0.9-127.0.0.1').ok).toBe(false);
  });
  it('reads SIPp-style injection files with ; or , separators', () => {
    const r = parseUsersCsv('SEQUENTIAL\nalice;pw1\n\nbob,pw2\n# comment\ncarol;pw;extra\n');
    expect(r).toEqual({ ok: true, value: [{ user: 'alice', password: 'pw1' }, { user: 'bob', password: 'pw2' }, { user: 'carol', password: 'pw' }] });
    expect(parseUsersCsv('SEQUENTIAL\n').ok).toBe(false);
  });
});

describe('SIP reading through the shared message layer', () => {
  const res = Buffer.from(
    'SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070, SIP/2.0/UDP 10.0.0.1\r\n' +
      'Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\nf: <sip:a@h>;tag=1\r\nt: "B, x" <sip:b@h>;tag=2\r\ni: c1\r\nCSeq: 7 INVITE\r\n' +
      'Content-Type: application/sdp\r\nl: 56\r\n\r\nv=0\r\nc=IN IP4 127.0.0.9\r\nm=audio 40000 RTP/AVP 0\r\nxxxxxxxxxxxx\r\n',
  );
  it('reads compact forms, lists, tags, CSeq, SDP', () => {
    const r = parseSip(res);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const m = r.value;
    if (m.isRequest()) throw new Error('expected a response');
    expect(m.status).toBe(200);
    expect(m.topVia).toMatchObject({ transport: 'UDP', host: '127.0.0.1', port: 5070, branch: 'z9hG4bKabc', rport: 5070 });
    expect(m.recordRoutes.map(formatNameAddr)).toEqual(['<sip:p1;lr>', '<sip:p2;lr>', '<sip:p3;lr>']);
    expect(m.toTag).toBe('2');
    expect(m.cseq).toEqual({ seq: 7, method: 'INVITE' });
    expect(m.body.length).toBe(56);
    expect(sdpAudioTarget(m.body)).toEqual({ address: '127.0.0.9', port: 40000 });
    expect(uriTarget('sip:p1:5080;lr;transport=tcp')).toEqual({ host: 'p1', port: 5080, transport: 'tcp', lr: true });
  });
  it('returns errors for garbage, never throws', () => {
    for (const g of ['', 'SIP/2.0 2OO OK\r\n\r\n', 'HELLO\r\n\r\n', 'SIP/2.0 200 OK\r\nVia x\r\n\r\n', 'SIP/2.0 200 OK\r\nl: 99\r\n\r\n']) {
      expect(parseSip(Buffer.from(g)).ok).toBe(false);
    }
    const rnd = Buffer.alloc(2000);
    for (let i = 0; i < 200; i++) {
      for (let k = 0; k < rnd.length; k++) rnd[k] = (Math.random() * 256) | 0;
      expect(() => parseSip(rnd)).not.toThrow();
    }
  });
});

import fc from 'fast-check';

describe('property: parsers return results, never throw', () => {
  it('parseSip on arbitrary and SIP-shaped input', () => {
    const line = fc.stringMatching(/^[ -~]{0,60}$/);
    const sipish = fc
      .tuple(fc.constantFrom('SIP/2.0 200 OK', 'INVITE sip:a@b SIP/2.0', 'SIP/2.0 99 X', 'BYE x SIP/2.0'), fc.array(line, { maxLength: 12 }), fc.string({ maxLength: 80 }))
      .map(([start, hdrs, body]) => Buffer.from(`${start}\r\n${hdrs.join('\r\n')}\r\n\r\n${body}`, 'latin1'));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)), sipish), (buf) => {
        const r = parseSip(buf);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
  it('RTP stats and WAV/users parsers on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.string({ maxLength: 200 }), (bytes, text) => {
        const s = new RtpStreamStats();
        s.onPacket(Buffer.from(bytes), 1);
        expect(s.lost).toBeGreaterThanOrEqual(0);
        expect(typeof parseWav(Buffer.from(bytes)).ok).toBe('boolean');
        expect(typeof parseUsersCsv(text).ok).toBe('boolean');
      }),
      { numRuns: 1000 },
    );
  });
});

import { runLoad } from '../../../src/loadgen/run-load.js';

describe('runLoad never hangs', () => {
  it('rate 0 without a stop time ends at once with nothing generated', async () => {
    const r = await runLoad({ scenario: 'options', target: { address: '127.0.0.1', port: 9 }, transport: 'udp', localAddress: '127.0.0.1', rate: 0, calls: 10, workers: 0, progress: 'none' });
    expect(r.figures.generated).toBe(0);
  });
});
