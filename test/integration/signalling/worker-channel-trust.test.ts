/**
 * The channel between a node's workers carries messages with the source they claim to come from:
 * only a worker of the same node (holding the node's token) may put one there. A local process
 * that sends a forged frame (another token, a truncated header, garbage) injects nothing.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerChannel } from '../../../src/signalling/workers/worker-channel.js';
import type { Source } from '../../../src/sip/transport/types.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

function channel(token: Buffer) {
  const got: Array<{ data: string; source: Source }> = [];
  const writes: Array<{ id: number; data: string }> = [];
  const ch = new WorkerChannel(token, {
    onMessage: (data, source) => got.push({ data: data.toString(), source }),
    onWrite: (id, data) => writes.push({ id, data: data.toString() }),
  });
  closers.push(() => ch.close());
  return { ch, got, writes };
}

/** Two workers of one node (same token): `a` (index 0) knows `b` (index 1) by its port. */
async function pair() {
  const token = randomBytes(8);
  const b = channel(token);
  const bPort = await b.ch.open();
  const a = channel(token);
  await a.ch.open();
  a.ch.setPeers([0, bPort]);
  return { a, b, bPort };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150));
const source: Source = { transport: 'udp', address: '192.0.2.7', port: 5060, localAddress: '127.0.0.1', localPort: 5060 } as Source;

describe('worker channel trust', () => {
  it('a frame from a worker of the same node arrives with its claimed source; forged frames inject nothing', async () => {
    const { a, b, bPort } = await pair();
    expect(a.ch.forward(1, Buffer.from('INVITE sip:bob@x SIP/2.0\r\n\r\n'), source)).toBe(true);
    expect(a.ch.write(1, 42, Buffer.from('bytes'))).toBe(true);
    await settle();
    expect(b.got.map((g) => g.source.address)).toEqual(['192.0.2.7']);
    expect(b.writes).toEqual([{ id: 42, data: 'bytes' }]);

    // Another process: same framing, its own token.
    const forger = channel(randomBytes(8));
    await forger.ch.open();
    forger.ch.setPeers([0, bPort]);
    forger.ch.forward(1, Buffer.from('BYE sip:bob@x SIP/2.0\r\n\r\n'), { ...source, address: '198.51.100.1' } as Source);
    forger.ch.write(1, 42, Buffer.from('injected'));
    // Raw datagrams: truncated header, garbage, right magic with no token.
    const raw = dgram.createSocket('udp4');
    closers.push(() => raw.close());
    for (const d of [Buffer.from([0x54]), Buffer.from([0x54, 1, 0, 0]), randomBytes(64), Buffer.concat([Buffer.from([0x54, 2]), Buffer.alloc(16)])]) raw.send(d, bPort, '127.0.0.1');
    await settle();
    expect(b.got).toHaveLength(1);
    expect(b.writes).toHaveLength(1);
  });

  it('messages handed over in one turn go out as one batch and arrive in order, each with its source', async () => {
    const { a, b, bPort } = await pair();
    // Count the datagrams b's socket receives by listening next to it: b's port is its own, so
    // the batch is seen through what b got, and the count through a raw receiver instead.
    const raw = dgram.createSocket('udp4');
    closers.push(() => raw.close());
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    const seen: Buffer[] = [];
    raw.on('message', (d) => seen.push(d));
    a.ch.setPeers([0, bPort, raw.address().port]);
    for (let i = 0; i < 100; i++) expect(a.ch.forward(1, Buffer.from(`MESSAGE sip:${i}@x SIP/2.0\r\n\r\n`), { ...source, port: 6000 + i } as Source)).toBe(true);
    for (let i = 0; i < 3; i++) a.ch.forward(2, Buffer.from(`OPTIONS sip:${i}@x SIP/2.0\r\n\r\n`), source);
    await settle();
    expect(b.got.map((g) => g.data)).toEqual(Array.from({ length: 100 }, (_, i) => `MESSAGE sip:${i}@x SIP/2.0\r\n\r\n`));
    expect(b.got.map((g) => g.source.port)).toEqual(Array.from({ length: 100 }, (_, i) => 6000 + i));
    // 3 messages for the third worker: one datagram, a batch (kind 3)
    expect(seen).toHaveLength(1);
    expect(seen[0]![1]).toBe(3);
  });

  it('messages waiting for a worker that goes down before they leave are handled by the worker that read them', async () => {
    const { a, b, bPort } = await pair();
    a.ch.forward(1, Buffer.from('INVITE sip:1@x SIP/2.0\r\n\r\n'), source);
    a.ch.forward(1, Buffer.from('INVITE sip:2@x SIP/2.0\r\n\r\n'), source);
    a.ch.setPeers([0, 0]);
    await settle();
    expect(b.got).toHaveLength(0);
    expect(a.got.map((g) => g.data)).toEqual(['INVITE sip:1@x SIP/2.0\r\n\r\n', 'INVITE sip:2@x SIP/2.0\r\n\r\n']);
  });

  it('forged batches inject nothing: another token, a record with another token, a nested batch, a record longer than the datagram', async () => {
    const token = randomBytes(8);
    const b = channel(token);
    const bPort = await b.ch.open();
    const record = (tok: Buffer, msg: string) => {
      const addr = Buffer.from('198.51.100.1');
      const local = Buffer.from('127.0.0.1');
      const h = Buffer.alloc(25 + addr.length + local.length);
      h[0] = 0x54;
      h[1] = 1;
      tok.copy(h, 2);
      h[10] = 0;
      h[11] = addr.length;
      h[12] = local.length;
      h.writeUInt16BE(5060, 13);
      h.writeUInt16BE(5060, 15);
      h.writeDoubleBE(-1, 17);
      addr.copy(h, 25);
      local.copy(h, 25 + addr.length);
      const r = Buffer.concat([h, Buffer.from(msg)]);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(r.length, 0);
      return Buffer.concat([len, r]);
    };
    const batch = (tok: Buffer, ...records: Buffer[]) => Buffer.concat([Buffer.from([0x54, 3]), tok, ...records]);
    const raw = dgram.createSocket('udp4');
    closers.push(() => raw.close());
    const nested = batch(token, record(token, 'BYE sip:n@x SIP/2.0\r\n\r\n'));
    const nestedLen = Buffer.alloc(2);
    nestedLen.writeUInt16BE(nested.length, 0);
    const tooLong = Buffer.from(record(token, 'BYE sip:l@x SIP/2.0\r\n\r\n'));
    tooLong.writeUInt16BE(tooLong.length + 50, 0);
    for (const d of [
      batch(randomBytes(8), record(token, 'BYE sip:1@x SIP/2.0\r\n\r\n')),
      batch(token, record(randomBytes(8), 'BYE sip:2@x SIP/2.0\r\n\r\n')),
      batch(token, Buffer.concat([nestedLen, nested])),
      batch(token, tooLong),
      Buffer.from([0x54, 3]),
    ])
      raw.send(d, bPort, '127.0.0.1');
    await settle();
    expect(b.got).toHaveLength(0);
    // and a genuine batch still arrives
    raw.send(batch(token, record(token, 'BYE sip:ok@x SIP/2.0\r\n\r\n'), record(token, 'BYE sip:ok2@x SIP/2.0\r\n\r\n')), bPort, '127.0.0.1');
    await settle();
    expect(b.got.map((g) => g.data)).toEqual(['BYE sip:ok@x SIP/2.0\r\n\r\n', 'BYE sip:ok2@x SIP/2.0\r\n\r\n']);
  });
});
