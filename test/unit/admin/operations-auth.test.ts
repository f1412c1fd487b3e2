/**
 * Access rules of the operations API and the dashboard on a real admin server: off loopback the
 * dashboard's static page loads without a token but every /api read and the live feed need it
 * (header, or the `bearer.` subprotocol a browser can send); on loopback the live feed is a read,
 * even when no token is configured (ng over WebSocket stays a write).
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startAdminServer } from '../../../src/admin/admin-server.js';
import { operationsRoutes } from '../../../src/admin/api/operations-routes.js';
import { ClusterMonitor } from '../../../src/admin/cluster-monitor.js';
import { dashboardRoutes } from '../../../src/admin/dashboard/dashboard-routes.js';
import { EventLog } from '../../../src/admin/event-log.js';

const TOKEN = 'tok-0123456789abcdef';
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function server(host: string, token?: string) {
  const events = new EventLog('n1');
  const monitor = new ClusterMonitor({
    nodeId: 'n1', cluster: 't', vips: [], held: () => [], events,
    collect: async () => ({ invitesTotal: 0, activeCalls: 0, earlyCalls: 0, registrations: 0, aors: 0, transactions: 0, mediaSessions: 0, mediaPacketsTotal: 0, draining: false, sip: [], pbx: [] }),
  });
  await monitor.refresh();
  const s = await startAdminServer({ host, port: 0, ...(token ? { token } : {}), routes: [operationsRoutes({ monitor, events, node: () => ({ role: 'test' }) }), dashboardRoutes()] });
  closers.push(async () => {
    await s.close();
    await monitor.stop();
  });
  return { ...s, events };
}

function live(port: number, opts: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<{ ok: true; first: { type: string }; protocol: string } | { ok: false; status: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/live`, opts.protocols ?? [], { headers: opts.headers ?? {} });
    ws.once('message', (d) => {
      resolve({ ok: true, first: JSON.parse(String(d)) as { type: string }, protocol: ws.protocol });
      ws.close();
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ ok: false, status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('error', () => resolve({ ok: false, status: 0 }));
  });
}

describe('operations API access', () => {
  it('off loopback: the dashboard page and assets load without a token; /api and the live feed need it', async () => {
    const s = await server('0.0.0.0', TOKEN);
    expect((await s.app.inject({ url: '/' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/' })).body).toContain('/dashboard/uPlot.iife.min.js');
    const js = await s.app.inject({ url: '/dashboard/uPlot.iife.min.js' });
    expect(js.statusCode).toBe(200);
    expect(js.body).toContain('uPlot');
    expect((await s.app.inject({ url: '/dashboard/app.js' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/dashboard/nope.js' })).statusCode).toBe(404);
    expect((await s.app.inject({ url: '/dashboard/../api/cluster' })).statusCode).not.toBe(200);
    expect((await s.app.inject({ url: '/api/cluster' })).statusCode).toBe(401);
    expect((await s.app.inject({ url: '/api/cluster', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    expect(await live(s.port)).toEqual({ ok: false, status: 401 });
    expect(await live(s.port, { protocols: ['tandem-live', `bearer.${Buffer.from('wrong').toString('base64url')}`] })).toEqual({ ok: false, status: 401 });
    const viaHeader = await live(s.port, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(viaHeader.ok && viaHeader.first.type).toBe('hello');
    const viaProtocol = await live(s.port, { protocols: ['tandem-live', `bearer.${Buffer.from(TOKEN).toString('base64url')}`] });
    expect(viaProtocol.ok && viaProtocol.first.type).toBe('hello');
    expect(viaProtocol.ok && viaProtocol.protocol).toBe('tandem-live');
  });

  it('on loopback without a configured token: the live feed is a read and streams events', async () => {
    const s = await server('127.0.0.1');
    const got = await new Promise<Array<{ type: string; event?: { kind: string } }>>((resolve, reject) => {
      const msgs: Array<{ type: string; event?: { kind: string } }> = [];
      const ws = new WebSocket(`ws://127.0.0.1:${s.port}/api/live`);
      ws.on('message', (d) => {
        msgs.push(JSON.parse(String(d)) as { type: string });
        if (msgs.length === 1) s.events.add('pbx-down', 'sip:pbx', 'PBX sip:pbx is down');
        if (msgs.some((m) => m.type === 'event')) {
          ws.close();
          resolve(msgs);
        }
      });
      ws.once('error', reject);
    });
    expect(got[0]!.type).toBe('hello');
    expect(got.find((m) => m.type === 'event')!.event!.kind).toBe('pbx-down');
  });

  it('list parameters are bounded: an absurd limit gives at most 100', async () => {
    const s = await server('127.0.0.1');
    for (let i = 0; i < 300; i++) s.events.add('node-up', `n${i}`, 'x');
    const r = (await s.app.inject({ url: '/api/events?limit=999999999' })).json() as { events: unknown[] };
    expect(r.events).toHaveLength(100);
    expect(((await s.app.inject({ url: '/api/events?limit=-5' })).json() as { events: unknown[] }).events.length).toBeLessThanOrEqual(100);
    expect((await s.app.inject({ url: '/api/dialogs' })).statusCode).toBe(501);
    expect((await s.app.inject({ url: '/api/registrations?aor=sip:a@b' })).statusCode).toBe(501);
    expect((await s.app.inject({ url: '/api/media/sessions' })).statusCode).toBe(501);
  });
});
