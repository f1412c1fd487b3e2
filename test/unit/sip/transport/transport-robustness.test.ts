import dgram from 'node:dgram';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResponse } from '../../../../src/sip/message/builders.js';
import type { SipRequest } from '../../../../src/sip/message/sip-message.js';
import { TransportLayer } from '../../../../src/sip/transport/transport-layer.js';
import { waitFor } from '../../../integration/sip-core/helpers.js';

const VALID =
  'INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKfz;rport\r\nMax-Forwards: 70\r\n' +
  'From: "A" <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: fuzz@x\r\nCSeq: 1 INVITE\r\n' +
  'Contact: <sip:a@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n';

/** Random bytes, or the valid message with bytes flipped, cut, or duplicated. */
const packet = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.array(fc.tuple(fc.nat(VALID.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(VALID.length))
    .map(([flips, cut]) => {
      const b = Buffer.from(VALID);
      for (const [i, v] of flips) b[i] = v;
      return b.subarray(0, Math.max(1, cut));
    }),
);

describe('transport boundary under random and mutated input', () => {
  let t: TransportLayer;
  let udpPort = 0;
  let tcpPort = 0;
  let requests = 0;
  beforeAll(async () => {
    t = new TransportLayer({ maxMessageBytes: 2048, maxBufferedBytesPerConnection: 4096 });
    udpPort = (await t.listen({ transport: 'udp', address: '127.0.0.1', port: 0 })).port;
    tcpPort = (await t.listen({ transport: 'tcp', address: '127.0.0.1', port: 0 })).port;
    t.on('message', (msg, source) => {
      requests++;
      if (msg.isRequest() && (msg as SipRequest).method !== 'ACK') void t.sendResponse(createResponse(msg as SipRequest, 200), source).catch(() => {});
    });
  });
  afterAll(() => t.close());

  it('never throws or stops answering (UDP and TCP)', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const packets = fc.sample(packet, { numRuns: 400, seed: 42 });
    for (const p of packets) sock.send(p, udpPort, '127.0.0.1');
    const conns: net.Socket[] = [];
    for (let i = 0; i < 40; i++) {
      const c = net.connect(tcpPort, '127.0.0.1').on('error', () => {});
      conns.push(c);
      for (const p of packets.slice(i * 10, i * 10 + 10)) c.write(p);
    }
    // The listener still serves a good client afterwards.
    const replies: string[] = [];
    const good = dgram.createSocket('udp4');
    await new Promise<void>((r) => good.bind(0, '127.0.0.1', () => r()));
    good.on('message', (m) => replies.push(m.toString('latin1')));
    good.send(VALID.replace('branch=z9hG4bKfz', 'branch=z9hG4bKgood'), udpPort, '127.0.0.1');
    await waitFor(() => replies.find((r) => r.startsWith('SIP/2.0 200') && r.includes('z9hG4bKgood')), 5000);
    expect(requests).toBeGreaterThan(0);
    for (const c of conns) c.destroy();
    sock.close();
    good.close();
    await waitFor(() => (t.connectionCount === 0 ? true : undefined), 5000);
  });
});
