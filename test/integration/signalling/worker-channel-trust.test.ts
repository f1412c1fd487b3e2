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

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150));
const source: Source = { transport: 'udp', address: '192.0.2.7', port: 5060, localAddress: '127.0.0.1', localPort: 5060 } as Source;

describe('worker channel trust', () => {
  it('a frame from a worker of the same node arrives with its claimed source; forged frames inject nothing', async () => {
    const token = randomBytes(8);
    const b = channel(token);
    const bPort = await b.ch.open();
    const a = channel(token);
    await a.ch.open();
    a.ch.setPeers([0, bPort]);
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
});
