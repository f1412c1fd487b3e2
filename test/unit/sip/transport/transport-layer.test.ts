import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../../../src/util/metrics.js';
import { TimerWheel } from '../../../../src/util/timer-wheel.js';
import { createRequest, createResponse, newBranch } from '../../../../src/sip/message/builders.js';
import type { SipMessage, SipRequest, SipResponse } from '../../../../src/sip/message/sip-message.js';
import { TransportLayer } from '../../../../src/sip/transport/transport-layer.js';
import type { Endpoint, Source, TransportName, TransportOptions } from '../../../../src/sip/transport/types.js';
import { ipv6Available, makeTestCert, waitFor } from '../../../integration/sip-core/helpers.js';

const open: TransportLayer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

const cert = makeTestCert();

async function layer(transport: TransportName, address = '127.0.0.1', opts: TransportOptions = {}) {
  const t = new TransportLayer({ tlsClient: { ca: cert.cert }, ...opts });
  open.push(t);
  const lp = await t.listen({ transport, address, port: 0, ...(transport === 'tls' ? { tls: cert } : {}) });
  const got: { msg: SipMessage; source: Source }[] = [];
  t.on('message', (msg, source) => got.push({ msg, source }));
  return { t, lp, got };
}

function options(t: TransportLayer, target: Endpoint, rport = true): SipRequest {
  return createRequest({
    method: 'OPTIONS',
    uri: `sip:x@${target.address.includes(':') ? `[${target.address}]` : target.address}:${target.port}`,
    from: '<sip:a@example.com>',
    to: '<sip:x@example.com>',
    via: t.viaValue(target, newBranch(), rport),
  });
}

