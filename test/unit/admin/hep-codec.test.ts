import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHep, encodeHep, ipv6Bytes, type HepPacket } from '../../../src/admin/hep/hep-codec.js';
import { parseHepTarget } from '../../../src/admin/hep/hep-exporter.js';

const SIP = Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n');

function packet(over: Partial<HepPacket> = {}): HepPacket {
  return {
    family: 2, ipProtocol: 17, srcIp: '10.1.2.3', dstIp: '192.168.0.1', srcPort: 5060, dstPort: 5070,
    timeSec: 1_796_285_616, timeUsec: 472_000, protoType: 1, captureId: 2001, password: 'myHep', nodeName: 'sip1', payload: SIP, ...over,
  };
}

describe('HEPv3 codec', () => {
  it('encodes the chunks Homer reads: header, length, IPv4 addresses, ports, time, ids, password, payload', () => {
    const r = encodeHep(packet());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const b = r.value;
    expect(b.toString('latin1', 0, 4)).toBe('HEP3');
    expect(b.readUInt16BE(4)).toBe(b.length);
    // First chunk: vendor 0, type 1 (IP family), length 7, value 2.
    expect([...b.subarray(6, 13)]).toEqual([0, 0, 0, 1, 0, 7, 2]);
    // Second chunk: type 2 (IP protocol) = 17.
    expect([...b.subarray(13, 20)]).toEqual([0, 0, 0, 2, 0, 7, 17]);
    // Third: type 3 (IPv4 source) = 10.1.2.3.
    expect([...b.subarray(20, 30)]).toEqual([0, 0, 0, 3, 0, 10, 10, 1, 2, 3]);
    expect(b.subarray(b.length - SIP.length).equals(SIP)).toBe(true);
    const d = decodeHep(b);
    expect(d.ok && d.value).toEqual(packet());
  });

  it('IPv6 addresses go in chunks 5 and 6 with family 10', () => {
    const r = encodeHep(packet({ family: 10, srcIp: '2001:db8::1', dstIp: '::1' }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const d = decodeHep(r.value);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value.family).toBe(10);
    expect(d.value.srcIp).toBe('2001:db8:0:0:0:0:0:1');
    expect(d.value.dstIp).toBe('0:0:0:0:0:0:0:1');
    expect(ipv6Bytes('::ffff:1.2.3.4')!.toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(ipv6Bytes('1.2.3.4')).toBeUndefined();
  });

  it('refuses a packet over 65,535 bytes', () => {
    const r = encodeHep(packet({ payload: Buffer.alloc(65_535) }));
    expect(r.ok).toBe(false);
  });

  it('decoding never throws on arbitrary or truncated input', () => {
    const good = (encodeHep(packet()) as { ok: true; value: Buffer }).value;
    for (let n = 0; n < good.length; n++) {
      const t = good.subarray(0, n);
      expect(() => decodeHep(t)).not.toThrow();
      expect(decodeHep(t).ok).toBe(false);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const b = Buffer.concat([Buffer.from('HEP3'), Buffer.from(bytes)]);
        decodeHep(b);
        decodeHep(Buffer.from(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('parses udp:HOST:PORT targets', () => {
    expect(parseHepTarget('udp:127.0.0.1:9060')).toEqual({ ok: true, value: { host: '127.0.0.1', port: 9060 } });
    expect(parseHepTarget('udp:[::1]:9060')).toEqual({ ok: true, value: { host: '::1', port: 9060 } });
    expect(parseHepTarget('udp:homer.example:9060')).toEqual({ ok: true, value: { host: 'homer.example', port: 9060 } });
    expect(parseHepTarget('tcp:1.2.3.4:9060').ok).toBe(false);
    expect(parseHepTarget('udp:1.2.3.4:70000').ok).toBe(false);
  });
});
