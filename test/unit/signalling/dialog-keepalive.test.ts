import { describe, expect, it } from 'vitest';
import { DialogTracker } from '../../../src/signalling/dialogs/dialog-tracker.js';

const flush = () => new Promise((r) => setTimeout(r, 0));

describe('DialogTracker: confirmed dialogs live as long as their call', () => {
  function setup(answer: () => boolean | undefined) {
    const clock = { t: 0 };
    const ended: string[] = [];
    let asked = 0;
    const d = new DialogTracker({
      confirmedTimeoutMs: 1000,
      now: () => clock.t,
      isAlive: async () => {
        asked++;
        return answer();
      },
    });
    d.onEnded((rec, reason) => ended.push(`${rec.callId}:${reason}`));
    d.early('c1', 'a');
    d.confirm('c1', 'b');
    return { d, clock, ended, asked: () => asked };
  }

  it('a call whose media still runs is kept past the timeout, period after period', async () => {
    const s = setup(() => true);
    for (let i = 1; i <= 5; i++) {
      s.clock.t += 1500;
      s.d.sweep();
      await flush();
    }
    expect(s.ended).toEqual([]);
    expect(s.d.get('c1')?.state).toBe('confirmed');
    expect(s.asked()).toBe(5);
    s.d.close();
  });

  it('a call the media node no longer holds ends at the timeout', async () => {
    const s = setup(() => false);
    s.clock.t += 1500;
    s.d.sweep();
    await flush();
    expect(s.ended).toEqual(['c1:timeout']);
    s.d.close();
  });

  it('"cannot tell" keeps it at most twice more, then it ends', async () => {
    const s = setup(() => undefined);
    for (let i = 0; i < 3; i++) {
      s.clock.t += 1500;
      s.d.sweep();
      await flush();
    }
    expect(s.ended).toEqual(['c1:timeout']);
    s.d.close();
  });

  it('an in-dialog request refreshes the dialog without asking', async () => {
    const s = setup(() => false);
    s.clock.t += 900;
    s.d.touch('c1');
    s.clock.t += 900;
    s.d.sweep();
    await flush();
    expect(s.ended).toEqual([]);
    expect(s.asked()).toBe(0);
    s.d.close();
  });

  it('a dialog a peer claimed meanwhile (owner or epoch changed) is forgotten with no side effect', async () => {
    const clock = { t: 0 };
    const ended: string[] = [];
    const deleted: string[] = [];
    const store = { get: async () => undefined, put: async () => undefined, delete: async (id: string) => void deleted.push(id), size: () => 0, close: async () => undefined };
    const d = new DialogTracker({ confirmedTimeoutMs: 1000, now: () => clock.t, store, nodeId: 'sip1', stillOwner: async () => false });
    d.onEnded((rec) => ended.push(rec.callId));
    d.early('c9', 'a');
    d.confirm('c9', 'b');
    clock.t += 1500;
    d.sweep();
    await flush();
    expect(d.get('c9')).toBeUndefined();
    expect(d.counts().confirmed).toBe(0);
    expect(ended).toEqual([]);
    expect(deleted).toEqual([]);
    d.close();
  });
});

