import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { NgClient } from '../../../src/ng/ng-client.js';
import { bdecode } from '../../../src/ng/bencode.js';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

async function fakeServer(onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo, s: dgram.Socket) => void): Promise<number> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  s.on('message', (m, r) => onMessage(m, r, s));
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  return s.address().port;
}

describe('NgClient (real UDP)', () => {
  it('ping gets pong and echoes cookie', async () => {
    const port = await fakeServer((m, r, s) => {
      const cookie = m.subarray(0, m.indexOf(0x20));
      s.send(Buffer.concat([cookie, Buffer.from(' d6:result4:ponge')]), r.port, r.address);
    });
    const c = new NgClient({ host: '127.0.0.1', port });
    expect(await c.ping()).toEqual({ ok: true, value: true });
    c.close();
  });

  it('retransmits with the same cookie until answered', async () => {
    const cookies: string[] = [];
    const port = await fakeServer((m, r, s) => {
      const cookie = m.subarray(0, m.indexOf(0x20));
      cookies.push(cookie.toString());
      if (cookies.length === 3) s.send(Buffer.concat([cookie, Buffer.from(' d6:result4:ponge')]), r.port, r.address);
    });
    const c = new NgClient({ host: '127.0.0.1', port, retransmitIntervalMs: 50, retransmits: 5 });
    expect((await c.ping()).ok).toBe(true);
    expect(cookies.length).toBe(3);
    expect(new Set(cookies).size).toBe(1);
    c.close();
  });

  it('times out after N retransmits', async () => {
    let count = 0;
    const port = await fakeServer(() => count++);
    const c = new NgClient({ host: '127.0.0.1', port, retransmitIntervalMs: 30, retransmits: 2 });
    const r = await c.ping();
    expect(r).toMatchObject({ ok: false, code: 'NG_ERR_TIMEOUT' });
    expect(count).toBe(3);
    c.close();
  });

  it('maps error and load limit results', async () => {
    const port = await fakeServer((m, r, s) => {
      const cookie = m.subarray(0, m.indexOf(0x20));
      const body = m.includes('query') ? 'd12:error-reason15:Unknown call-id6:result5:errore' : 'd7:message5:full!6:result10:load limite';
      s.send(Buffer.concat([cookie, Buffer.from(' ' + body)]), r.port, r.address);
    });
    const c = new NgClient({ host: '127.0.0.1', port });
    expect(await c.query({ callId: 'x' })).toMatchObject({ ok: false, code: 'NG_ERR_REMOTE', reason: 'Unknown call-id' });
    expect(await c.offer({ callId: 'x', fromTag: 'y', sdp: 'v=0\r\n' })).toMatchObject({ ok: false, code: 'NG_ERR_LOAD_LIMIT', reason: 'full!' });
    c.close();
  });

  it('offer goes out with rtpengine key spellings', async () => {
    let seen: unknown;
    const port = await fakeServer((m, r, s) => {
      const idx = m.indexOf(0x20);
      const d = bdecode(m.subarray(idx + 1), { strings: 'utf8' });
      seen = d.ok ? d.value : undefined;
      const sdp = 'v=0\r\n';
      s.send(Buffer.concat([m.subarray(0, idx), Buffer.from(` d6:result2:ok3:sdp${sdp.length}:${sdp}e`)]), r.port, r.address);
    });
    const c = new NgClient({ host: '127.0.0.1', port });
    const r = await c.offer({ callId: 'c1', fromTag: 'f1', viaBranch: 'z9hG4bK1', sdp: 'v=0\r\n', receivedFrom: '192.0.2.1', flags: ['trust-address'], replace: ['origin'], ice: 'remove', label: 'caller' });
    expect(r).toMatchObject({ ok: true, value: { sdp: 'v=0\r\n' } });
    expect(seen).toEqual({
      command: 'offer',
      'call-id': 'c1',
      'from-tag': 'f1',
      'via-branch': 'z9hG4bK1',
      sdp: 'v=0\r\n',
      supports: ['load limit'],
      'received-from': ['IP4', '192.0.2.1'],
      flags: ['trust-address'],
      replace: ['origin'],
      ICE: 'remove',
      label: 'caller',
    });
    c.close();
  });
});
