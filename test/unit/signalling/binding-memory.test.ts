/**
 * A binding keeps its own strings, not the REGISTER they were read from: the registrar stores
 * Call-ID, Contact and User-Agent read off the received text, and as slices of it they would
 * keep the whole REGISTER alive for the binding's lifetime (an hour by default). Each REGISTER
 * here carries 4 kB of padding in a header the registrar does not read; the heap held per
 * binding after a full collection must stay far below it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../../src/sip/message/parser.js';
import type { SipRequest } from '../../../src/sip/message/sip-message.js';
import { Registrar, registerFactsOf } from '../../../src/signalling/registrar/registrar.js';
import { MemoryLocationStore } from '../../../src/state/memory/memory-location-store.js';
import type { Source } from '../../../src/sip/transport/types.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;
const src: Source = { transport: 'udp', address: '192.0.2.7', port: 40000, localAddress: '127.0.0.1', localPort: 5060 };
const PAD = 'x'.repeat(4096);

function register(i: number): SipRequest {
  const u = `user${i}`;
  const text =
    `REGISTER sip:d.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bK-${i}\r\nMax-Forwards: 70\r\n` +
    `From: <sip:${u}@d.test>;tag=${i}\r\nTo: <sip:${u}@d.test>\r\nCall-ID: ${i}-call-id-long-enough@192.0.2.7\r\nCSeq: 1 REGISTER\r\n` +
    `Contact: <sip:${u}@192.0.2.7:40000;transport=udp>\r\nUser-Agent: Test Phone 1.0 (a name longer than a slice's minimum)\r\nX-Padding: ${PAD}\r\nContent-Length: 0\r\n\r\n`;
  const r = parseMessage(Buffer.from(text, 'latin1'));
  if (!r.ok) throw new Error(r.reason);
  return r.value as SipRequest;
}

describe('binding memory', () => {
  it('a binding holds well under the 4 kB of the REGISTER it came from', () => {
    const store = new MemoryLocationStore({ sweepIntervalMs: 3_600_000 });
    const registrar = new Registrar({ store, isLocalDomain: (h) => h === 'd.test' });
    const N = 3000;
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < N; i++) {
      const answer = registrar.decideNow(registerFactsOf(register(i)), src);
      expect(answer?.status).toBe(200);
    }
    gc();
    const perBinding = (process.memoryUsage().heapUsed - before) / N;
    expect(store.size()).toBe(N);
    expect(store.getBindingsSync('sip:user7@d.test')[0]?.userAgent).toBe('Test Phone 1.0 (a name longer than a slice\'s minimum)');
    expect(perBinding).toBeLessThan(2048);
    void store.close();
  });
});
