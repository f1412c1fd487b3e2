import { describe, expect, it } from 'vitest';
import { Dispatcher, hashKeyOf } from '../../../../src/signalling/dispatcher/dispatcher.js';

function disp(random = Math.random): Dispatcher {
  return new Dispatcher({ random });
}

function firstPicks(d: Dispatcher, set: string, n: number, key?: (i: number) => string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const plan = d.plan(set, undefined, key ? { key: key(i) } : {})!;
    const t = plan.next();
    out.push(t ? t.uri : '-');
    plan.release();
  }
  return out;
}

describe('round-robin', () => {
  it('rotates exactly in configured order', () => {
    const d = disp();
    d.defineSet('pbx', 'round-robin');
    for (const u of ['sip:a', 'sip:b', 'sip:c']) d.addDestination('pbx', { uri: u });
    expect(firstPicks(d, 'pbx', 7)).toEqual(['sip:a', 'sip:b', 'sip:c', 'sip:a', 'sip:b', 'sip:c', 'sip:a']);
  });

  it('skips down, disabled and draining destinations and resumes the rotation', () => {
    const d = disp();
    d.defineSet('pbx', 'round-robin');
    for (const u of ['sip:a', 'sip:b', 'sip:c', 'sip:d']) d.addDestination('pbx', { uri: u });
    d.markDown('sip:b', 'branch-timeout');
    d.setAdminState('pbx', 'sip:c', 'disabled');
    expect(firstPicks(d, 'pbx', 4)).toEqual(['sip:a', 'sip:d', 'sip:a', 'sip:d']);
    d.setAdminState('pbx', 'sip:c', 'draining');
    d.setHealth('sip:b', 'up');
    expect(firstPicks(d, 'pbx', 3)).toEqual(['sip:a', 'sip:b', 'sip:d']);
  });

  it('returns nothing when no destination is available (tryAllWhenAllDown off)', () => {
    const d = new Dispatcher({ tryAllWhenAllDown: false });
    d.defineSet('pbx', 'round-robin');
    d.addDestination('pbx', { uri: 'sip:a' });
    d.markDown('sip:a', 'branch-timeout');
    expect(d.plan('pbx')!.next()).toBeUndefined();
    expect(d.plan('nope')).toBeUndefined();
  });
});

describe('every destination down', () => {
  it('tries the enabled ones anyway, in algorithm order, never disabled or draining ones', () => {
    const d = disp();
    d.defineSet('pbx', 'priority');
    d.addDestination('pbx', { uri: 'sip:a', priority: 2 });
    d.addDestination('pbx', { uri: 'sip:b', priority: 1 });
    d.addDestination('pbx', { uri: 'sip:c', priority: 0 });
    d.setAdminState('pbx', 'sip:c', 'draining');
    d.markDown('sip:a', 'branch-timeout');
    d.markDown('sip:b', 'branch-timeout');
    const plan = d.plan('pbx')!;
    expect([plan.next()?.uri, plan.next()?.uri, plan.next()]).toEqual(['sip:b', 'sip:a', undefined]);
    // one back up: only it is used again
    d.setHealth('sip:a', 'up');
    const p2 = d.plan('pbx')!;
    expect([p2.next()?.uri, p2.next()]).toEqual(['sip:a', undefined]);
  });
});

describe('weighted (smooth) round-robin', () => {
  it('is deterministic, exact per window and interleaved', () => {
    const d = disp();
    d.defineSet('pbx', 'weighted');
    d.addDestination('pbx', { uri: 'sip:a', weight: 5 });
    d.addDestination('pbx', { uri: 'sip:b', weight: 1 });
    d.addDestination('pbx', { uri: 'sip:c', weight: 1 });
    const picks = firstPicks(d, 'pbx', 7).map((u) => u.slice(4));
    expect(picks.join('')).toBe('aabacaa');
    const many = firstPicks(d, 'pbx', 700);
    expect(many.filter((u) => u === 'sip:a').length).toBe(500);
    expect(many.filter((u) => u === 'sip:b').length).toBe(100);
  });

  it('weights 3:2:1 give exact proportions; weight 0 gets nothing', () => {
    const d = disp();
    d.defineSet('pbx', 'weighted');
    d.addDestination('pbx', { uri: 'sip:a', weight: 3 });
    d.addDestination('pbx', { uri: 'sip:b', weight: 2 });
    d.addDestination('pbx', { uri: 'sip:c', weight: 1 });
    d.addDestination('pbx', { uri: 'sip:z', weight: 0 });
    const picks = firstPicks(d, 'pbx', 600);
    expect(['sip:a', 'sip:b', 'sip:c', 'sip:z'].map((u) => picks.filter((p) => p === u).length)).toEqual([300, 200, 100, 0]);
  });
});

