import { describe, expect, it } from 'vitest';
import { ClusterMonitor, type NodeFigures } from '../../../src/admin/cluster-monitor.js';
import { EventLog } from '../../../src/admin/event-log.js';
import type { RedisState } from '../../../src/state/redis/redis-state.js';
import type { NodeInfo, NodeRegistry } from '../../../src/state/store.js';

class FakeRegistry implements NodeRegistry {
  readonly nodeId = 'a';
  live: NodeInfo[] = [];
  start(): void {}
  async heartbeat(): Promise<boolean> {
    return true;
  }
  async liveNodes(): Promise<NodeInfo[]> {
    return this.live;
  }
  async close(): Promise<void> {}
}

function info(id: string): NodeInfo {
  return { nodeId: id, startedAtMs: Date.now() - 1000, heartbeatAtMs: Date.now(), version: 1, meta: { role: 'signalling' } };
}

function figures(over: Partial<NodeFigures> = {}): NodeFigures {
  return { invitesTotal: 0, activeCalls: 0, earlyCalls: 0, registrations: 0, aors: 0, transactions: 0, mediaSessions: 0, mediaPacketsTotal: 0, draining: false, sip: [], pbx: [], ...over };
}

describe('ClusterMonitor', () => {
  it('turns changes into events: nodes joining and lapsing (a lapsed node stays listed, down), PBX down and up', async () => {
    const registry = new FakeRegistry();
    registry.live = [info('a'), info('b')];
    let f = figures({ pbx: [{ set: 's', uri: 'sip:pbx1', up: true, state: 'enabled/up', activeCalls: 0 }] });
    const events = new EventLog('a');
    const m = new ClusterMonitor({ nodeId: 'a', cluster: 'c', registry, vips: [], held: () => [], collect: async () => f, events });
    let snap = await m.refresh();
    expect(snap.nodes.map((n) => [n.nodeId, n.live, n.self])).toEqual([['a', true, true], ['b', true, false]]);
    expect(events.since().map((e) => e.kind)).toEqual(['node-up', 'node-up']);

    registry.live = [info('a')];
    f = figures({ pbx: [{ set: 's', uri: 'sip:pbx1', up: false, state: 'enabled/down', activeCalls: 0 }] });
    snap = await m.refresh();
    expect(snap.nodes.find((n) => n.nodeId === 'b')?.live).toBe(false);
    const kinds = events.since(2).map((e) => `${e.kind} ${e.subject}`);
    expect(kinds).toContain('node-down b');
    expect(kinds).toContain('pbx-down sip:pbx1');

    f = figures({ pbx: [{ set: 's', uri: 'sip:pbx1', up: true, state: 'enabled/up', activeCalls: 0 }] });
    await m.refresh();
    expect(events.since().some((e) => e.kind === 'pbx-up')).toBe(true);
    await m.stop();
  });

  it('VIP holder from held() without a lease store; moves between rounds become vip-moved events', async () => {
    let held: string[] = [];
    const events = new EventLog('a');
    const m = new ClusterMonitor({ nodeId: 'a', cluster: 'c', vips: ['10.0.0.1'], held: () => held, collect: async () => figures(), events });
    let snap = await m.refresh();
    expect(snap.vips).toEqual([{ vip: '10.0.0.1' }]);
    held = ['10.0.0.1'];
    snap = await m.refresh();
    expect(snap.vips).toEqual([{ vip: '10.0.0.1', holder: 'a', epoch: 0 }]);
    expect(snap.nodes[0]!.vips).toEqual(['10.0.0.1']);
    expect(events.since().filter((e) => e.kind === 'vip-moved').map((e) => e.text)).toEqual(['10.0.0.1 taken by a (epoch 0)']);
    held = [];
    await m.refresh();
    expect(events.since().at(-1)!.kind).toBe('vip-free');
    expect(snap.redis.configured).toBe(false);
  });

  it('series: rates from consecutive figures, bounded history', async () => {
    let n = 0;
    const m = new ClusterMonitor({
      nodeId: 'a', cluster: 'c', vips: [], held: () => [], events: new EventLog('a'), historyPoints: 5,
      collect: async () => {
        n++;
        return figures({ invitesTotal: n * 10, mediaPacketsTotal: n * 100, activeCalls: n, registrations: 2 * n });
      },
    });
    for (let i = 0; i < 8; i++) {
      await m.refresh();
      await new Promise((r) => setTimeout(r, 15));
    }
    const s = m.series()['a']!;
    expect(s).toHaveLength(5);
    const last = s.at(-1)!;
    expect(last.activeCalls).toBe(8);
    expect(last.registrations).toBe(16);
    // 10 INVITEs and 100 packets per round of ~15 ms: rates far above zero.
    expect(last.callsPerSec).toBeGreaterThan(100);
    expect(last.mediaPacketsPerSec).toBeGreaterThan(1000);
  });

  it('a collect() that throws leaves the last snapshot and counts, never rejects', async () => {
    const m = new ClusterMonitor({ nodeId: 'a', cluster: 'c', vips: [], held: () => [], events: new EventLog('a'), collect: async () => { throw new Error('boom'); } });
    const snap = await m.refresh();
    expect(snap.nodes).toEqual([]);
  });
});

