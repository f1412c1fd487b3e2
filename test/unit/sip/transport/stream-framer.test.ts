import { describe, expect, it } from 'vitest';
import { StreamFramer } from '../../../../src/sip/transport/stream-framer.js';

const msg = (body = '') =>
  `OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('StreamFramer', () => {
  const opts = { maxMessageBytes: 1000, maxBufferedBytes: 2000 };

  it('splits back-to-back messages and reassembles byte-by-byte input', () => {
    const f = new StreamFramer(opts);
    const all = Buffer.from(msg('hello') + msg() + msg('x'));
    const out: string[] = [];
    for (let i = 0; i < all.length; i++) {
      for (const ev of f.push(all.subarray(i, i + 1))) {
        expect(ev.kind).toBe('message');
        if (ev.kind === 'message') out.push(ev.data.toString());
      }
    }
    expect(out).toEqual([msg('hello'), msg(), msg('x')]);
    expect(f.buffered).toBe(0);
  });

  it('reports CRLFCRLF pings, skips CRLF pongs, even split across chunks', () => {
    const f = new StreamFramer(opts);
    expect(f.push(Buffer.from('\r\n'))).toEqual([]);
    expect(f.push(Buffer.from('\r\n'))).toEqual([{ kind: 'ping' }]);
    const evs = f.push(Buffer.from('\r\n' + msg()));
    expect(evs.map((e) => e.kind)).toEqual(['message']);
  });

  it('fails on missing or bad Content-Length, returning the header for a 400', () => {
    const f = new StreamFramer(opts);
    const [ev] = f.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n'));
    expect(ev).toMatchObject({ kind: 'error', code: 'SIP_ERR_MISSING_HEADER', reason: 'Missing Content-Length' });
    expect(ev?.kind === 'error' && ev.data?.toString()).toMatch(/^OPTIONS sip:a@b SIP\/2.0\r\n/);
    expect(f.push(Buffer.from(msg()))).toEqual([]); // framing lost: connection is closed by the caller
    const g = new StreamFramer(opts);
    expect(g.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n'))[0]).toMatchObject({ code: 'SIP_ERR_BAD_CONTENT_LENGTH' });
  });

  it('bounds memory: an endless header or a huge Content-Length fails', () => {
    const f = new StreamFramer(opts);
    expect(f.push(Buffer.alloc(1001, 0x41))[0]).toMatchObject({ kind: 'error', code: 'SIP_ERR_TOO_LARGE' });
    const g = new StreamFramer(opts);
    expect(g.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n'))[0]).toMatchObject({ code: 'SIP_ERR_TOO_LARGE' });
    const h = new StreamFramer({ maxMessageBytes: 100_000, maxBufferedBytes: 500 });
    expect(h.push(Buffer.alloc(600, 0x41))[0]).toMatchObject({ code: 'SIP_ERR_BUFFER_OVERFLOW' });
  });
});
