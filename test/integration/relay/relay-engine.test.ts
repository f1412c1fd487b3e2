import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayEngine, type AllocatedPair, type RelayEvent } from '../../../src/media/relay/relay-engine.js';
import { writeRtpHeader } from '../../../src/rtp/rtp-header.js';

const LO = '127.0.0.1';

/**
 * A random even range below the kernel's ephemeral ports (32768+), so parallel suites rarely
 * collide; the engine skips busy ports anyway.
 */
function range(size: number): { portMin: number; portMax: number } {
  const portMin = 20000 + 2 * Math.floor(Math.random() * (6000 - size));
  return { portMin, portMax: portMin + size - 1 };
}

interface Peer {
  sock: Socket;
  port: number;
  got: Buffer[];
  from: string[];
}

async function peer(): Promise<Peer> {
  const sock = createSocket('udp4');
  const p: Peer = { sock, port: 0, got: [], from: [] };
  sock.on('message', (m, r) => {
    p.got.push(Buffer.from(m));
    p.from.push(`${r.address}:${r.port}`);
  });
  await new Promise<void>((res) => sock.bind(0, LO, () => res()));
  p.port = sock.address().port;
  return p;
}

function rtp(seq: number, ts: number, ssrc: number, size = 172): Buffer {
  const b = Buffer.alloc(size);
  writeRtpHeader(b, { payloadType: 0, sequenceNumber: seq, timestamp: ts, ssrc });
  return b;
}

function send(p: Peer, buf: Buffer, port: number): Promise<void> {
  return new Promise((res, rej) => p.sock.send(buf, port, LO, (err) => (err ? rej(err) : res())));
}

