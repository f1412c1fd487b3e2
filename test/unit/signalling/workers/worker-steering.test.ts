import { describe, expect, it } from 'vitest';
import { callIdHashOf } from '../../../../src/signalling/workers/call-id-hash.js';
import type { WorkerChannel } from '../../../../src/signalling/workers/worker-channel.js';
import { CONNECTION_ID_RANGE, WorkerSteering } from '../../../../src/signalling/workers/worker-steering.js';
import type { Source } from '../../../../src/sip/transport/types.js';

/** Records what would cross the channel. */
function fakeChannel() {
  const forwarded: Array<{ to: number; callId: string }> = [];
  const writes: Array<{ to: number; id: number }> = [];
  const ch = {
    setPeers: () => undefined,
    forward: (to: number, data: Buffer) => {
      forwarded.push({ to, callId: /Call-ID: (\S+)/.exec(data.toString())![1]! });
      return true;
    },
    write: (to: number, id: number) => {
      writes.push({ to, id });
      return true;
    },
  } as unknown as WorkerChannel;
  return { ch, forwarded, writes };
}

const src: Source = { transport: 'udp', address: '192.0.2.1', port: 5060, localAddress: '127.0.0.1', localPort: 5060 };
const msg = (callId: string) => Buffer.from(`BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: ${callId}\r\nCSeq: 2 BYE\r\n\r\n`);
const idFor = (w: number, n: number): string => {
  for (let i = 0; ; i++) if (callIdHashOf(`c${i}@x`) % n === w) return `c${i}@x`;
};

describe('WorkerSteering', () => {
  it('keeps its own calls, hands the others to their worker', () => {
    const { ch, forwarded } = fakeChannel();
    const s = new WorkerSteering(0, 3, ch);
    s.setPeers({ t: 'peers', ports: [1, 2, 3], incarnations: [] });
    expect(s.steer(msg(idFor(0, 3)), src)).toBe(false);
    expect(s.steer(msg(idFor(2, 3)), src)).toBe(true);
    expect(forwarded).toEqual([{ to: 2, callId: idFor(2, 3) }]);
    // No Call-ID: handled where it arrived.
    expect(s.steer(Buffer.from('garbage'), src)).toBe(false);
  });

  it('the slots of a worker that is down go to the next running one, and come back', () => {
    const { ch, forwarded } = fakeChannel();
    const s = new WorkerSteering(0, 3, ch);
    s.setPeers({ t: 'peers', ports: [1, 0, 3], incarnations: [] });
    expect(s.ownerOf(msg(idFor(1, 3)))).toBe(2);
    s.setPeers({ t: 'peers', ports: [1, 0, 0], incarnations: [] });
    expect(s.ownerOf(msg(idFor(1, 3)))).toBe(0);
    expect(s.ownerOf(msg(idFor(2, 3)))).toBe(0);
    s.setPeers({ t: 'peers', ports: [1, 2, 3], incarnations: [] });
    expect(s.ownerOf(msg(idFor(1, 3)))).toBe(1);
    expect(forwarded).toEqual([]);
  });

  it('answers to a probe a worker sent go back to it', () => {
    const { ch } = fakeChannel();
    const s = new WorkerSteering(1, 2, ch);
    s.setPeers({ t: 'peers', ports: [1, 2], incarnations: [] });
    expect(s.ownerOf(msg('tdmw0.ds-abc@10.0.0.1'))).toBe(0);
    expect(s.ownerOf(msg('tdmw1.ds-abc@10.0.0.1'))).toBe(1);
    // A worker index the node does not have: kept.
    expect(s.ownerOf(msg('tdmw7.ds-abc@10.0.0.1'))).toBe(1);
  });

  it('a write on a connection of another worker goes to that worker, by the id range of its process', () => {
    const { ch, writes } = fakeChannel();
    const s = new WorkerSteering(0, 2, ch);
    s.setPeers({ t: 'peers', ports: [1, 2], incarnations: [[5, 0], [6, 1]] });
    const theirs = 6 * CONNECTION_ID_RANGE + 17;
    expect(s.sendElsewhere(Buffer.from('x'), theirs)).toBe(true);
    expect(writes).toEqual([{ to: 1, id: theirs }]);
    // Ours (closed meanwhile), or of a process that is gone: not handed anywhere.
    expect(s.sendElsewhere(Buffer.from('x'), 5 * CONNECTION_ID_RANGE + 3)).toBe(false);
    expect(s.sendElsewhere(Buffer.from('x'), 4 * CONNECTION_ID_RANGE + 3)).toBe(false);
    expect(s.transportOptions(5).connectionIdBase).toBe(5 * CONNECTION_ID_RANGE + 1);
  });
});
