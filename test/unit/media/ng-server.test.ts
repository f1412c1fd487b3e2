import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import { NgServer } from '../../../src/media/ng-server/ng-server.js';
import { SourceAcl } from '../../../src/media/ng-server/source-acl.js';
import { CookieCache } from '../../../src/media/ng-server/cookie-cache.js';
import { loadNativeUdp } from '../../../src/sip/transport/native-udp.js';
import { metricsRegistry } from '../../../src/util/metrics.js';
import { rawRequest, udpPeer, sendTo, waitFor } from '../../integration/media/media-harness.js';

const servers: NgServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function start(handler: (req: any, source: any) => unknown, opts: { allow?: string[]; nativeUdp?: boolean } = {}): Promise<NgServer> {
  const r = await NgServer.start({ udp: { host: '127.0.0.1', port: 0 }, tcp: { host: '127.0.0.1', port: 0 }, handler: handler as never, ...opts });
  if (!r.ok) throw new Error(r.reason);
  servers.push(r.value);
  return r.value;
}

describe('NgServer', () => {
  for (const nativeUdp of [true, false]) {
    it(`UDP ${nativeUdp ? 'native path' : 'dgram'}: replies in the command's turn and later, a retransmission from the cache, the sender's address to the handler`, async () => {
      const sources: string[] = [];
      let runs = 0;
      const s = await start(
        (req: { command: string }, source: { address: string; port: number }) => {
          runs++;
          sources.push(`${source.address}:${source.port}`);
          return req.command === 'ping' ? { result: 'pong' } : new Promise((r) => setTimeout(() => r({ result: 'ok' }), 20));
        },
        { nativeUdp },
      );
      expect(s.nativeUdp).toBe(nativeUdp && (await loadNativeUdp()).ok);
      const p = await udpPeer();
      try {
        await sendTo(p.sock, Buffer.from('u1 d7:command4:pinge'), s.udpPort!);
        await sendTo(p.sock, Buffer.from('u2 d7:command5:querye'), s.udpPort!);
        expect(await waitFor(() => p.received.length === 2, 2000)).toBe(true);
        await sendTo(p.sock, Buffer.from('u2 d7:command5:querye'), s.udpPort!);
        expect(await waitFor(() => p.received.length === 3, 2000)).toBe(true);
        expect(p.received.map((r) => r.msg.toString())).toEqual(['u1 d6:result4:ponge', 'u2 d6:result2:oke', 'u2 d6:result2:oke']);
        expect(runs).toBe(2);
        expect(sources).toEqual([`127.0.0.1:${p.sock.address().port}`, `127.0.0.1:${p.sock.address().port}`]);
      } finally {
        p.close();
      }
    });
  }

  it('a duplicate cookie arriving while the first is in flight waits for it; the command runs once', async () => {
    let runs = 0;
    const s = await start(async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 150));
      return { result: 'ok', n: runs };
    });
    const p = await udpPeer();
    try {
      const msg = Buffer.from('dup1 d7:command5:querye');
      await sendTo(p.sock, msg, s.udpPort!);
      await sendTo(p.sock, msg, s.udpPort!);
      expect(await waitFor(() => p.received.length === 2, 2000)).toBe(true);
      expect(runs).toBe(1);
      expect(p.received[0]!.msg.toString()).toBe('dup1 d1:ni1e6:result2:oke');
      expect(p.received[1]!.msg.toString()).toBe(p.received[0]!.msg.toString());
    } finally {
      p.close();
    }
  });

  it('a handler that throws gives an error reply, and the server keeps going', async () => {
    const s = await start((req: { command: string }) => {
      if (req.command === 'offer') throw new Error('boom');
      return { result: 'pong' };
    });
    expect((await rawRequest(s.udpPort!, 'e1 d7:command5:offere'))?.toString()).toBe('e1 d12:error-reason14:Internal error6:result5:errore');
    expect((await rawRequest(s.udpPort!, 'e2 d7:command4:pinge'))?.toString()).toBe('e2 d6:result4:ponge');
  });

  it('TCP: several messages in one write, a message split across writes, JSON; replies in order', async () => {
    const s = await start((req: { command: string; callId?: string }) => ({ result: 'ok', echo: req.callId ?? req.command }));
    const sock = net.connect(s.tcpPort!, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    await new Promise((r) => sock.once('connect', r));
    sock.write('t1 d7:command4:pinge t2 d7:call-id1:x7:command5:querye');
    sock.write('t3 d7:command');
    await new Promise((r) => setTimeout(r, 50));
    sock.write('4:liste');
    sock.write('t4 {"command":"list","call-id":"{j}"}');
    expect(await waitFor(() => data.includes('t4 '), 2000)).toBe(true);
    expect(data).toBe('t1 d4:echo4:ping6:result2:oke' + 't2 d4:echo1:x6:result2:oke' + 't3 d4:echo4:list6:result2:oke' + 't4 {"result":"ok","echo":"{j}"}');
    sock.destroy();
  });

  it('TCP: garbage gets an error reply and the connection survives for the next message', async () => {
    const s = await start(() => ({ result: 'pong' }));
    const sock = net.connect(s.tcpPort!, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    await new Promise((r) => sock.once('connect', r));
    sock.write('g1 x!garbage');
    expect(await waitFor(() => data.includes('g1 '), 2000)).toBe(true);
    expect(data).toContain('5:error');
    sock.write('g2 d7:command4:pinge');
    expect(await waitFor(() => data.includes('g2 '), 2000)).toBe(true);
    sock.destroy();
  });

  it('results past the 256th distinct one are counted under result="other", and every command is still answered', async () => {
    let n = 0;
    const s = await start(() => ({ result: `r${n++}` }));
    const source = { address: '127.0.0.1', port: 9, transport: 'udp' as const };
    for (let i = 0; i < 300; i++) {
      const reply = await s.handle(Buffer.from(`m${i} d7:command5:querye`), source);
      expect(reply?.toString()).toContain(`6:result${String(`r${i}`.length)}:r${i}e`);
    }
    const values = (await metricsRegistry.getSingleMetric('tandem_ng_requests_total')!.get()).values;
    const counted = (result: string): number => values.filter((v) => v.labels['command'] === 'query' && v.labels['result'] === result).reduce((a, v) => a + v.value, 0);
    // Labels are shared by every server of the process; earlier tests used a few.
    const own = values.filter((v) => v.labels['command'] === 'query' && /^r\d+$/.test(String(v.labels['result']))).length;
    expect(counted('r0')).toBe(1);
    expect(own).toBeGreaterThan(200);
    expect(own).toBeLessThan(256);
    expect(counted('other')).toBe(300 - own);
  });

  it('rejects a bad allow-list', async () => {
    const r = await NgServer.start({ udp: { host: '127.0.0.1', port: 0 }, allow: ['not-a-net'], handler: () => ({ result: 'ok' }) });
    expect(r).toMatchObject({ ok: false, code: 'NG_ERR_CONFIG' });
  });
});

describe('SourceAcl', () => {
  it('matches CIDRs, plain addresses and v4-mapped v6', () => {
    const r = SourceAcl.create(['127.0.0.0/8', '10.1.2.3', '2001:db8::/32']);
    if (!r.ok) throw new Error(r.reason);
    expect(r.value.allows('127.9.9.9')).toBe(true);
    expect(r.value.allows('::ffff:127.0.0.1')).toBe(true);
    expect(r.value.allows('10.1.2.3')).toBe(true);
    expect(r.value.allows('10.1.2.4')).toBe(false);
    expect(r.value.allows('2001:db8::1')).toBe(true);
    expect(r.value.allows('::1')).toBe(false);
    expect(r.value.allows('garbage')).toBe(false);
    expect(SourceAcl.create(['10.0.0.0/33']).ok).toBe(false);
  });
});

describe('CookieCache', () => {
  it('keeps replies for one to two generations', async () => {
    const c = new CookieCache({ generationMs: 60_000 });
    c.set('a', Promise.resolve(Buffer.from('x')));
    c.rotate();
    expect(c.get('a')).toBeDefined();
    c.rotate();
    expect(c.get('a')).toBeUndefined();
    c.close();
  });
});
