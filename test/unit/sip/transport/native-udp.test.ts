/**
 * The transport's native UDP path (native-udp.ts) on real loopback sockets: what a peer sees and
 * what the layer above receives must be what node:dgram gave, datagram for datagram.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { SipMessage } from '../../../../src/sip/message/sip-message.js';
import { loadNativeUdp, sendError } from '../../../../src/sip/transport/native-udp.js';
import { ipv4Number } from '../../../../src/sip/transport/response-routing.js';
import { TransportLayer } from '../../../../src/sip/transport/transport-layer.js';
import { metricSum } from '../../../../src/util/metrics.js';
import type { ListeningPoint, Source } from '../../../../src/sip/transport/types.js';

const options = (i: number, pad = '') =>
  Buffer.from(
    `OPTIONS sip:node@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-n${i}\r\nFrom: <sip:a@t>;tag=${i}\r\nTo: <sip:node@t>\r\n` +
      `Call-ID: native-${i}\r\nCSeq: ${i + 1} OPTIONS\r\nMax-Forwards: 70\r\n${pad ? `X-Pad: ${pad}\r\n` : ''}Content-Length: 0\r\n\r\n`,
    'latin1',
  );

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
});

async function client(): Promise<{ socket: dgram.Socket; port: number; got: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  open.push({ close: () => new Promise<void>((r) => socket.close(() => r())) });
  return { socket, port: socket.address().port, got };
}

async function node(nativeUdp = true): Promise<{ t: TransportLayer; lp: ListeningPoint; seen: { msg: SipMessage; src: Source }[] }> {
  const t = new TransportLayer({ nativeUdp });
  const lp = await t.listen({ transport: 'udp', address: '127.0.0.1', port: 0 });
  const seen: { msg: SipMessage; src: Source }[] = [];
  t.on('message', (msg, src) => seen.push({ msg, src }));
  open.push(t);
  return { t, lp, seen };
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
};

describe('native UDP path', () => {
  it('builds here (a C++ compiler and Node headers are on this machine)', async () => {
    const mod = await loadNativeUdp();
    expect(mod.ok, mod.ok ? '' : mod.reason).toBe(true);
  });

  it('reads every datagram of a burst larger than one batch, in order, with its sender', async () => {
    const { t, lp, seen } = await node();
    expect(t.udpPath(lp)).toBe('native');
    const c = await client();
    const n = 200; // more than the 32 datagrams of one batch
    for (let i = 0; i < n; i++) c.socket.send(options(i), lp.port, '127.0.0.1');
    await until(() => seen.length === n);
    expect(seen.length).toBe(n);
    expect(seen.map((s) => s.msg.callId)).toEqual(Array.from({ length: n }, (_, i) => `native-${i}`));
    expect(seen[0]!.src).toEqual({ transport: 'udp', address: '127.0.0.1', port: c.port, localAddress: '127.0.0.1', localPort: lp.port });
  });

  it('sends the answers to a batch together at its end, in order, a failed one reported to its own callback', async () => {
    const { t, lp } = await node();
    const c = await client();
    const errors: string[] = [];
    const n = 100;
    t.on('message', (msg) => {
      const i = Number(msg.callId.slice('native-'.length));
      // one answer in the middle goes to port 0, which sendmmsg refuses (EINVAL)
      const port = i === 40 ? 0 : c.port;
      t.transmit(options(1000 + i), { transport: 'udp', address: '127.0.0.1', port }, (e, arg) => errors.push(`${arg}:${(e as NodeJS.ErrnoException).code}`), i);
    });
    const batches0 = await metricSum('tandem_sip_udp_send_batches_total', {});
    const sent0 = await metricSum('tandem_sip_udp_batched_datagrams_total', {});
    // Sent while this process is busy, so that they wait in the socket and are read in batches.
    for (let i = 0; i < n; i++) c.socket.send(options(i), lp.port, '127.0.0.1');
    const busyUntil = Date.now() + 50;
    while (Date.now() < busyUntil);
    await until(() => c.got.length === n - 1 && errors.length === 1);
    const callIds = c.got.map((b) => /Call-ID: (\S+)/.exec(b.toString('latin1'))![1]);
    expect(callIds).toEqual(Array.from({ length: n }, (_, i) => `native-${1000 + i}`).filter((id) => id !== 'native-1040'));
    expect(errors).toEqual(['40:EINVAL']);
    const batches = (await metricSum('tandem_sip_udp_send_batches_total', {})) - batches0;
    const sent = (await metricSum('tandem_sip_udp_batched_datagrams_total', {})) - sent0;
    expect(sent).toBe(n);
    expect(batches).toBeLessThan(n / 4); // up to 32 datagrams a batch
  });

  it('takes a 60 kB datagram whole and ignores keep-alive CRLFs', async () => {
    const { lp, seen } = await node();
    const c = await client();
    c.socket.send(Buffer.from('\r\n\r\n'), lp.port, '127.0.0.1');
    c.socket.send(options(1, 'x'.repeat(60_000)), lp.port, '127.0.0.1');
    await until(() => seen.length === 1);
    expect(seen.length).toBe(1);
    expect(seen[0]!.msg.headers.first('x-pad')?.value.length).toBe(60_000);
  });

  it('sends to an IPv4 literal and, through dgram, to a name; a peer gets the bytes as given', async () => {
    const { t } = await node();
    const c = await client();
    const errors: Error[] = [];
    t.transmit(options(7), { transport: 'udp', address: '127.0.0.1', port: c.port }, (e) => errors.push(e), undefined);
    await t.sendRaw(options(8), { transport: 'udp', address: 'localhost', port: c.port });
    await until(() => c.got.length === 2);
    expect(c.got.map((b) => b.toString('latin1'))).toEqual([options(7).toString('latin1'), options(8).toString('latin1')]);
    expect(errors).toEqual([]);
  });

  it('a failed send reaches the error callback after transmit returns, as with dgram', async () => {
    const { t } = await node();
    const errors: string[] = [];
    let returned = false;
    // Port 0 is refused by sendto (EINVAL); dgram reports it the same way.
    t.transmit(options(1), { transport: 'udp', address: '127.0.0.1', port: 0 }, (e) => errors.push(`${returned}:${(e as NodeJS.ErrnoException).code}`), undefined);
    returned = true;
    await until(() => errors.length === 1);
    expect(errors).toEqual(['true:EINVAL']);
    await expect(t.sendRaw(options(2), { transport: 'udp', address: '127.0.0.1', port: 0 })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('stops and resumes reading with setUdpReceiving, and close releases the port', async () => {
    const { t, lp, seen } = await node();
    const c = await client();
    t.setUdpReceiving(false);
    expect(t.udpPath(lp)).toBe('dgram');
    c.socket.send(options(1), lp.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.length).toBe(0);
    t.setUdpReceiving(true);
    expect(t.udpPath(lp)).toBe('native');
    await until(() => seen.length === 1); // the datagram waited in the socket
    expect(seen.length).toBe(1);
    await t.close();
    const again = dgram.createSocket('udp4');
    await new Promise<void>((ok, fail) => {
      again.once('error', fail);
      again.bind(lp.port, '127.0.0.1', () => ok());
    });
    await new Promise<void>((r) => again.close(() => r()));
  });

  it('nativeUdp: false stays on dgram and behaves the same, a send to port 0 included', async () => {
    const { t, lp, seen } = await node(false);
    expect(t.udpPath(lp)).toBe('dgram');
    const c = await client();
    c.socket.send(options(3), lp.port, '127.0.0.1');
    await until(() => seen.length === 1);
    expect(seen[0]!.src.port).toBe(c.port);
    // dgram throws at once for port 0 (a Via can say so): transmit reports it, it does not throw.
    const errors: string[] = [];
    expect(() => t.transmit(options(4), { transport: 'udp', address: '127.0.0.1', port: 0 }, (e) => errors.push((e as NodeJS.ErrnoException).code ?? ''), undefined)).not.toThrow();
    await until(() => errors.length === 1);
    expect(errors).toEqual(['ERR_SOCKET_BAD_PORT']);
    await expect(t.sendRaw(options(5), { transport: 'udp', address: '127.0.0.1', port: 0 })).rejects.toMatchObject({ code: 'ERR_SOCKET_BAD_PORT' });
  });

  it('reads dotted quads only as IPv4 literals', () => {
    expect(ipv4Number('127.0.0.1')).toBe(0x7f000001);
    expect(ipv4Number('255.255.255.255')).toBe(0xffffffff);
    for (const s of ['localhost', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', '1.2.3.', '::1', '']) expect(ipv4Number(s)).toBe(-1);
    expect(sendError(-1).code).toBe('EPERM');
  });
});
