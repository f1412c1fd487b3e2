// Two native relay engines on one address with `sharedPorts` (a media holder and its hot standby on
// one host): the standby binds the holder's ports ahead of a takeover, every packet goes to the
// holder while its sockets live, and to the standby from the moment they close.
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, describe, expect, it } from 'vitest';
import { RelayEngine, type AllocatedPair } from '../../../src/media/relay/relay-engine.js';
import { writeRtpHeader } from '../../../src/rtp/rtp-header.js';

const LO = '127.0.0.1';

interface Peer {
  sock: Socket;
  port: number;
  got: number;
}

async function peer(): Promise<Peer> {
  const sock = createSocket('udp4');
  const p: Peer = { sock, port: 0, got: 0 };
  sock.on('message', () => p.got++);
  await new Promise<void>((res) => sock.bind(0, LO, () => res()));
  p.port = sock.address().port;
  return p;
}

function rtp(seq: number): Buffer {
  const b = Buffer.alloc(172);
  writeRtpHeader(b, { payloadType: 0, sequenceNumber: seq, timestamp: seq * 160, ssrc: 0x1234 });
  return b;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(10);
  }
  throw new Error('condition not met in time');
}

describe('native relay with shared ports (hot standby on one host)', () => {
  const engines: RelayEngine[] = [];
  const peers: Peer[] = [];
  afterAll(async () => {
    for (const e of engines) await e.stop();
    for (const p of peers) p.sock.close();
  });

  it('standby-binds-the-holders-ports-receives-nothing-while-the-holder-lives-then-everything', async () => {
    const portMin = 20000 + 2 * Math.floor(Math.random() * 5000);
    const opts = { interface: LO, portMin, portMax: portMin + 99, workers: 1, quarantineMs: 0, forwarder: 'native' as const, sharedPorts: true };
    const holder = new RelayEngine(opts);
    const standby = new RelayEngine(opts);
    const plain = new RelayEngine({ ...opts, sharedPorts: false });
    engines.push(holder, standby, plain);
    await Promise.all([holder.start(), standby.start(), plain.start()]);
    expect(holder.sharesPorts).toBe(true);
    expect(plain.sharesPorts).toBe(false);

    const a = await peer();
    const b = await peer();
    peers.push(a, b);
    const h = await holder.allocatePair('call');
    expect(h.ok).toBe(true);
    const hp = (h as { value: AllocatedPair }).value;
    // A socket without the option cannot join: the port is taken.
    const p = await plain.allocatePair('call', { ports: { a: hp.a, b: hp.b } });
    expect(p.ok).toBe(false);
    const s = await standby.allocatePair('call', { ports: { a: hp.a, b: hp.b } });
    expect(s.ok ? "" : s.reason).toBe("");
    const sp = (s as { value: AllocatedPair }).value;
    for (const [eng, id] of [[holder, hp.id], [standby, sp.id]] as const) {
      eng.setPeer(id, 'a', { rtp: { address: LO, port: a.port } }, { latch: true, strictSource: false });
      eng.setPeer(id, 'b', { rtp: { address: LO, port: b.port } }, { latch: true, strictSource: false });
    }

    // Many source ports: without the steering program the kernel would hash some to the standby.
    const senders: Socket[] = [];
    for (let i = 0; i < 16; i++) {
      const sock = createSocket('udp4');
      await new Promise<void>((res) => sock.bind(0, LO, () => res()));
      senders.push(sock);
    }
    let seq = 0;
    const burst = async (): Promise<void> => {
      for (const sock of senders) await new Promise<void>((res) => sock.send(rtp(++seq), hp.a.rtpPort, LO, () => res()));
    };
    await burst();
    await until(async () => (await holder.stats(hp.id))!.a.rtp.packets === 16);
    await sleep(50);
    expect((await standby.stats(sp.id))!.a.rtp.packets).toBe(0);
    expect(b.got).toBe(16);

    // The holder lets the call go (or dies): the standby's sockets receive from the next packet.
    holder.release(hp.id, 0);
    await burst();
    await until(async () => (await standby.stats(sp.id))!.a.rtp.packets === 16);
    await until(() => b.got === 32);
    for (const sock of senders) sock.close();
  });
});
