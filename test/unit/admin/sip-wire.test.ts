/**
 * The transport publishes every SIP message on `tandem:sip:wire` with both addresses: UDP in and
 * out, TCP in and out (over the connection's own addresses), malformed input too.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TransportLayer } from '../../../src/sip/transport/transport-layer.js';
import { SipRequest } from '../../../src/sip/message/sip-message.js';
import { createResponse } from '../../../src/sip/message/builders.js';
import { sipWire, type SipWireMessage } from '../../../src/util/sip-wire.js';

const seen: SipWireMessage[] = [];
const onWire = (m: unknown): void => {
  const w = m as SipWireMessage;
  seen.push({ ...w, data: Buffer.from(w.data) });
};
const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  sipWire.unsubscribe(onWire);
  seen.length = 0;
  for (const c of closers.splice(0)) await c();
});

function options(via: string): string {
  return `OPTIONS sip:t@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/${via};branch=z9hG4bK-wire-${Math.random()}\r\nMax-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:t@127.0.0.1>\r\nCall-ID: wire-${Math.random()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
}

async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(pred()).toBe(true);
}

describe('tandem:sip:wire', () => {
  it('no subscriber: nothing published (the transport only tests hasSubscribers)', () => {
    expect(sipWire.hasSubscribers).toBe(false);
  });

  it('UDP: the request in and the response out, with local and remote addresses; garbage in too', async () => {
    sipWire.subscribe(onWire);
    const t = new TransportLayer();
    closers.push(() => t.close());
    const lp = await t.listen({ transport: 'udp', address: '127.0.0.1', port: 0 });
    t.on('message', (msg, source) => {
      if (msg instanceof SipRequest) void t.sendResponse(createResponse(msg, 200, 'OK'), source);
    });
    const peer = dgram.createSocket('udp4');
    closers.push(() => void peer.close());
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
    const p = peer.address().port;
    peer.send(options(`UDP 127.0.0.1:${p}`), lp.port, '127.0.0.1');
    await until(() => seen.length >= 2);
    expect(seen[0]).toMatchObject({ direction: 'in', transport: 'udp', localAddress: '127.0.0.1', localPort: lp.port, remoteAddress: '127.0.0.1', remotePort: p });
    expect(seen[0]!.data.toString('latin1')).toMatch(/^OPTIONS /);
    expect(seen[1]).toMatchObject({ direction: 'out', transport: 'udp', localPort: lp.port, remotePort: p });
    expect(seen[1]!.data.toString('latin1')).toMatch(/^SIP\/2.0 200 OK/);
    peer.send('garbage\r\n\r\n', lp.port, '127.0.0.1');
    await until(() => seen.some((m) => m.data.toString('latin1').startsWith('garbage')));
  });

  it('TCP: in and out over the connection, with its addresses', async () => {
    sipWire.subscribe(onWire);
    const t = new TransportLayer();
    closers.push(() => t.close());
    const lp = await t.listen({ transport: 'tcp', address: '127.0.0.1', port: 0 });
    t.on('message', (msg, source) => {
      if (msg instanceof SipRequest) void t.sendResponse(createResponse(msg, 200, 'OK'), source);
    });
    const c = net.connect(lp.port, '127.0.0.1');
    closers.push(() => void c.destroy());
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write(options(`TCP 127.0.0.1:${c.localPort}`));
    await until(() => seen.length >= 2);
    expect(seen[0]).toMatchObject({ direction: 'in', transport: 'tcp', localPort: lp.port, remotePort: c.localPort });
    expect(seen[1]).toMatchObject({ direction: 'out', transport: 'tcp', localPort: lp.port, remotePort: c.localPort });
    expect(seen[1]!.data.toString('latin1')).toMatch(/^SIP\/2.0 200 OK/);
  });
});