describe('hash', () => {
  it('same key -> same destination; only the dead one\'s keys move, and they come back', () => {
    const d = disp();
    d.defineSet('pbx', 'hash');
    for (const u of ['sip:a', 'sip:b', 'sip:c']) d.addDestination('pbx', { uri: u });
    const keys = (i: number) => `call-${i}@host`;
    const before = firstPicks(d, 'pbx', 300, keys);
    expect(firstPicks(d, 'pbx', 300, keys)).toEqual(before);
    // reasonably even spread
    for (const u of ['sip:a', 'sip:b', 'sip:c']) expect(before.filter((p) => p === u).length).toBeGreaterThan(60);
    d.markDown('sip:b', 'branch-timeout');
    const during = firstPicks(d, 'pbx', 300, keys);
    for (let i = 0; i < 300; i++) {
      if (before[i] !== 'sip:b') expect(during[i]).toBe(before[i]);
      else expect(during[i]).not.toBe('sip:b');
    }
    d.setHealth('sip:b', 'up');
    expect(firstPicks(d, 'pbx', 300, keys)).toEqual(before);
  });

  it('extracts keys from Call-ID, From, To and request URI', () => {
    const req = {
      callId: 'abc@h',
      uri: 'sip:1000@Example.com;user=phone',
      from: { uri: { scheme: 'sip', user: 'alice', host: 'Atlanta.com' } },
      to: { uri: { scheme: 'sip', user: 'bob', host: 'biloxi.com', port: 5070 } },
    };
    expect(hashKeyOf(req, 'call-id')).toBe('abc@h');
    expect(hashKeyOf(req, 'from-uri')).toBe('sip:alice@atlanta.com');
    expect(hashKeyOf(req, 'to-uri')).toBe('sip:bob@biloxi.com:5070');
    expect(hashKeyOf(req, 'request-uri')).toBe('sip:1000@example.com');
    const d = disp();
    d.defineSet('pbx', 'hash', 'from-uri');
    for (const u of ['sip:a', 'sip:b', 'sip:c']) d.addDestination('pbx', { uri: u });
    const first = d.plan('pbx', req)!.next()!.uri;
    for (let i = 0; i < 20; i++) expect(d.plan('pbx', { ...req, callId: `other-${i}` })!.next()!.uri).toBe(first);
  });
});

describe('random', () => {
  it('follows weights with an injected generator', () => {
    let seed = 1;
    const rng = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const d = disp(rng);
    d.defineSet('pbx', 'random');
    d.addDestination('pbx', { uri: 'sip:a', weight: 3 });
    d.addDestination('pbx', { uri: 'sip:b', weight: 1 });
    const picks = firstPicks(d, 'pbx', 4000);
    const a = picks.filter((p) => p === 'sip:a').length;
    expect(a).toBeGreaterThan(2800);
    expect(a).toBeLessThan(3200);
  });
});

describe('priority', () => {
  it('takes the lowest priority available; failover walks in priority order', () => {
    const d = disp();
    d.defineSet('pbx', 'priority');
    d.addDestination('pbx', { uri: 'sip:backup', priority: 10 });
    d.addDestination('pbx', { uri: 'sip:main', priority: 1 });
    d.addDestination('pbx', { uri: 'sip:last', priority: 20 });
    expect(firstPicks(d, 'pbx', 3)).toEqual(['sip:main', 'sip:main', 'sip:main']);
    const plan = d.plan('pbx')!;
    expect([plan.next()!.uri, plan.next()!.uri, plan.next()!.uri, plan.next()]).toEqual(['sip:main', 'sip:backup', 'sip:last', undefined]);
    d.markDown('sip:main', 'branch-timeout');
    expect(firstPicks(d, 'pbx', 2)).toEqual(['sip:backup', 'sip:backup']);
  });
});

describe('call-load', () => {
  it('gives each call to the least loaded destination and respects maxCalls', () => {
    const d = disp();
    d.defineSet('pbx', 'call-load');
    d.addDestination('pbx', { uri: 'sip:a', maxCalls: 2 });
    d.addDestination('pbx', { uri: 'sip:b', maxCalls: 3 });
    const plans = [];
    for (let i = 0; i < 5; i++) {
      const plan = d.plan('pbx', undefined)!;
      const t = plan.next()!;
      plan.answered(t);
      plans.push({ plan, uri: t.uri });
    }
    expect(plans.map((p) => p.uri).sort()).toEqual(['sip:a', 'sip:a', 'sip:b', 'sip:b', 'sip:b']);
    expect(d.plan('pbx')!.next()).toBeUndefined();
    d.callEnded(plans[0]!.plan.callId);
    const again = d.plan('pbx')!.next();
    expect(again?.uri).toBe(plans[0]!.uri);
  });

  it('frees the slot when a branch fails, and counts it on the next destination', () => {
    const d = disp();
    d.defineSet('pbx', 'call-load');
    d.addDestination('pbx', { uri: 'sip:a' });
    d.addDestination('pbx', { uri: 'sip:b' });
    const plan = d.plan('pbx', { callId: 'c1', uri: 'sip:x', from: { uri: { host: 'h' } }, to: { uri: { host: 'h' } } })!;
    const t1 = plan.next()!;
    expect(t1.destination.activeCalls).toBe(1);
    plan.failed(t1, { reason: 'status', status: 503 });
    expect(t1.destination.activeCalls).toBe(0);
    const t2 = plan.next()!;
    expect(t2.uri).not.toBe(t1.uri);
    expect(t2.destination.activeCalls).toBe(1);
    plan.answered(t2);
    d.callEnded('c1');
    d.callEnded('c1');
    expect(t2.destination.activeCalls).toBe(0);
    expect(d.trackedCalls).toBe(0);
  });
});
