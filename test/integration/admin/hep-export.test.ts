/**
 * `tandem start --hep udp:HOST:PORT`: every SIP message the node receives and sends reaches a UDP
 * listener as HEPv3 that decodes to the exact bytes, the right addresses and ports, the capture id,
 * the password and the node name.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHep, type HepPacket } from '../../../src/admin/hep/hep-codec.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { TestUa } from '../signalling/helpers/test-ua.js';
import { waitFor } from '../state/redis-harness.js';

const DOMAIN = 'hep.test';
let collector: dgram.Socket;
const packets: HepPacket[] = [];
let garbage = 0;
let node: TandemProcess;
let ua: TestUa;
let admin = '';
const TOKEN = 'hep-test-token-0123456789';

beforeAll(async () => {
  collector = dgram.createSocket('udp4');
  collector.on('message', (buf) => {
    const d = decodeHep(buf);
    if (d.ok) packets.push(d.value);
    else garbage++;
  });
  await new Promise<void>((r) => collector.bind(0, '127.0.0.1', r));
  const users = tempFile('users.csv', 'alice,alice-secret\n');
  node = await startTandem([
    '--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users, '--no-media', '--node-id', 'hep-node-1',
    '--hep', `udp:127.0.0.1:${collector.address().port}`, '--hep-id', '4242', '--hep-password', 'homer-secret',
    '--admin', '127.0.0.1:0', '--admin-token', TOKEN,
  ]);
  admin = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(node.stdout.join(''))![1]!;
}, 30_000);

afterAll(async () => {
  ua?.close();
  await node?.stop();
  collector?.close();
});

describe('HEPv3 export of every SIP message', () => {
  it('a REGISTER with its challenge and its 200: four messages, in and out, decoded to the same bytes', async () => {
    ua = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: node.ports['udp']! }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    expect((await ua.register()).status).toBe(200);
    const sipPort = node.ports['udp']!;
    const got = await waitFor('4 HEP packets', async () => (packets.length >= 4 ? packets : undefined), 3000, 20);
    expect(garbage).toBe(0);
    for (const p of got) {
      expect(p).toMatchObject({ family: 2, ipProtocol: 17, protoType: 1, captureId: 4242, password: 'homer-secret', nodeName: 'hep-node-1' });
      expect(p.timeSec).toBeGreaterThan(Date.now() / 1000 - 60);
      expect(p.timeUsec).toBeLessThan(1_000_000);
    }
    const inbound = got.filter((p) => p.dstPort === sipPort);
    const outbound = got.filter((p) => p.srcPort === sipPort);
    expect(inbound.map((p) => p.payload.toString('latin1').split(' ')[0])).toEqual(['REGISTER', 'REGISTER']);
    expect(outbound.map((p) => p.payload.toString('latin1').split('\r\n')[0])).toEqual(['SIP/2.0 401 Unauthorized', 'SIP/2.0 200 OK']);
    for (const p of inbound) {
      expect(p.srcIp).toBe('127.0.0.1');
      expect(p.dstIp).toBe('127.0.0.1');
      expect(p.srcPort).toBe(ua.port);
    }
    for (const p of outbound) expect(p.dstPort).toBe(ua.port);
    // The payload is the message as it crossed the wire: the 200 carries the Contact we registered.
    expect(outbound[1]!.payload.toString('latin1')).toMatch(/\r\nContact: [^\r]*alice/i);
    expect(outbound[1]!.payload.toString('latin1')).toMatch(/\r\n\r\n$/);
  });

  it('malformed datagrams are exported too: what reached the node', async () => {
    const before = packets.length;
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.send(Buffer.from('NOT SIP AT ALL\r\n\r\n'), node.ports['udp']!, '127.0.0.1', () => r()));
    s.close();
    const p = await waitFor('the garbage datagram', async () => packets.slice(before).find((x) => x.payload.toString('latin1').startsWith('NOT SIP')), 3000, 20);
    expect(p.dstPort).toBe(node.ports['udp']);
  });

  it('the trace switch of the admin API: off (a write, token needed), nothing exported; on again, exported', async () => {
    expect(await (await fetch(`${admin}/api/trace`)).json()).toMatchObject({ configured: true, enabled: true, target: `udp:127.0.0.1:${collector.address().port}` });
    expect((await fetch(`${admin}/api/trace/disable`, { method: 'POST' })).status).toBe(401);
    const off = await fetch(`${admin}/api/trace/disable`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await off.json()).toMatchObject({ enabled: false });
    const before = packets.length;
    expect((await ua.register()).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(packets.length).toBe(before);
    await fetch(`${admin}/api/trace/enable`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await ua.register()).status).toBe(200);
    await waitFor('packets again', async () => packets.length > before || undefined, 3000, 20);
  });
});