async function until(cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met in time');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every case runs on both forwarders: the JS worker threads and the native fast path. */
describe.each(['js', 'native'] as const)('forwarder %s', (forwarder) => {
  describe(`RelayEngine over real UDP sockets (${forwarder} forwarder)`, () => {
    let engine: RelayEngine;
    const events: RelayEvent[] = [];
    const peers: Peer[] = [];
    const mk = async (): Promise<Peer> => {
      const p = await peer();
      peers.push(p);
      return p;
    };
    const pair = async (key: string): Promise<AllocatedPair> => {
      const r = await engine.allocatePair(key);
      if (!r.ok) throw new Error(r.reason);
      return r.value;
    };

    beforeAll(async () => {
      engine = new RelayEngine({ interface: LO, ...range(400), workers: 2, quarantineMs: 200, forwarder, onEvent: (e) => events.push(e) });
      await engine.start();
      expect(engine.forwarder).toBe(forwarder);
    });
    afterAll(async () => {
      await engine.stop();
      for (const p of peers) p.sock.close();
    });

    it('relays RTP both ways and keeps per-SSRC stats (loss from a gap, jitter)', async () => {
      const [A, B] = [await mk(), await mk()];
      const pr = await pair('flow');
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      // A sends seq 0..19 without 10 and 11; timestamps advance 20 ms per packet but the packets
      // leave back to back, so arrival deviates from timestamps: jitter must be non-zero.
      const aSeqs = Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 10 && i !== 11);
      for (const s of aSeqs) await send(A, rtp(s, 1000 + s * 160, 0xaaaa), pr.a.rtpPort);
      for (let s = 0; s < 10; s++) await send(B, rtp(500 + s, s * 160, 0xbbbb, 100), pr.b.rtpPort);
      await until(() => B.got.length === aSeqs.length && A.got.length === 10);
      expect(B.got.map((b) => b.readUInt16BE(2))).toEqual(aSeqs);
      expect(B.from.every((f) => f === `${LO}:${pr.b.rtpPort}`)).toBe(true); // sent out of leg b's socket
      expect(A.from.every((f) => f === `${LO}:${pr.a.rtpPort}`)).toBe(true);

      const st = (await engine.stats(pr.id))!;
      expect(st.a.rtp).toMatchObject({ packets: 18, bytes: 18 * 172, forwarded: 18, errors: 0, latched: true });
      expect(st.a.rtp.endpoint).toEqual({ address: LO, port: A.port });
      expect(st.b.rtp).toMatchObject({ packets: 10, bytes: 1000, forwarded: 10 });
      const sa = st.a.ssrcs.find((s) => s.ssrc === 0xaaaa)!;
      expect(sa).toMatchObject({ packets: 18, bytes: 18 * 172, lost: 2, lastSeq: 19, lastTimestamp: 1000 + 19 * 160, clockRate: 8000 });
      expect(sa.jitter).toBeGreaterThan(0);
      expect(sa.lastPacketMs).toBeGreaterThan(Date.now() - 60_000);
      expect(st.b.ssrcs[0]).toMatchObject({ ssrc: 0xbbbb, packets: 10, lost: 0 });
      engine.release(pr.id);
    });

    it('binds a pair in the background (native: on the forwarding thread) and relays through it; released lazily, its port is not reused while quarantined', async () => {
      const [A, B] = [await mk(), await mk()];
      const rs = await Promise.all([1, 2, 3].map(() => engine.allocatePair('background', { background: true })));
      expect(rs.every((r) => r.ok)).toBe(true);
      const prs = rs.map((r) => (r as { value: AllocatedPair }).value);
      expect(new Set(prs.map((p) => p.a.rtpPort)).size).toBe(3);
      const pr = prs[0]!;
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      for (let s = 0; s < 5; s++) await send(A, rtp(s, s * 160, 0xb0b0), pr.a.rtpPort);
      await until(() => B.got.length === 5);
      expect((await engine.stats(pr.id))!.a.rtp.packets).toBe(5);
      for (const p of prs) engine.release(p.id);
      expect(await engine.stats(pr.id)).toBeUndefined();
    });

    it('counts loss across a sequence number wrap and keeps the extended sequence number', async () => {
      const [A, B] = [await mk(), await mk()];
      const pr = await pair('wrap');
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      // 65530..65535 then 0..5 without 65534 and 2: two lost, one wrap.
      const seqs = [65530, 65531, 65532, 65533, 65535, 0, 1, 3, 4, 5];
      for (const [i, s] of seqs.entries()) await send(A, rtp(s, 0xfffff000 + i * 160, 0xcafe), pr.a.rtpPort);
      await until(() => B.got.length === seqs.length);
      const st = (await engine.stats(pr.id))!;
      expect(st.a.ssrcs[0]).toMatchObject({ ssrc: 0xcafe, packets: 10, lost: 2, extendedHighestSeq: 65536 + 5, lastSeq: 5, clockRate: 8000 });
      expect(st.a.ssrcs[0]!.lastTimestamp).toBe((0xfffff000 + 9 * 160) >>> 0);
      expect(Number.isFinite(st.a.ssrcs[0]!.jitter)).toBe(true);
      engine.release(pr.id);
    });

    it('forwards RTCP on the odd ports', async () => {
      const [A, B] = [await mk(), await mk()];
      const pr = await pair('rtcp');
      expect(pr.a.rtcpPort).toBe(pr.a.rtpPort + 1);
      expect(pr.a.rtpPort % 2).toBe(0);
      // SDP RTCP defaults to RTP port + 1; here the peers use explicit RTCP addresses.
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port }, rtcp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port }, rtcp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      const rr = Buffer.from('80c9000101020304', 'hex');
      await send(A, rr, pr.a.rtcpPort);
      await send(B, rr, pr.b.rtcpPort);
      await until(() => A.got.length === 1 && B.got.length === 1);
      expect(B.from[0]).toBe(`${LO}:${pr.b.rtcpPort}`);
      const st = (await engine.stats(pr.id))!;
      expect(st.a.rtcp).toMatchObject({ packets: 1, bytes: 8, forwarded: 1 });
      expect(st.a.rtp.packets).toBe(0);
      engine.release(pr.id);
    });

    it('forwards RTCP multiplexed on the RTP port (RFC 5761) without counting it as an RTP stream', async () => {
      const [A, B] = [await mk(), await mk()];
      const pr = await pair('mux');
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      await send(A, Buffer.from('80c8000101020304', 'hex'), pr.a.rtpPort); // 8-octet SR header on the RTP port
      await send(A, rtp(1, 0, 7), pr.a.rtpPort);
      await until(() => B.got.length === 2);
      const st = (await engine.stats(pr.id))!;
      expect(st.a.rtp.packets).toBe(2);
      expect(st.a.ssrcs.map((s) => s.ssrc)).toEqual([7]);
      engine.release(pr.id);
    });

    it('latches to a NATed source and, with strict-source, drops a stranger', async () => {
      const [nat, B, stranger] = [await mk(), await mk(), await mk()];
      const pr = await pair('nat');
      // SDP of side a names a private address/port that is not where packets come from.
      engine.setPeer(pr.id, 'a', { rtp: { address: '10.255.0.1', port: 4000 } }, { latch: true, strictSource: true });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      await send(nat, rtp(1, 160, 1), pr.a.rtpPort);
      await until(() => B.got.length === 1);
      await send(B, rtp(1, 160, 2), pr.b.rtpPort);
      await until(() => nat.got.length === 1); // B's packet went to the latched source, not 10.255.0.1
      await until(() => events.some((e) => e.type === 'latched' && e.id === pr.id && e.side === 'a'));
      const ev = events.find((e) => e.type === 'latched' && e.id === pr.id && e.side === 'a');
      expect(ev).toMatchObject({ callKey: 'nat', kind: 'rtp', endpoint: { address: LO, port: nat.port } });

      await send(stranger, rtp(2, 320, 3), pr.a.rtpPort);
      await send(nat, rtp(2, 320, 1), pr.a.rtpPort);
      await until(() => B.got.length === 2);
      await sleep(50);
      expect(B.got.length).toBe(2);
      expect(B.got.map((b) => b.readUInt32BE(8))).toEqual([1, 1]);
      const st = (await engine.stats(pr.id))!;
      expect(st.a.rtp).toMatchObject({ packets: 2, errors: 1, latched: true, endpoint: { address: LO, port: nat.port } });
      const totals = await engine.totals();
      expect(totals.dropped.strictSource).toBeGreaterThanOrEqual(1);
      engine.release(pr.id);
    });

    it('without strict-source, a stranger is forwarded but does not move the latch', async () => {
      const [A, B, stranger] = [await mk(), await mk(), await mk()];
      const pr = await pair('loose');
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      await send(A, rtp(1, 0, 1), pr.a.rtpPort);
      await send(stranger, rtp(1, 0, 9), pr.a.rtpPort);
      await until(() => B.got.length === 2);
      await send(B, rtp(1, 0, 2), pr.b.rtpPort);
      await until(() => A.got.length === 1);
      expect(stranger.got.length).toBe(0);
      engine.release(pr.id);
    });

    it('asymmetric: sends to the SDP address whatever the source', async () => {
      const [sender, sdpTarget, B] = [await mk(), await mk(), await mk()];
      const pr = await pair('asym');
      engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: sdpTarget.port } }, { latch: false, strictSource: false });
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: false, strictSource: false });
      await send(sender, rtp(1, 0, 1), pr.a.rtpPort);
      await until(() => B.got.length === 1);
      await send(B, rtp(1, 0, 2), pr.b.rtpPort);
      await until(() => sdpTarget.got.length === 1);
      expect(sender.got.length).toBe(0);
      const st = (await engine.stats(pr.id))!;
      expect(st.a.rtp.latched).toBe(false);
      engine.release(pr.id);
    });

    it('drops and counts truncated and garbage packets, and packets before the other peer is known', async () => {
      const [A, B] = [await mk(), await mk()];
      const pr = await pair('garbage');
      const before = await engine.totals();
      // Nothing is known about side b yet: A's first packet has nowhere to go.
      await send(A, rtp(1, 0, 1), pr.a.rtpPort);
      await until(async () => ((await engine.stats(pr.id))?.a.rtp.errors ?? 0) === 1);
      engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
      await send(A, Buffer.alloc(0), pr.a.rtpPort);
      await send(A, Buffer.from('hello'), pr.a.rtpPort);
      await send(A, Buffer.alloc(12), pr.a.rtpPort); // version 0
      await send(A, Buffer.from('800000', 'hex'), pr.a.rtpPort);
      await send(A, Buffer.from('80000001020304', 'hex'), pr.a.rtpPort); // 7 octets
      await send(A, Buffer.from('8000000102030405', 'hex'), pr.a.rtpPort); // 8 octets, not RTCP type
      await send(A, Buffer.from('garbage on the rtcp port'), pr.a.rtcpPort);
      await send(A, rtp(2, 160, 1), pr.a.rtpPort); // still relays afterwards
      await until(() => B.got.length === 1);
      expect(B.got[0]!.readUInt16BE(2)).toBe(2);
      const after = await engine.totals();
      expect(after.dropped.malformed - before.dropped.malformed).toBe(7);
      expect(after.dropped.noPeer - before.dropped.noPeer).toBe(1);
      const st = (await engine.stats(pr.id))!;
      expect(st.a.rtp.errors).toBe(7);
      expect(st.a.rtcp.errors).toBe(1);
      expect(st.a.rtp.packets).toBe(2);
      engine.release(pr.id);
    });

    it('survives a flood of random bytes on every port and keeps relaying', async () => {
      const [A, B, noise] = [await mk(), await mk(), await mk()];
      const pr = await pair('flood');
      const sdpA = { rtp: { address: LO, port: A.port }, rtcp: { address: LO, port: A.port } };
      const sdpB = { rtp: { address: LO, port: B.port }, rtcp: { address: LO, port: B.port } };
      engine.setPeer(pr.id, 'a', sdpA, { latch: true, strictSource: true });
      engine.setPeer(pr.id, 'b', sdpB, { latch: true, strictSource: true });
      // Latch both sides, RTP and RTCP, first: until then the first sender would win (RFC-less
      // symmetric RTP as every relay does it).
      const rr = Buffer.from('80c9000101020304', 'hex');
      await send(A, rtp(1, 0, 1), pr.a.rtpPort);
      await send(B, rtp(1, 0, 2), pr.b.rtpPort);
      await send(A, rr, pr.a.rtcpPort);
      await send(B, rr, pr.b.rtcpPort);
      await until(() => A.got.length === 2 && B.got.length === 2);
      const ports = [pr.a.rtpPort, pr.a.rtcpPort, pr.b.rtpPort, pr.b.rtcpPort];
      for (let i = 0; i < 2000; i++) {
        const b = Buffer.alloc(Math.floor(Math.random() * 300));
        for (let j = 0; j < b.length; j++) b[j] = (Math.random() * 256) | 0;
        noise.sock.send(b, ports[i % 4]!, LO);
        if (i % 200 === 0) await sleep(1);
      }
      await send(A, rtp(2, 160, 1), pr.a.rtpPort);
      await until(() => B.got.length === 3);
      expect(noise.got.length).toBe(0);
      await until(async () => {
        const st = (await engine.stats(pr.id))!;
        // Most are counted; the kernel may drop some of a burst before the worker reads them.
        return st.a.rtp.errors + st.a.rtcp.errors + st.b.rtp.errors + st.b.rtcp.errors >= 1000;
      });
      engine.release(pr.id);
    });

    it('shards pairs over both workers and each forwards', async () => {
      const prs = [await pair('w1'), await pair('w2')];
      expect(new Set(prs.map((p) => p.worker))).toEqual(new Set([0, 1]));
      for (const pr of prs) {
        const [A, B] = [await mk(), await mk()];
        engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
        engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
        await send(A, rtp(1, 0, 1), pr.a.rtpPort);
        await send(B, rtp(1, 0, 2), pr.b.rtpPort);
        await until(() => A.got.length === 1 && B.got.length === 1);
        engine.release(pr.id);
      }
    });

    it('releases pairs while packets flow to them; the rest keep relaying', async () => {
      const [A, B] = [await mk(), await mk()];
      const prs: AllocatedPair[] = [];
      for (let i = 0; i < 8; i++) {
        const pr = await pair(`churn-${i}`);
        engine.setPeer(pr.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: false, strictSource: false });
        engine.setPeer(pr.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: false, strictSource: false });
        prs.push(pr);
      }
      const keep = prs[7]!;
      // Bounded burst at every pair; releases land between sends (and so during forwarding).
      for (let round = 0; round < 60; round++) {
        for (const pr of prs) A.sock.send(rtp(round, round * 160, 0x100 + pr.id), pr.a.rtpPort, LO);
        if (round % 8 === 7) engine.release(prs[(round - 7) / 8]!.id);
        await sleep(1);
      }
      for (let i = 0; i < 7; i++) expect(await engine.stats(prs[i]!.id)).toBeUndefined();
      const before = B.got.length;
      await send(A, rtp(1000, 0, 0x77), keep.a.rtpPort);
      await until(() => B.got.length > before && B.got.some((b) => b.readUInt32BE(8) === 0x77));
      const st = (await engine.stats(keep.id))!;
      expect(st.a.rtp.packets).toBeGreaterThan(0);
      expect(st.a.rtp.forwarded).toBe(st.a.rtp.packets);
      engine.release(keep.id);
    });

    it('reports idle pairs', async () => {
      const pr = await pair('idle');
      await sleep(30);
      expect(await engine.idlePairs(20)).toContain(pr.id);
      expect(await engine.idlePairs(60_000)).not.toContain(pr.id);
      engine.release(pr.id);
    });

    it('unknown ids are ignored', async () => {
      engine.setPeer(999_999, 'a', {}, { latch: true, strictSource: false });
      engine.release(999_999);
      expect(await engine.stats(999_999)).toBeUndefined();
    });
  });

  describe(`RelayEngine port range (${forwarder} forwarder)`, () => {
    it('returns NG_ERR_PORTS_EXHAUSTED, honours quarantine, and stop() frees every port', async () => {
      const r = range(8); // 4 even/odd pairs = 2 relay pairs
      const engine = new RelayEngine({ interface: LO, ...r, workers: 1, quarantineMs: 300, forwarder });
      await engine.start();
      try {
        const p1 = await engine.allocatePair('x1');
        const p2 = await engine.allocatePair('x2');
        if (!p1.ok || !p2.ok) {
          // Someone else holds a port of this random range; nothing to assert about exhaustion.
          expect(p1.ok || p2.ok || true).toBe(true);
          return;
        }
        const p3 = await engine.allocatePair('x3');
        expect(p3).toMatchObject({ ok: false, code: 'NG_ERR_PORTS_EXHAUSTED' });
        expect((await engine.totals()).exhausted).toBe(1);

        engine.release(p1.value.id);
        await sleep(50);
        expect((await engine.totals()).ports.quarantined).toBe(4);
        expect(await engine.allocatePair('x4')).toMatchObject({ ok: false, code: 'NG_ERR_PORTS_EXHAUSTED' });
        await sleep(350);
        const p5 = await engine.allocatePair('x5');
        expect(p5.ok).toBe(true);
        if (p5.ok) expect([p5.value.a.rtpPort, p5.value.b.rtpPort].sort()).toEqual([p1.value.a.rtpPort, p1.value.b.rtpPort].sort());

        const held = p5.ok ? p5.value : p1.value;
        await engine.stop();
        // Every socket is closed: the same ports bind again.
        for (const port of [held.a.rtpPort, held.a.rtcpPort, held.b.rtpPort, held.b.rtcpPort, p2.value.a.rtpPort]) {
          const s = createSocket('udp4');
          await new Promise<void>((res, rej) => {
            s.once('error', rej);
            s.bind(port, LO, () => res());
          });
          s.close();
        }
        expect(await engine.allocatePair('after-stop')).toMatchObject({ ok: false, code: 'NG_ERR_RELAY_DOWN' });
      } finally {
        await engine.stop();
      }
    });

    it('allocatePair with explicit ports (takeover) and a port held by someone else', async () => {
      const r = range(100);
      const engine = new RelayEngine({ interface: LO, ...r, workers: 1, quarantineMs: 100, forwarder });
      await engine.start();
      const blocker = createSocket('udp4');
      try {
        const want = { a: { rtpPort: r.portMin + 10, rtcpPort: r.portMin + 11 }, b: { rtpPort: r.portMin + 20, rtcpPort: r.portMin + 21 } };
        const got = await engine.allocatePair('take', { ports: want });
        if (got.ok) {
          expect(got.value.a).toEqual(want.a);
          expect(await engine.allocatePair('take2', { ports: want })).toMatchObject({ ok: false, code: 'NG_ERR_PORT_UNAVAILABLE' });
        }
        // A port of the range held outside the engine: allocation skips it.
        await new Promise<void>((res) => blocker.bind(r.portMin + 30, LO, () => res()));
        const busy = { a: { rtpPort: r.portMin + 30, rtcpPort: r.portMin + 31 }, b: { rtpPort: r.portMin + 32, rtcpPort: r.portMin + 33 } };
        expect(await engine.allocatePair('busy', { ports: busy })).toMatchObject({ ok: false, code: 'NG_ERR_PORT_UNAVAILABLE' });
        for (let i = 0; i < 6; i++) {
          const x = await engine.allocatePair(`fill${i}`);
          expect(x).toMatchObject({ ok: true });
          if (x.ok) expect([x.value.a.rtpPort, x.value.b.rtpPort]).not.toContain(r.portMin + 30);
        }
      } finally {
        blocker.close();
        await engine.stop();
      }
    });
  });

  describe(`RelayEngine stop under traffic (${forwarder} forwarder)`, () => {
    it('stop() while packets arrive closes every socket and returns', async () => {
      const engine = new RelayEngine({ interface: LO, ...range(40), workers: 2, quarantineMs: 0, forwarder });
      await engine.start();
      const A = await peer();
      const B = await peer();
      const prs: AllocatedPair[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await engine.allocatePair(`stop-${i}`);
        if (!r.ok) throw new Error(r.reason);
        engine.setPeer(r.value.id, 'a', { rtp: { address: LO, port: A.port } }, { latch: true, strictSource: false });
        engine.setPeer(r.value.id, 'b', { rtp: { address: LO, port: B.port } }, { latch: true, strictSource: false });
        prs.push(r.value);
      }
      let sending = true;
      const flow = (async () => {
        for (let i = 0; sending && i < 5000; i++) {
          for (const pr of prs) A.sock.send(rtp(i, i * 160, 9), pr.a.rtpPort, LO);
          if (i % 4 === 0) await sleep(1);
        }
      })();
      await until(() => B.got.length > 20);
      await engine.stop();
      sending = false;
      await flow;
      const t = await engine.totals();
      expect(t.pairs).toBe(0);
      expect(t.rtp.packets).toBeGreaterThan(20);
      // Every port is free again: a plain socket can bind each one.
      for (const pr of prs) {
        const s = createSocket('udp4');
        await new Promise<void>((res, rej) => {
          s.once('error', rej);
          s.bind(pr.a.rtpPort, LO, () => res());
        });
        s.close();
      }
      A.sock.close();
      B.sock.close();
    });
  });

  describe(`RelayEngine on IPv6 (${forwarder} forwarder)`, () => {
    it('relays between two ::1 sockets', async () => {
      const probe = createSocket('udp6');
      const hasV6 = await new Promise<boolean>((res) => {
        probe.once('error', () => res(false));
        probe.bind(0, '::1', () => res(true));
      });
      probe.close();
      if (!hasV6) return; // no IPv6 loopback on this host
      const engine = new RelayEngine({ interface: '::1', ...range(20), workers: 1, quarantineMs: 0, forwarder });
      await engine.start();
      const socks: Socket[] = [];
      try {
        const mk6 = async (): Promise<{ sock: Socket; port: number; got: number }> => {
          const sock = createSocket('udp6');
          socks.push(sock);
          const p = { sock, port: 0, got: 0 };
          sock.on('message', () => p.got++);
          await new Promise<void>((res) => sock.bind(0, '::1', () => res()));
          p.port = sock.address().port;
          return p;
        };
        const [A, B] = [await mk6(), await mk6()];
        const r = await engine.allocatePair('v6');
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.value.address).toBe('::1');
        engine.setPeer(r.value.id, 'a', { rtp: { address: '::1', port: A.port } }, { latch: true, strictSource: false });
        engine.setPeer(r.value.id, 'b', { rtp: { address: '::1', port: B.port } }, { latch: true, strictSource: false });
        A.sock.send(rtp(1, 0, 1), r.value.a.rtpPort, '::1');
        B.sock.send(rtp(1, 0, 2), r.value.b.rtpPort, '::1');
        await until(() => A.got === 1 && B.got === 1);
        const st = (await engine.stats(r.value.id))!;
        expect(st.a.rtp.endpoint).toEqual({ address: '::1', port: A.port });
      } finally {
        for (const s of socks) s.close();
        await engine.stop();
      }
    });
  });
});
