import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { dispatcherRoutes } from '../../../../src/admin/dispatcher-routes.js';
import { dispatcherConfigSchema, dispatcherFromConfig, isFailoverStatus } from '../../../../src/signalling/dispatcher/index.js';

describe('dispatcher config section', () => {
  it('fills defaults and builds sets', () => {
    const cfg = dispatcherConfigSchema.parse({
      sets: { pbx: { algorithm: 'weighted', destinations: [{ uri: 'sip:10.0.0.1:5060', weight: 2 }, { uri: 'sip:10.0.0.2:5060', state: 'disabled', attrs: { site: 'b' } }] } },
    });
    expect(cfg.probing).toMatchObject({ enabled: true, intervalSec: 10, downAfter: 3, upAfter: 2, okStatuses: [200] });
    expect(cfg.failover).toMatchObject({ frTimerMs: 4000, frInvTimerMs: 60_000 });
    const d = dispatcherFromConfig(cfg);
    const view = d.view()[0]!;
    expect(view.algorithm).toBe('weighted');
    expect(view.destinations.map((x) => [x.uri, x.weight, x.admin, x.attrs])).toEqual([
      ['sip:10.0.0.1:5060', 2, 'enabled', {}],
      ['sip:10.0.0.2:5060', 1, 'disabled', { site: 'b' }],
    ]);
    d.close();
  });

  it('rejects bad values with the field path', () => {
    const r = dispatcherConfigSchema.safeParse({ probing: { intervalSec: 0.5 }, sets: { pbx: { algorithm: 'fastest', destinations: [{ uri: 'http://x' }] } } });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['probing.intervalSec', 'sets.pbx.algorithm', 'sets.pbx.destinations.0.uri']));
  });

  it('failover status list', () => {
    const s = dispatcherConfigSchema.parse({}).failover.statuses;
    expect([500, 503, 599, 408].every((x) => isFailoverStatus(x, s))).toBe(true);
    expect([404, 486, 603, 480].some((x) => isFailoverStatus(x, s))).toBe(false);
  });
});

describe('dispatcher admin routes', () => {
  it('adds, disables, drains, removes at run time and shows state', async () => {
    const d = dispatcherFromConfig(dispatcherConfigSchema.parse({ sets: { pbx: { destinations: [{ uri: 'sip:a' }] } }, failover: { tryAllWhenAllDown: false } }));
    const app = Fastify();
    dispatcherRoutes(d)(app);
    await app.ready();
    const enc = encodeURIComponent;
    let r = await app.inject({ method: 'POST', url: '/dispatcher/sets/pbx/destinations', payload: { uri: 'sip:b;transport=tcp', weight: 3, attrs: { site: 'x' } } });
    expect(r.statusCode).toBe(201);
    r = await app.inject({ method: 'POST', url: '/dispatcher/sets/pbx/destinations', payload: { uri: 'not a uri' } });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toMatch(/^uri:/);
    r = await app.inject({ method: 'POST', url: `/dispatcher/sets/pbx/destinations/${enc('sip:a')}/drain` });
    expect(r.json()).toMatchObject({ admin: 'draining', available: false });
    expect(d.plan('pbx')!.next()!.uri).toBe('sip:b;transport=tcp');
    r = await app.inject({ method: 'POST', url: `/dispatcher/sets/pbx/destinations/${enc('sip:b;transport=tcp')}/down` });
    expect(r.json()).toMatchObject({ health: 'down', lastChangeReason: 'admin' });
    expect(d.plan('pbx')!.next()).toBeUndefined();
    r = await app.inject({ method: 'POST', url: `/dispatcher/sets/pbx/destinations/${enc('sip:a')}/enable` });
    expect(d.plan('pbx')!.next()!.uri).toBe('sip:a');
    r = await app.inject({ method: 'POST', url: `/dispatcher/sets/pbx/destinations/${enc('sip:a')}/explode` });
    expect(r.statusCode).toBe(400);
    r = await app.inject({ method: 'DELETE', url: `/dispatcher/sets/pbx/destinations/${enc('sip:a')}` });
    expect(r.statusCode).toBe(200);
    r = await app.inject({ method: 'GET', url: '/dispatcher/sets' });
    expect(r.json().sets[0].destinations.map((x: { uri: string }) => x.uri)).toEqual(['sip:b;transport=tcp']);
    r = await app.inject({ method: 'PUT', url: '/dispatcher/sets/other', payload: { algorithm: 'hash', hashKey: 'to-uri' } });
    expect(r.json()).toMatchObject({ name: 'other', algorithm: 'hash', hashKey: 'to-uri' });
    r = await app.inject({ method: 'GET', url: '/dispatcher/sets/none' });
    expect(r.statusCode).toBe(404);
    r = await app.inject({ method: 'POST', url: '/dispatcher/probe' });
    expect(r.statusCode).toBe(409);
    await app.close();
    d.close();
  });
});
