/**
 * `tandem load` against peers that answer badly (garbled, wrong CSeq, error statuses, hang-ups
 * from the far end) and a UAS fed garbage: every failure counted with its reason, no crash.
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, runLoadCli, startUas } from './helpers.js';

afterAll(() => killAll());

/** A raw UDP responder that answers the Nth INVITE (by Call-ID) with the Nth bad behaviour. */
function badResponder(behaviours: ((req: string) => string | Buffer | null)[]): Promise<{ port: number; socket: Socket }> {
  const socket = createSocket('udp4');
  const seen = new Map<string, number>();
  socket.on('message', (msg, rinfo) => {
    const req = msg.toString('latin1');
    if (!req.startsWith('INVITE ')) return;
    const callId = /^Call-ID: (.*)$/m.exec(req)?.[1]?.trim() ?? '';
    if (!seen.has(callId)) seen.set(callId, seen.size);
    const b = behaviours[seen.get(callId)! % behaviours.length]!;
    const out = b(req);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve({ port: socket.address().port, socket })));
}

function hdr(req: string, name: string): string {
  return new RegExp(`^${name}: (.*)\r$`, 'm').exec(req)?.[1] ?? '';
}
function response(req: string, status: string, opts: { cseq?: string; toTag?: boolean } = {}): string {
  const to = hdr(req, 'To') + (opts.toTag === false ? '' : ';tag=bad1');
  return `SIP/2.0 ${status}\r\nVia: ${hdr(req, 'Via')}\r\nFrom: ${hdr(req, 'From')}\r\nTo: ${to}\r\nCall-ID: ${hdr(req, 'Call-ID')}\r\nCSeq: ${opts.cseq ?? hdr(req, 'CSeq')}\r\nContent-Length: 0\r\n\r\n`;
}

describe('uac-call-expect-failures-with-reasons: bad responses', () => {
  it('garbled, wrong CSeq, 500, 2xx without To tag, pure garbage: each a failure with its reason, no crash', async () => {
    const r = await badResponder([
      (q) => `SIP/2.0 2OO OK\r\nVia: ${hdr(q, 'Via')}\r\nCall-ID: ${hdr(q, 'Call-ID')}\r\n\r\n`,
      (q) => response(q, '200 OK', { cseq: '99 INVITE' }),
      (q) => response(q, '500 Server Internal Error'),
      (q) => response(q, '200 OK', { toTag: false }),
      () => Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 13, 10, 13, 10]),
    ]);
    try {
      const { summary: s, code } = await runLoadCli(['call', '--target', `127.0.0.1:${r.port}`, '--rate', '20', '--calls', '5', '--workers', '1', '--timeout', '1500ms'], 30_000);
      expect(code).toBe(1);
      expect(s, JSON.stringify(s)).toMatchObject({ generated: 5, successful: 0, failed: 5 });
      expect(s.failures).toEqual({
        'bad response: garbled (bad status line)': 1,
        'bad response: wrong CSeq': 1,
        'status 500': 1,
        'bad response: 2xx without To tag': 1,
        timeout: 1,
      });
      // the garbage-answered INVITE was retransmitted (Timer A) until the timeout
      expect(s.retransmissions).toBeGreaterThanOrEqual(1);
    } finally {
      r.socket.close();
    }
  }, 40_000);

  it('far end hangs up first: its BYE answered 200, the call counted as remote BYE', async () => {
    const socket = createSocket('udp4');
    const byeAnswers: string[] = [];
    socket.on('message', (msg, rinfo) => {
      const req = msg.toString('latin1');
      if (req.startsWith('SIP/2.0 ')) {
        byeAnswers.push(req.split('\r\n')[0]!);
        return;
      }
      if (!req.startsWith('INVITE ')) return;
      const ok = response(req, '200 OK').replace('Content-Length: 0', `Contact: <sip:pbx@127.0.0.1:${socket.address().port}>\r\nContent-Length: 0`);
      socket.send(ok, rinfo.port, rinfo.address);
      const bye =
        `BYE sip:tandem@127.0.0.1:${rinfo.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${socket.address().port};branch=z9hG4bKbye${Math.random()}\r\n` +
        `From: ${hdr(req, 'To')};tag=bad1\r\nTo: ${hdr(req, 'From')}\r\nCall-ID: ${hdr(req, 'Call-ID')}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`;
      setTimeout(() => socket.send(bye, rinfo.port, rinfo.address), 100);
    });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    try {
      const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${socket.address().port}`, '--rate', '10', '--calls', '2', '--duration', '5s', '--workers', '1']);
      expect(s, JSON.stringify(s)).toMatchObject({ generated: 2, failed: 2, failures: { 'remote BYE': 2 } });
      expect(byeAnswers).toEqual(['SIP/2.0 200 OK', 'SIP/2.0 200 OK']);
    } finally {
      socket.close();
    }
  }, 30_000);

  it('uas-expect-survives-garbage: random datagrams and a junk TCP stream, then calls still succeed', async () => {
    const udpUas = await startUas([]);
    const junk = createSocket('udp4');
    for (let i = 0; i < 300; i++) {
      const b = Buffer.alloc(1 + Math.floor(Math.random() * 1400));
      for (let k = 0; k < b.length; k++) b[k] = (Math.random() * 256) | 0;
      if (i % 3 === 0) b.write('INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\n', 'latin1');
      junk.send(b, udpUas.port, '127.0.0.1');
    }
    await new Promise((r) => setTimeout(r, 300));
    junk.close();
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${udpUas.port}`, '--rate', '20', '--calls', '10', '--workers', '1']);
    const u = await udpUas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 10, successful: 10, failed: 0 });
    expect(u.generated).toBe(10);

    const tcpUas = await startUas(['--transport', 'tcp']);
    await new Promise<void>((resolve) => {
      const c = connect(tcpUas.port, '127.0.0.1', () => c.write('INVITE sip:x SIP/2.0\r\nVia: junk\r\n\r\n' + 'x'.repeat(100_000)));
      c.on('error', () => resolve());
      c.on('close', () => resolve());
      setTimeout(() => {
        c.destroy();
        resolve();
      }, 3000);
    });
    const { summary: t } = await runLoadCli(['call', '--target', `127.0.0.1:${tcpUas.port}`, '--transport', 'tcp', '--rate', '20', '--calls', '10', '--workers', '1']);
    await tcpUas.stop();
    expect(t, JSON.stringify(t)).toMatchObject({ generated: 10, successful: 10, failed: 0 });
  }, 40_000);

  it('UAS answering 503: failures counted as status 503', async () => {
    const uas = await startUas(['--answer-status', '503']);
    const { summary: s } = await runLoadCli(['call', '--target', `127.0.0.1:${uas.port}`, '--rate', '20', '--calls', '10', '--workers', '2']);
    const u = await uas.stop();
    expect(s, JSON.stringify(s)).toMatchObject({ generated: 10, successful: 0, failed: 10, failures: { 'status 503': 10 } });
    expect(u.requests.ACK).toBe(10); // every non-2xx final was ACKed
  }, 30_000);
});