describe('EventLog', () => {
  it('keeps the newest events up to its bound, with growing seq', () => {
    const log = new EventLog('n', 3);
    const seen: number[] = [];
    log.on('event', (e) => seen.push(e.seq));
    for (let i = 0; i < 5; i++) log.add('node-up', `n${i}`, `node n${i}`);
    expect(log.size).toBe(3);
    expect(log.since().map((e) => e.subject)).toEqual(['n2', 'n3', 'n4']);
    expect(log.since(3).map((e) => e.seq)).toEqual([4, 5]);
    expect(log.since(0, 1).map((e) => e.seq)).toEqual([5]);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  it('a throwing listener does not break add()', () => {
    const log = new EventLog('n');
    log.on('event', () => {
      throw new Error('listener');
    });
    expect(() => log.add('redis-down', 'r', 'x')).not.toThrow();
  });
});

/** Enough of RedisState for the monitor: a command connection that can go down and move. */
function fakeState() {
  const store = new Map<string, string>();
  const commands = {
    ready: true,
    address: '10.0.0.1:6379' as string | undefined,
    async call(cmd: string, ...args: Array<string | number>): Promise<unknown> {
      if (!commands.ready) throw new Error('down');
      if (cmd === 'SET') store.set(String(args[0]), String(args[1]));
      if (cmd === 'MGET') return args.map((k) => store.get(String(k)) ?? null);
      if (cmd === 'INFO') return 'role:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=90,lag=1\r\nmaster_repl_offset:100\r\n';
      return 'OK';
    },
  };
  const state = {
    cluster: 'c',
    commands,
    subscriber: { ready: true },
    outbox: { depth: 3 },
    resyncs: 0,
    key: (kind: string, id: string) => `tandem:c:${kind}:${id}`,
  };
  return { state, store, commands };
}

describe('ClusterMonitor with Redis', () => {
  it('reads the other nodes\' figures, lease holders and replicas; Redis down, up and failover become events', async () => {
    const { state, store, commands } = fakeState();
    const registry = new FakeRegistry();
    registry.live = [info('a'), info('b')];
    store.set('tandem:c:stats:b', JSON.stringify({ ...figures({ activeCalls: 7 }), nodeId: 'b', atMs: Date.now(), held: ['10.9.9.9'] }));
    let holder = { owner: 'b', epoch: 4 };
    const events = new EventLog('a');
    const m = new ClusterMonitor({
      nodeId: 'a', cluster: 'c', registry, vips: ['10.9.9.9'], events, held: () => [], collect: async () => figures({ activeCalls: 2 }),
      state: state as unknown as RedisState, redisMode: 'sentinel', leaseHolder: async () => holder,
    });
    let snap = await m.refresh();
    expect(JSON.parse(store.get('tandem:c:stats:a')!).activeCalls).toBe(2);
    expect(snap.nodes.find((n) => n.nodeId === 'b')!.stats!.activeCalls).toBe(7);
    expect(snap.nodes.find((n) => n.nodeId === 'b')!.vips).toEqual(['10.9.9.9']);
    expect(snap.vips).toEqual([{ vip: '10.9.9.9', holder: 'b', epoch: 4 }]);
    expect(snap.redis).toMatchObject({ configured: true, mode: 'sentinel', connected: true, address: '10.0.0.1:6379', outboxDepth: 3, role: 'master' });
    expect(snap.redis.replicas).toEqual([{ address: '10.0.0.2:6379', state: 'online', lagSec: 1, offsetBehind: 10 }]);

    holder = { owner: 'a', epoch: 5 };
    await m.refresh();
    commands.ready = false;
    snap = await m.refresh();
    expect(snap.redis.connected).toBe(false);
    // While Redis is away the holder last known is kept.
    expect(snap.vips[0]).toMatchObject({ holder: 'a', epoch: 5 });
    commands.ready = true;
    commands.address = '10.0.0.2:6379';
    await m.refresh();
    const kinds = events.since().map((e) => e.kind);
    expect(kinds).toEqual(['lease-taken', 'node-up', 'node-up', 'vip-moved', 'redis-down', 'redis-up', 'redis-failover']);
    expect(events.since().find((e) => e.kind === 'redis-failover')!.text).toBe('Redis primary moved from 10.0.0.1:6379 to 10.0.0.2:6379');
    expect(events.since().find((e) => e.kind === 'vip-moved')!.text).toBe('10.9.9.9 moved from b to a (epoch 5)');
  });
});

describe('ClusterMonitor VIP moves', () => {
  it('a round that falls between the lapse and the takeover still reports "moved from A to B"', async () => {
    let held: string[] = [];
    const events = new EventLog('a');
    // Keepalived-style view through held(): the holder is this node or nobody.
    const m = new ClusterMonitor({ nodeId: 'a', cluster: 'c', vips: ['10.0.0.1'], held: () => held, collect: async () => figures(), events });
    held = ['10.0.0.1'];
    await m.refresh();
    held = [];
    await m.refresh();
    held = ['10.0.0.1'];
    await m.refresh();
    expect(events.since().map((e) => e.kind)).toEqual(['lease-taken', 'node-up', 'vip-free', 'lease-taken']);
    expect(events.since().at(-1)!.text).toBe('10.0.0.1 lease taken again by a (epoch 0)');
  });

  it('lease holders with a gap: b, nobody, a -> vip-free then vip-moved from b to a', async () => {
    const { state } = fakeState();
    let holder: { owner: string; epoch: number } | undefined = { owner: 'b', epoch: 1 };
    const events = new EventLog('a');
    const m = new ClusterMonitor({ nodeId: 'a', cluster: 'c', vips: ['v'], registry: new FakeRegistry(), held: () => [], collect: async () => figures(), events, state: state as unknown as RedisState, leaseHolder: async () => holder });
    await m.refresh();
    holder = undefined;
    await m.refresh();
    holder = { owner: 'a', epoch: 2 };
    await m.refresh();
    const moved = events.since().filter((e) => e.kind === 'vip-moved' || e.kind === 'vip-free').map((e) => e.text);
    expect(moved).toEqual(['v has no holder (was b)', 'v moved from b to a (epoch 2)']);
  });
});
