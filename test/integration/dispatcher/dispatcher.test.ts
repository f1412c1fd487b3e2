/**
 * Dispatcher through `tandem start` with real back-end UAS processes on 127.0.0.1 (issue 6).
 * Timers are shortened (fr_timer 1 s, fr_inv_timer 3 s, probes every 1 s) to keep the suite fast;
 * assertions are about which back-end got each call and in which order, not about timings,
 * except "waited at least fr_timer" lower bounds that hold on any machine.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dispatcherYaml, killAll, sleep, startBackend, startTandem, TestUac, waitFor, type Backend, type CallResult, type Node } from './helpers.js';

const FR_MS = 1000;
const FR_INV_MS = 3000;

let uac: TestUac;
beforeAll(async () => {
  uac = new TestUac();
  await uac.open();
});
afterAll(() => {
  uac.close();
  killAll();
});

const count = (results: CallResult[]) => {
  const m: Record<string, number> = {};
  for (const r of results) m[r.backend ?? `status-${r.status}`] = (m[r.backend ?? `status-${r.status}`] ?? 0) + 1;
  return m;
};
const enc = encodeURIComponent;

async function sequential(node: Node, n: number, to: (i: number) => string = (i) => `sip:9${100 + i}@127.0.0.1`): Promise<CallResult[]> {
  const out: CallResult[] = [];
  for (let i = 0; i < n; i++) out.push(await uac.call(node.sipPort, to(i)));
  return out;
}

describe('distribution across three back-ends', () => {
  let backends: Backend[];
  let node: Node;
  beforeAll(async () => {
    backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startBackend(n)));
    node = await startTandem(dispatcherYaml({ algorithm: 'round-robin', backends: backends.map((b) => ({ uri: b.uri })), intervalSec: 5 }));
  }, 40_000);
  afterAll(async () => {
    await node?.stop();
    backends?.forEach((b) => b.kill());
  });

  it('round-robin: exact rotation', async () => {
    const r = await sequential(node, 30);
    expect(r.every((x) => x.status === 200 && x.byeOk)).toBe(true);
    expect(r.slice(0, 6).map((x) => x.backend)).toEqual(['b1', 'b2', 'b3', 'b1', 'b2', 'b3']);
    expect(count(r)).toEqual({ b1: 10, b2: 10, b3: 10 });
  });

  it('weighted: proportional to weights 3:2:1 (changed at run time through the admin API)', async () => {
    for (const [i, w] of [3, 2, 1].entries()) {
      const res = await node.admin('/dispatcher/sets/pbx/destinations', { method: 'POST', body: { uri: backends[i]!.uri, weight: w } });
      expect(res.status).toBe(201);
    }
    expect((await node.admin('/dispatcher/sets/pbx', { method: 'PUT', body: { algorithm: 'weighted' } })).status).toBe(200);
    const r = await sequential(node, 60);
    expect(count(r)).toEqual({ b1: 30, b2: 20, b3: 10 });
  });

  it('hash over To URI: the same callee always lands on the same back-end', async () => {
    await node.admin('/dispatcher/sets/pbx', { method: 'PUT', body: { algorithm: 'hash', hashKey: 'to-uri' } });
    const users = Array.from({ length: 12 }, (_, i) => `sip:9${500 + i}@127.0.0.1`);
    const first = await sequential(node, users.length, (i) => users[i]!);
    const again = await sequential(node, users.length * 2, (i) => users[i % users.length]!);
    for (let i = 0; i < again.length; i++) expect(again[i]!.backend).toBe(first[i % users.length]!.backend);
    expect(Object.keys(count(first)).length).toBeGreaterThan(1);
  });

  it('call-load: fewest active calls, never above maxCalls, 503 when all are full', async () => {
    for (const b of backends) await node.admin('/dispatcher/sets/pbx/destinations', { method: 'POST', body: { uri: b.uri, maxCalls: 2 } });
    await node.admin('/dispatcher/sets/pbx', { method: 'PUT', body: { algorithm: 'call-load' } });
    // six calls held for 2.5 s fill every back-end to its limit of 2
    const held = Array.from({ length: 6 }, (_, i) => uac.call(node.sipPort, `sip:9${700 + i}@127.0.0.1`, 2500));
    await sleep(800);
    const view = (await node.admin('/dispatcher/sets/pbx')).json;
    expect(view.destinations.map((d: { activeCalls: number }) => d.activeCalls)).toEqual([2, 2, 2]);
    const extra = await uac.call(node.sipPort, 'sip:9799@127.0.0.1');
    expect(extra.status).toBe(503);
    const r = await Promise.all(held);
    expect(r.every((x) => x.status === 200)).toBe(true);
    expect(count(r)).toEqual({ b1: 2, b2: 2, b3: 2 });
    await waitFor(async () => (await node.admin('/dispatcher/sets/pbx')).json.destinations.every((d: { activeCalls: number }) => d.activeCalls === 0), 5000, 'calls released');
  });

  it('admin API at run time: drain, disable, remove and add back without a restart', async () => {
    await node.admin('/dispatcher/sets/pbx', { method: 'PUT', body: { algorithm: 'round-robin' } });
    const [b1, b2, b3] = backends as [Backend, Backend, Backend];
    expect((await node.admin(`/dispatcher/sets/pbx/destinations/${enc(b1.uri)}/drain`, { method: 'POST' })).json).toMatchObject({ admin: 'draining' });
    expect((await node.admin(`/dispatcher/sets/pbx/destinations/${enc(b2.uri)}/disable`, { method: 'POST' })).json).toMatchObject({ admin: 'disabled' });
    expect(count(await sequential(node, 4))).toEqual({ b3: 4 });
    await node.admin(`/dispatcher/sets/pbx/destinations/${enc(b1.uri)}/enable`, { method: 'POST' });
    expect((await node.admin(`/dispatcher/sets/pbx/destinations/${enc(b3.uri)}`, { method: 'DELETE' })).status).toBe(200);
    expect(count(await sequential(node, 4))).toEqual({ b1: 4 });
    await node.admin(`/dispatcher/sets/pbx/destinations/${enc(b2.uri)}/enable`, { method: 'POST' });
    expect((await node.admin('/dispatcher/sets/pbx/destinations', { method: 'POST', body: { uri: b3.uri } })).status).toBe(201);
    const view = (await node.admin('/dispatcher/sets')).json.sets[0];
    expect(view.destinations.map((d: { uri: string; admin: string }) => [d.uri, d.admin])).toEqual([
      [b1.uri, 'enabled'],
      [b2.uri, 'enabled'],
      [b3.uri, 'enabled'],
    ]);
    expect(count(await sequential(node, 6))).toEqual({ b1: 2, b2: 2, b3: 2 });
  });

  it('admin API writes need the bearer token: without it or with a wrong one, 401, counted, and nothing changes', async () => {
    const [b1] = backends as [Backend];
    const plain = await fetch(`http://127.0.0.1:${node.adminPort}/dispatcher/sets/pbx/destinations/${enc(b1.uri)}/disable`, { method: 'POST' });
    expect(plain.status).toBe(401);
    expect((await node.admin(`/dispatcher/sets/pbx/destinations/${enc(b1.uri)}`, { method: 'DELETE', token: 'wrong-token-wrong-token' })).status).toBe(401);
    const view = (await node.admin('/dispatcher/sets')).json.sets[0];
    expect(view.destinations.find((d: { uri: string }) => d.uri === b1.uri)).toMatchObject({ admin: 'enabled' });
    // Reads on loopback need no token.
    const metrics = await (await fetch(`http://127.0.0.1:${node.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/tandem_admin_unauthorized_total\{reason="missing"\} 1/);
    expect(metrics).toMatch(/tandem_admin_unauthorized_total\{reason="wrong"\} 1/);
  });
});

describe('route script', () => {
  it('chooses the set and algorithm per call with dispatch(context, set, request, opts)', async () => {
    const backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startBackend(n)));
    const node = await startTandem(
      dispatcherYaml({ algorithm: 'round-robin', backends: backends.map((b, i) => ({ uri: b.uri, priority: 3 - i })), intervalSec: 30 }),
      ['--route', join(dirname(fileURLToPath(import.meta.url)), 'fixtures/route-dispatch.ts')],
    );
    try {
      const byScript = await sequential(node, 6, (i) => `sip:8${100 + i}@127.0.0.1`);
      expect(count(byScript)).toEqual({ b3: 6 }); // priority: lowest value (b3 = 1) first
      const byPrefix = await sequential(node, 6, (i) => `sip:9${100 + i}@127.0.0.1`);
      expect(count(byPrefix)).toEqual({ b1: 2, b2: 2, b3: 2 }); // the set's own round-robin
    } finally {
      await node.stop();
      backends.forEach((b) => b.kill());
    }
  }, 30_000);
});

describe('failover', () => {
  let node: Node | undefined;
  let backends: Backend[] = [];
  afterEach(async () => {
    await node?.stop();
    backends.forEach((b) => b.kill());
    node = undefined;
    backends = [];
  });

  it('SIGKILL one back-end while calls are placed: every call completes; first retry after fr_timer, later calls skip it', async () => {
    backends = await Promise.all(['b1', 'b2', 'b3'].map((n) => startBackend(n)));
    // slow probing so the skip comes from the branch timeout, not from a probe
    node = await startTandem(dispatcherYaml({ algorithm: 'round-robin', backends: backends.map((b) => ({ uri: b.uri })), intervalSec: 30, downAfter: 3, frTimerMs: FR_MS }));
    const results: Promise<CallResult & { at: number }>[] = [];
    const t0 = Date.now();
    let killedAt = 0;
    for (let i = 0; i < 60; i++) {
      if (i === 12) {
        backends[1]!.kill();
        killedAt = Date.now() - t0;
      }
      const at = Date.now() - t0;
      results.push(uac.call(node.sipPort, `sip:9${100 + i}@127.0.0.1`, 200, { byeTimeoutMs: 3000 }).then((r) => ({ ...r, at })));
      await sleep(50);
    }
    const r = await Promise.all(results);
    expect(r.filter((x) => x.status !== 200)).toEqual([]);
    // BYEs of calls answered by b2 before it died cannot succeed; every other call hangs up cleanly
    expect(r.filter((x) => x.backend !== 'b2' && !x.byeOk)).toEqual([]);
    const after = r.filter((x) => x.at >= killedAt);
    expect(after.some((x) => x.backend === 'b2')).toBe(false);
    const slow = after.filter((x) => x.setupMs >= FR_MS);
    // at least the first call routed to the dead back-end waited for fr_timer ...
    expect(slow.length).toBeGreaterThanOrEqual(1);
    // ... and the calls started after that timeout fired did not pay it again
    const firstTimeoutAt = Math.min(...slow.map((x) => x.at)) + FR_MS + 200;
    const later = after.filter((x) => x.at > firstTimeoutAt);
    expect(later.length).toBeGreaterThan(5);
    expect(later.filter((x) => x.setupMs >= FR_MS)).toEqual([]);
    const view = (await node.admin('/dispatcher/sets/pbx')).json;
    expect(view.destinations.find((d: { uri: string }) => d.uri === backends[1]!.uri)).toMatchObject({ health: 'down', lastChangeReason: 'branch-timeout' });
    const metrics = (await node.admin('/metrics')).json as string;
    expect(metrics).toMatch(/tandem_dispatcher_health_changes_total\{[^}]*to="down",reason="(branch-timeout|transport-error)"\} 1/);
  }, 40_000);

  it('503 fails over at once, ring-forever fails over after fr_inv_timer with CANCEL, 486 goes back to the caller', async () => {
    const b503 = await startBackend('busy', { mode: '503' });
    const ring = await startBackend('ring', { mode: 'ring-forever' });
    const good = await startBackend('good');
    backends = [b503, ring, good];
    node = await startTandem(
      dispatcherYaml({
        algorithm: 'priority',
        backends: [{ uri: b503.uri, priority: 1 }, { uri: ring.uri, priority: 2 }, { uri: good.uri, priority: 3 }],
        intervalSec: 30,
        frTimerMs: FR_MS,
        frInvTimerMs: FR_INV_MS,
      }),
    );
    const r = await uac.call(node.sipPort, 'sip:9100@127.0.0.1', 100);
    expect(r).toMatchObject({ status: 200, backend: 'good', byeOk: true });
    expect(r.setupMs).toBeGreaterThanOrEqual(FR_INV_MS - 50);
    expect(b503.invites).toContain(r.callId);
    expect(ring.invites).toContain(r.callId);
    // neither failure marks its destination down: both answered
    const view = (await node.admin('/dispatcher/sets/pbx')).json;
    expect(view.destinations.map((d: { health: string }) => d.health)).toEqual(['up', 'up', 'up']);

    // A 4xx is final for the caller: no failover.
    b503.setMode('486');
    await sleep(100);
    const busy = await uac.call(node.sipPort, 'sip:9101@127.0.0.1');
    expect(busy.status).toBe(486);
    expect(ring.invites).not.toContain(busy.callId);
    expect(good.invites).not.toContain(busy.callId);

    // Every destination failing: 503 to the caller.
    good.setMode('503');
    ring.setMode('500');
    b503.setMode('503');
    await sleep(100);
    const none = await uac.call(node.sipPort, 'sip:9102@127.0.0.1');
    expect([500, 503]).toContain(none.status);
    expect(good.invites).toContain(none.callId);
  }, 40_000);

  it('a back-end that sends only 100 Trying is abandoned after fr_inv_timer, not fr_timer, and stays up', async () => {
    const trying = await startBackend('trying', { mode: 'trying-only' });
    const good = await startBackend('good');
    backends = [trying, good];
    node = await startTandem(
      dispatcherYaml({
        algorithm: 'priority',
        backends: [{ uri: trying.uri, priority: 1 }, { uri: good.uri, priority: 2 }],
        intervalSec: 30,
        frTimerMs: FR_MS,
        frInvTimerMs: FR_INV_MS,
      }),
    );
    const r = await uac.call(node.sipPort, 'sip:9100@127.0.0.1', 100);
    expect(r).toMatchObject({ status: 200, backend: 'good', byeOk: true });
    expect(trying.invites).toContain(r.callId);
    // Situation 2 of the published design: "Trying" then silence waits for fr_inv_timer.
    expect(r.setupMs).toBeGreaterThanOrEqual(FR_INV_MS - 50);
    // It answered, so it is alive: not marked down by the branch timeout.
    const view = (await node.admin('/dispatcher/sets/pbx')).json;
    expect(view.destinations.map((d: { health: string }) => d.health)).toEqual(['up', 'up']);
  }, 40_000);

  it('a back-end brought back is returned to service by probing', async () => {
    backends = await Promise.all(['b1', 'b2'].map((n) => startBackend(n)));
    node = await startTandem(dispatcherYaml({ algorithm: 'round-robin', backends: backends.map((b) => ({ uri: b.uri })), intervalSec: 1, downAfter: 2, upAfter: 2 }));
    const health = async (uri: string) => (await node!.admin('/dispatcher/sets/pbx')).json.destinations.find((d: { uri: string }) => d.uri === uri).health as string;
    const port = backends[1]!.port;
    const uri = backends[1]!.uri;
    backends[1]!.kill();
    await waitFor(async () => (await health(uri)) === 'down', 10_000, 'probing marks b2 down');
    const during = await sequential(node, 6);
    expect(count(during)).toEqual({ b1: 6 });
    backends[1] = await startBackend('b2', { port });
    await waitFor(async () => (await health(uri)) === 'up', 10_000, 'probing marks b2 up');
    const view = (await node.admin('/dispatcher/sets/pbx')).json;
    expect(view.destinations[1]).toMatchObject({ health: 'up', lastChangeReason: 'probe-successes' });
    expect(backends[1]!.options).toBeGreaterThanOrEqual(2);
    const afterBack = await sequential(node, 6);
    expect(count(afterBack)).toEqual({ b1: 3, b2: 3 });
  }, 40_000);
});
