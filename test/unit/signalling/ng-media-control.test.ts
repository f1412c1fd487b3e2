import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bencode } from '../../../src/ng/bencode.js';
import { NgMediaControl } from '../../../src/signalling/media-control/ng-media-control.js';

// A stand-in ng server for this one class: answers every offer/answer with an SDP.
let server: dgram.Socket;
let port = 0;
beforeAll(async () => {
  server = dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => {
    const cookie = msg.toString('latin1').split(' ')[0]!;
    server.send(Buffer.concat([Buffer.from(`${cookie} `), bencode({ result: 'ok', sdp: 'v=0\r\n' })]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
  port = server.address().port;
});
afterAll(() => server.close());

const sdp = Buffer.from('v=0\r\n');

describe('NgMediaControl call pins', () => {
  it('are bounded: past the limit the least recently signalled call is unpinned, never the whole map', async () => {
    const mc = new NgMediaControl({ nodes: [{ host: '127.0.0.1', port }], maxPinnedCalls: 2 });
    for (const c of ['c1', 'c2']) expect((await mc.offer({ callId: c, fromTag: 'a', sdp })).ok).toBe(true);
    // c1 signals again (its answer): now c2 is the least recently signalled.
    expect((await mc.answer({ callId: 'c1', fromTag: 'a', toTag: 'b', sdp })).ok).toBe(true);
    expect((await mc.offer({ callId: 'c3', fromTag: 'a', sdp })).ok).toBe(true);
    expect(mc.pinnedCalls).toBe(2);
    expect((await mc.answer({ callId: 'c1', fromTag: 'a', toTag: 'b', sdp })).ok).toBe(true);
    expect((await mc.answer({ callId: 'c3', fromTag: 'a', toTag: 'b', sdp })).ok).toBe(true);
    const evicted = await mc.answer({ callId: 'c2', fromTag: 'a', toTag: 'b', sdp });
    expect(evicted.ok).toBe(false);
    await mc.close();
  });
});
