/**
 * A tracked dialog keeps its own strings, not the messages they were read from: Call-ID, tags
 * and URIs come off the INVITE and the 2xx as slices of their text, and a dialog lives as long as
 * its call. Here each INVITE and each 2xx is 4 kB of text; the heap held per dialog after a full
 * collection must stay far below the 8 kB they add up to.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DialogTracker } from '../../../src/signalling/dialogs/dialog-tracker.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

/** A value read off a message's text: a slice of all of it, as the parser gives. */
function readOff(text: string, value: string): string {
  const at = text.indexOf(value);
  return text.slice(at, at + value.length);
}

describe('dialog memory', () => {
  it('a confirmed dialog holds well under the 8 kB of its INVITE and 2xx', () => {
    const tracker = new DialogTracker({});
    const N = 2000;
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < N; i++) {
      const callId = `${i}-a-call-id-of-some-length@192.0.2.7`;
      const invite = `INVITE sip:b@d.test SIP/2.0\r\nCall-ID: ${callId}\r\nFrom: <sip:a@d.test>;tag=from-tag-${i}\r\nTo: <sip:b@d.test>\r\n${'x'.repeat(4000)}`;
      const ok = `SIP/2.0 200 OK\r\nCall-ID: ${callId}\r\nTo: <sip:b@d.test>;tag=to-tag-of-the-callee-${i}\r\n${'y'.repeat(4000)}`;
      tracker.early(readOff(invite, callId), readOff(invite, `from-tag-${i}`), 'sip:pbx1', undefined, { fromUri: readOff(invite, '<sip:a@d.test>'), toUri: readOff(invite, '<sip:b@d.test>') });
      tracker.confirm(readOff(ok, callId), readOff(ok, `to-tag-of-the-callee-${i}`));
    }
    gc();
    const perDialog = (process.memoryUsage().heapUsed - before) / N;
    expect(tracker.get(`7-a-call-id-of-some-length@192.0.2.7`)?.toTag).toBe('to-tag-of-the-callee-7');
    expect(perDialog).toBeLessThan(2048);
    tracker.close();
  });
});
