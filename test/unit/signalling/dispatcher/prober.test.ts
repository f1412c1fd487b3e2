import { afterEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../../../../src/signalling/dispatcher/dispatcher.js';
import { Prober, type ProbeClock, type ProbeReply } from '../../../../src/signalling/dispatcher/prober.js';
import { metricsRegistry } from '../../../../src/util/metrics.js';

/** Fake clock: timers fire only when the test advances time. */
class FakeClock implements ProbeClock {
  now = 0;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.#timers.push({ at: this.now + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== h);
  }
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const t = this.#timers[0];
      if (!t || t.at > end) break;
      this.#timers.shift();
      this.now = t.at;
      t.fn();
      await flush();
    }
    this.now = end;
    await flush();
  }
}
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

const made: Dispatcher[] = [];
afterEach(() => {
  for (const d of made.splice(0)) d.close();
});

function setup(downAfter = 3, upAfter = 2) {
  const clock = new FakeClock();
  const d = new Dispatcher({ thresholds: { downAfter, upAfter }, now: () => clock.now });
  made.push(d);
  d.defineSet('pbx', 'round-robin');
  d.addDestination('pbx', { uri: 'sip:a' });
  d.addDestination('pbx', { uri: 'sip:b' });
  const replies = new Map<string, ProbeReply>([
    ['sip:a', { status: 200 }],
    ['sip:b', { status: 200 }],
  ]);
  const sent: { uri: string; at: number }[] = [];
  const prober = new Prober(d, async (uri) => {
    sent.push({ uri, at: clock.now });
    return replies.get(uri)!;
  }, { intervalSec: 10, okStatuses: [200, 404], clock });
  const health = () => d.sets.get('pbx')!.destinations.map((x) => `${x.uri.slice(4)}:${x.health}`).join(' ');
  const changes: string[] = [];
  d.on('health', (uri, h, reason) => changes.push(`${uri} ${h} ${reason} @${clock.now}`));
  return { clock, d, replies, sent, prober, health, changes };
}

describe('probing state machine (fake clock)', () => {
  it('probes every interval, marks down after K failures and up after M successes', async () => {
    const { clock, replies, sent, prober, health, changes } = setup(3, 2);
    prober.start();
    await flush();
    expect(sent.map((s) => s.uri)).toEqual(['sip:a', 'sip:b']);
    replies.set('sip:b', { timeout: true });
    await clock.advance(10_000); // failure 1
    await clock.advance(10_000); // failure 2
    expect(health()).toBe('a:up b:up');
    replies.set('sip:b', { status: 503 }); // status not in OK list also fails
    await clock.advance(10_000); // failure 3
    expect(health()).toBe('a:up b:down');
    expect(changes).toEqual(['sip:b down probe-failures @30000']);
    replies.set('sip:b', { status: 404 }); // in the OK list
    await clock.advance(10_000);
    expect(health()).toBe('a:up b:down');
    await clock.advance(10_000);
    expect(health()).toBe('a:up b:up');
    expect(changes.at(-1)).toBe('sip:b up probe-successes @50000');
    expect(sent.filter((s) => s.uri === 'sip:b').map((s) => s.at)).toEqual([0, 10_000, 20_000, 30_000, 40_000, 50_000]);
    prober.stop();
    await clock.advance(60_000);
    expect(sent.length).toBe(12);
  });

  it('one success in between resets the failure count (no flapping)', async () => {
    const { clock, replies, prober, health } = setup(2, 1);
    prober.start();
    for (const r of [{ timeout: true }, { status: 200 }, { timeout: true }, { status: 200 }] as ProbeReply[]) {
      replies.set('sip:a', r);
      await clock.advance(10_000);
    }
    expect(health()).toBe('a:up b:up');
    replies.set('sip:a', { error: 'ECONNREFUSED' });
    await clock.advance(10_000);
    await clock.advance(10_000);
    expect(health()).toBe('a:down b:up');
    prober.stop();
  });

  it('a branch timeout marks down at once; probing brings it back after M successes', async () => {
    const { clock, d, prober, health, changes } = setup(3, 2);
    d.markDown('sip:a', 'branch-timeout');
    expect(health()).toBe('a:down b:up');
    const plan = d.plan('pbx')!;
    expect(plan.next()!.uri).toBe('sip:b');
    prober.start();
    await flush();
    expect(health()).toBe('a:down b:up'); // 1 success
    await clock.advance(10_000);
    expect(health()).toBe('a:up b:up');
    expect(changes).toEqual(['sip:a down branch-timeout @0', 'sip:a up probe-successes @10000']);
    prober.stop();
  });

  it('does not overlap probes of one URI and picks up URIs added at run time', async () => {
    const clock = new FakeClock();
    const d = new Dispatcher({ now: () => clock.now });
    made.push(d);
    d.addDestination('pbx', { uri: 'sip:slow' });
    let release: (() => void) | undefined;
    const sent: string[] = [];
    const prober = new Prober(d, (uri) => {
      sent.push(uri);
      if (uri === 'sip:slow') return new Promise((r) => (release = () => r({ status: 200 })));
      return Promise.resolve({ status: 200 });
    }, { intervalSec: 1, clock });
    prober.start();
    d.addDestination('pbx', { uri: 'sip:new' });
    await clock.advance(1000);
    await clock.advance(1000);
    expect(sent).toEqual(['sip:slow', 'sip:new', 'sip:new']);
    release!();
    await flush();
    await clock.advance(1000);
    expect(sent.filter((s) => s === 'sip:slow').length).toBe(2);
    prober.stop();
  });

  it('counts state changes and probes in metrics', async () => {
    const { clock, replies, prober, health } = setup(1, 1);
    prober.start();
    await flush();
    replies.set('sip:a', { timeout: true });
    await clock.advance(10_000);
    prober.stop();
    expect(health()).toBe('a:down b:up');
    const text = await metricsRegistry.metrics();
    expect(text).toMatch(/tandem_dispatcher_health_changes_total\{destination="sip:a",to="down",reason="probe-failures"\} [1-9]/);
    expect(text).toMatch(/tandem_dispatcher_probes_total\{destination="sip:a",outcome="timeout"\} [1-9]/);
    expect(text).toMatch(/tandem_dispatcher_destination_up\{set="pbx",destination="sip:a"\} 0/);
  });
});