async function metric(reason: string): Promise<number> {
  const m = (await metricsRegistry.getSingleMetric('tandem_sip_parse_errors_total')?.get())?.values ?? [];
  return m.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe.each(['udp', 'tcp', 'tls'] as const)('%s round trip on loopback', (transport) => {
  it('delivers a request, stamps the Via, routes the response back', async () => {
    const a = await layer(transport);
    const b = await layer(transport);
    const target: Endpoint = { transport, address: '127.0.0.1', port: b.lp.port };
    await a.t.send(options(a.t, target), target);
    const { msg, source } = await waitFor(() => b.got[0]);
    const req = msg as SipRequest;
    expect(req.method).toBe('OPTIONS');
    expect(source.address).toBe('127.0.0.1');
    expect(req.topVia.rport).toBe(source.port); // RFC 3581: rport filled, received added
    expect(req.topVia.received).toBe('127.0.0.1');
    await b.t.sendResponse(createResponse(req, 200), source);
    const res = (await waitFor(() => a.got[0])).msg as SipResponse;
    expect(res.status).toBe(200);
    if (transport !== 'udp') {
      // one connection each way, reused: a second request and its response open nothing new
      await a.t.send(options(a.t, target), target);
      await waitFor(() => b.got[1]);
      await b.t.sendResponse(createResponse(b.got[1]!.msg as SipRequest, 200), b.got[1]!.source);
      await waitFor(() => a.got[1]);
      expect(a.t.connectionCount).toBe(1);
      expect(b.t.connectionCount).toBe(1);
      expect(b.got[1]!.source.connectionId).toBe(source.connectionId);
      // a request from b to a's listening port reuses the connection a opened (Via sent-by alias)
      const back: Endpoint = { transport, address: '127.0.0.1', port: a.lp.port };
      await b.t.send(options(b.t, back), back);
      await waitFor(() => a.got.find((g) => (g.msg as SipRequest).method === 'OPTIONS'));
      expect(b.t.connectionCount).toBe(1);
      expect(a.t.connectionCount).toBe(1);
    }
  });
});

describe('IPv6', () => {
  it('UDP over ::1', async (ctx) => {
    if (!(await ipv6Available())) ctx.skip();
    const a = await layer('udp', '::1');
    const b = await layer('udp', '::1');
    const target: Endpoint = { transport: 'udp', address: '::1', port: b.lp.port };
    expect(a.t.viaFor(target).host).toBe('[::1]');
    await a.t.send(options(a.t, target), target);
    const { msg, source } = await waitFor(() => b.got[0]);
    expect(source.address).toBe('::1');
    await b.t.sendResponse(createResponse(msg as SipRequest, 200), source);
    expect(((await waitFor(() => a.got[0])).msg as SipResponse).status).toBe(200);
  });
});

describe('IPv6 TCP', () => {
  it('TCP over ::1', async (ctx) => {
    if (!(await ipv6Available())) ctx.skip();
    const a = await layer('tcp', '::1');
    const b = await layer('tcp', '::1');
    const target: Endpoint = { transport: 'tcp', address: '::1', port: b.lp.port };
    await a.t.send(options(a.t, target), target);
    const { msg, source } = await waitFor(() => b.got[0]);
    expect((msg as SipRequest).topVia.host).toBe('[::1]');
    await b.t.sendResponse(createResponse(msg as SipRequest, 200), source);
    expect(((await waitFor(() => a.got[0])).msg as SipResponse).status).toBe(200);
  });
});

describe('transport errors', () => {
  it('rejects a send to a closed TCP port (the transaction layer turns it into onTransportError)', async () => {
    const a = await layer('tcp');
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const target: Endpoint = { transport: 'tcp', address: '127.0.0.1', port };
    await expect(a.t.send(options(a.t, target), target)).rejects.toThrow(/ECONNREFUSED/);
    expect(a.t.connectionCount).toBe(0);
  });
});

describe('received / rport', () => {
  it('adds received when the sent-by host is not the source address, routes the response to sent-by port', async () => {
    const b = await layer('udp');
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    const port = peer.address().port;
    const replies: string[] = [];
    peer.on('message', (m) => replies.push(m.toString()));
    const raw =
      `OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP client.invalid:${port};branch=z9hG4bKr1\r\n` +
      'From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: r1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n';
    peer.send(raw, b.lp.port, '127.0.0.1');
    const { msg, source } = await waitFor(() => b.got[0]);
    const via = (msg as SipRequest).topVia;
    expect(via.received).toBe('127.0.0.1');
    expect(via.rport).toBeUndefined();
    await b.t.sendResponse(createResponse(msg as SipRequest, 200), source);
    await waitFor(() => replies[0]);
    expect(replies[0]).toMatch(/^SIP\/2.0 200/);
    peer.close();
  });
});

describe('bad input at the transport boundary', () => {
  async function udpPeer() {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const replies: string[] = [];
    s.on('message', (m) => replies.push(m.toString('latin1')));
    return { s, replies, port: s.address().port };
  }

  it('answers a malformed request 400 with a reason, never answers ACK, drops bad responses and garbage', async () => {
    const b = await layer('udp');
    const p = await udpPeer();
    const before = await metric('SIP_ERR_MISSING_HEADER');
    const noCallId = (method: string) =>
      `${method} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${p.port};branch=z9hG4bKbad;rport\r\n` +
      `From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCSeq: 1 ${method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
    p.s.send(noCallId('ACK'), b.lp.port, '127.0.0.1');
    p.s.send('SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n', b.lp.port, '127.0.0.1');
    p.s.send(Buffer.from([0, 1, 2, 3, 255, 13, 10, 13, 10, 0x41]), b.lp.port, '127.0.0.1');
    p.s.send(noCallId('OPTIONS'), b.lp.port, '127.0.0.1');
    const reply = await waitFor(() => p.replies[0]);
    expect(reply).toMatch(/^SIP\/2.0 400 Missing Call-ID\r\n/);
    await new Promise((r) => setTimeout(r, 50));
    expect(p.replies.length).toBe(1); // nothing for the ACK, the bad response or the garbage
    expect(b.got.length).toBe(0);
    expect(await metric('SIP_ERR_MISSING_HEADER')).toBe(before + 2);
    p.s.close();
  });

  it('verifyResponseSentBy drops responses whose top Via is not ours (§18.1.2)', async () => {
    const a = await layer('udp', '127.0.0.1', { verifyResponseSentBy: true });
    const p = await udpPeer();
    const res = (sentBy: string) =>
      `SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP ${sentBy};branch=z9hG4bKv\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\n` +
      'Call-ID: v1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';
    const before = await metric('SIP_ERR_VIA_MISMATCH');
    p.s.send(res('192.0.2.1:5060'), a.lp.port, '127.0.0.1');
    p.s.send(res(`127.0.0.1:${a.lp.port}`), a.lp.port, '127.0.0.1');
    await waitFor(() => a.got[0]);
    await new Promise((r) => setTimeout(r, 30));
    expect(a.got.length).toBe(1);
    expect(await metric('SIP_ERR_VIA_MISMATCH')).toBe(before + 1);
    p.s.close();
  });

  it('TCP: missing Content-Length gets 400 and the connection closes; an endless header closes it', async () => {
    const b = await layer('tcp', '127.0.0.1', { maxMessageBytes: 4096, maxBufferedBytesPerConnection: 8192 });
    const sock = net.connect(b.lp.port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.write(
      'OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKcl\r\nFrom: <sip:a@b>;tag=1\r\n' +
        'To: <sip:x@y>\r\nCall-ID: cl1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n',
    );
    await closed;
    expect(data).toMatch(/^SIP\/2.0 400 Missing Content-Length/);
    const s2 = net.connect(b.lp.port, '127.0.0.1');
    s2.on('error', () => {});
    const closed2 = new Promise<void>((r) => s2.on('close', () => r()));
    await new Promise<void>((r) => s2.on('connect', () => r()));
    for (let i = 0; i < 10 && !s2.destroyed; i++) s2.write(Buffer.alloc(1024, 0x41));
    await closed2;
    await waitFor(() => (b.t.connectionCount === 0 ? true : undefined));
  });

  it('closes a connection whose peer does not read once the send buffer is over the limit', async () => {
    const b = await layer('tcp', '127.0.0.1', { maxBufferedBytesPerConnection: 65536 });
    const sock = net.connect(b.lp.port, '127.0.0.1');
    sock.on('error', () => {});
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    await new Promise<void>((r) => sock.on('connect', () => r()));
    sock.write(
      'OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKslow\r\nFrom: <sip:a@b>;tag=1\r\n' +
        'To: <sip:x@y>\r\nCall-ID: slow1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n',
    );
    sock.pause(); // never read what the server sends
    const { msg, source } = await waitFor(() => b.got[0]);
    const body = Buffer.alloc(16_000, 0x61);
    let error: Error | undefined;
    const res = createResponse(msg as SipRequest, 200, 'OK', { body, contentType: 'text/plain' });
    for (let i = 0; i < 4000 && !error; i++) {
      // not awaited: a write to a peer that does not read completes only when it drains
      b.t.sendResponse(res, source).catch((e: Error) => (error ??= e));
      if (i % 20 === 19) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => error);
    expect(error?.message).toMatch(/SIP_ERR_BUFFER_OVERFLOW|SIP_ERR_CONNECTION_CLOSED|ECONNRESET|EPIPE/);
    sock.destroy();
    await closed;
    await waitFor(() => (b.t.connectionCount === 0 ? true : undefined));
  });

  it('answers CRLFCRLF keep-alive pings with CRLF (RFC 5626 §3.5.1)', async () => {
    const b = await layer('tcp');
    const sock = net.connect(b.lp.port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    sock.write('\r\n\r\n');
    await waitFor(() => (data === '\r\n' ? true : undefined));
    sock.write('\r\n\r\n');
    await waitFor(() => (data === '\r\n\r\n' ? true : undefined));
    sock.destroy();
  });

  it('enforces max connections and the idle timeout', async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    const b = await layer('tcp', '127.0.0.1', { maxConnections: 2, idleTimeoutMs: 150, wheel });
    const socks = [0, 1, 2].map(() => net.connect(b.lp.port, '127.0.0.1').on('error', () => {}));
    const closedAt = socks.map((s) => new Promise<number>((r) => s.on('close', () => r(Date.now()))));
    const first = await Promise.race(closedAt.map((p, i) => p.then(() => i)));
    expect(first).toBe(2); // the third is refused at once ...
    expect(b.t.connectionCount).toBe(2); // ... while the other two are still open
    await Promise.all(closedAt); // the other two close when idle
    expect(b.t.connectionCount).toBe(0);
    wheel.stop();
  });
});

describe('transmit (callback send path) and UDP address resolution', () => {
  it('sends to IP literals and host names; a failure reaches the callback after transmit returns', async () => {
    const a = await layer('udp');
    const b = await layer('udp');
    const byIp: Endpoint = { transport: 'udp', address: '127.0.0.1', port: b.lp.port };
    const byName: Endpoint = { transport: 'udp', address: 'localhost', port: b.lp.port };
    const errors: Error[] = [];
    const onError = (err: Error, list: Error[]) => list.push(err);
    a.t.transmit(options(a.t, byIp).toBuffer(), byIp, onError, errors);
    a.t.transmit(options(a.t, byName).toBuffer(), byName, onError, errors);
    await waitFor(() => b.got.length === 2 || undefined);
    expect(errors).toEqual([]);
    // no TCP listener: the stream path reports through the callback, never synchronously
    const tcpTarget: Endpoint = { transport: 'tcp', address: '127.0.0.1', port: b.lp.port };
    a.t.transmit(Buffer.from('x'), tcpTarget, onError, errors);
    expect(errors).toEqual([]);
    await waitFor(() => errors[0]);
    await a.t.close();
    a.t.transmit(Buffer.from('x'), byIp, onError, errors);
    expect(errors.length).toBe(1);
    await waitFor(() => errors[1]);
    expect(errors[1]!.message).toMatch(/SIP_ERR_TRANSPORT_CLOSED/);
  });
});

describe('Via stamping of received requests (RFC 3261 §18.2.1, RFC 3581 §4)', () => {
  async function stamped(via: string): Promise<{ req: SipRequest; source: Source }> {
    const b = await layer('udp');
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const text = [
      `OPTIONS sip:x@127.0.0.1:${b.lp.port} SIP/2.0`,
      `Via: ${via}`,
      'Max-Forwards: 70',
      'From: <sip:a@example.com>;tag=1',
      'To: <sip:x@example.com>',
      'Call-ID: stamp-1',
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    sock.send(text, b.lp.port, '127.0.0.1');
    const got = await waitFor(() => b.got[0]);
    sock.close();
    return { req: got.msg as SipRequest, source: got.source };
  }

  it('a bare rport is filled with the source port, received added, other parameters kept in place', async () => {
    const { req, source } = await stamped('SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-s1;x=1');
    expect(req.headers.get('Via')).toBe(`SIP/2.0/UDP 192.0.2.1:5060;rport=${source.port};branch=z9hG4bK-s1;x=1;received=127.0.0.1`);
    expect(req.topVia).toMatchObject({ rport: source.port, received: '127.0.0.1', branch: 'z9hG4bK-s1' });
  });

  it('no rport and a sent-by that is not the source: received only', async () => {
    const { req } = await stamped('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-s2');
    expect(req.headers.get('Via')).toBe('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-s2;received=127.0.0.1');
    expect(req.topVia.rport).toBeUndefined();
  });

  it('no rport and a sent-by that is the source: the Via is left as sent', async () => {
    const { req } = await stamped('SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s3');
    expect(req.headers.get('Via')).toBe('SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s3');
  });

  it('a client-supplied received is replaced, and two Vias on one line keep the second untouched', async () => {
    const one = await stamped('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-s4;received=203.0.113.9;rport');
    expect(one.req.topVia).toMatchObject({ received: '127.0.0.1', rport: one.source.port });
    const two = await stamped('SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-s5, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-up');
    expect(two.req.topVia).toMatchObject({ received: '127.0.0.1', rport: two.source.port, branch: 'z9hG4bK-s5' });
    expect(two.req.vias[1]).toMatchObject({ host: '192.0.2.2', branch: 'z9hG4bK-up' });
    expect(two.req.vias[1]!.received).toBeUndefined();
  });
});
