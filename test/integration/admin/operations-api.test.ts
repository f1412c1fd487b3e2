/**
 * The operations API of a two-node cluster on a real Redis: the cluster view (nodes from the node
 * registry, who holds the VIP, Redis), registrations found by AOR from the other node, dialogs
 * paged with bounded pages, media sessions, cluster metrics, `tandem status`, and the events the
 * survivor reports when the VIP holder is SIGKILLed.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ClusterSnapshot } from '../../../src/admin/cluster-monitor.js';
import type { ClusterEvent } from '../../../src/admin/event-log.js';
import { randomRtpRange } from '../media/media-harness.js';
import { startTandem, tempFile, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { TestUa } from '../signalling/helpers/test-ua.js';
import { freePort, respCommand, SingleRedis, waitFor } from '../state/redis-harness.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const DOMAIN = 'ops.test';
const VIP = '127.0.0.12';
const TOKEN = 'ops-test-token-0123456789';
const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\n');

let redis: SingleRedis;
let sipPort: number;
const nodes = new Map<string, { t: TandemProcess; admin: string }>();
const uas: TestUa[] = [];

async function startNode(name: string, address: string, extra: string[]): Promise<void> {
  const t = await startTandem([
    '--node-id', name, '--sip', `udp:${address}:${sipPort}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url,
    '--domain', DOMAIN, '--users', users, '--admin', '127.0.0.1:0', '--admin-token', TOKEN, ...extra,
  ]);
  const m = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''));
  if (!m) throw new Error(`no admin address in ${t.stdout.join('')}`);
  nodes.set(name, { t, admin: m[1]! });
}

function admin(name: string): string {
  return nodes.get(name)!.admin;
}

async function get<T>(name: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(admin(name) + path, { headers });
  return { status: res.status, body: (await res.json()) as T };
}

function runStatus(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/tandem.mjs'), 'status', ...args], { cwd: ROOT, env: { ...process.env, TANDEM_FROM_SOURCE: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  redis = await SingleRedis.start();
  sipPort = await freePort();
  const mediaConfig = tempFile('ops2.yaml', `media:\n  rtpPorts: "${randomRtpRange(200)}"\n  workers: 1\n`);
  await startNode('ops1', '127.0.0.2', ['--no-media']);
  await startNode('ops2', '127.0.0.3', ['--config', mediaConfig]);
}, 60_000);

afterAll(async () => {
  for (const u of uas) u.close();
  for (const n of nodes.values()) await n.t.stop('SIGKILL');
  await redis?.stop();
});

describe('operations API of a two-node cluster', () => {
  it('GET /api/cluster: both nodes from the registry with their figures, the VIP holder, Redis connected', async () => {
    const snap = await waitFor('both nodes with figures', async () => {
      const { body } = await get<ClusterSnapshot>('ops1', '/api/cluster');
      return body.nodes.filter((n) => n.live && n.stats).length === 2 && body.vips[0]?.holder ? body : undefined;
    }, 10_000, 200);
    expect(snap.cluster).toBe('tandem');
    expect(snap.nodeId).toBe('ops1');
    expect(snap.nodes.map((n) => n.nodeId).sort()).toEqual(['ops1', 'ops2']);
    expect(snap.nodes.find((n) => n.self)?.nodeId).toBe('ops1');
    for (const n of snap.nodes) {
      expect(n.heartbeatAgeMs).toBeLessThan(3000);
      expect(n.meta?.['role']).toBe('signalling');
    }
    const holder = snap.vips[0]!.holder!;
    expect(['ops1', 'ops2']).toContain(holder);
    expect(snap.vips[0]!.epoch).toBeGreaterThan(0);
    expect(snap.nodes.find((n) => n.nodeId === holder)!.vips).toEqual([VIP]);
    expect(snap.redis).toMatchObject({ configured: true, mode: 'single', connected: true, subscriberConnected: true, role: 'master' });
    const node = await get<{ nodeId: string; stats: { held: string[] } }>('ops2', '/api/node');
    expect(node.status).toBe(200);
    expect(node.body.nodeId).toBe('ops2');
  });

  it('GET /api/registrations: an AOR registered through one node is found on the other, by AOR and by search', async () => {
    const alice = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.2', port: sipPort }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    uas.push(alice);
    expect((await alice.register()).status).toBe(200);
    const aor = `sip:alice@${DOMAIN}`;
    const byAor = await waitFor('binding seen by ops2', async () => {
      const { body } = await get<{ items: Array<{ aor: string; bindings: Array<{ contact: string; owner?: string }> }> }>('ops2', `/api/registrations?aor=${encodeURIComponent(aor)}`);
      return body.items.length ? body.items : undefined;
    }, 5000, 100);
    expect(byAor[0]!.bindings).toHaveLength(1);
    expect(byAor[0]!.bindings[0]!.owner).toBe('ops1');
    // Search: follow the cursor until the scan is complete.
    const found: string[] = [];
    let cursor: string | undefined = '0';
    for (let i = 0; cursor !== undefined && i < 1000; i++) {
      const { body }: { body: { items: Array<{ aor: string }>; next?: string } } = await get('ops2', `/api/registrations?q=alice&limit=10&cursor=${cursor}`);
      found.push(...body.items.map((x) => x.aor));
      cursor = body.next;
    }
    expect(found).toContain(aor);
    const none = await get<{ items: unknown[] }>('ops2', `/api/registrations?aor=${encodeURIComponent(`sip:nobody@${DOMAIN}`)}`);
    expect(none.body.items).toEqual([]);
  });

  it('GET /api/dialogs pages through every dialog of the cluster; no page is larger than asked or than 100', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 130; i++) {
      const id = `ops-call-${i}@test;f${i};t${i}`;
      ids.push(id);
      const rec = { id, callId: `ops-call-${i}@test`, fromTag: `f${i}`, toTag: `t${i}`, state: 'confirmed', createdAtMs: Date.now(), updatedAtMs: Date.now(), owner: 'ops1' };
      await respCommand(redis.port, ['HSET', `tandem:tandem:dlg:${id}`, 'rec', JSON.stringify(rec), '_v', 1, '_owner', 'ops1', '_exp', Date.now() + 60_000]);
      await respCommand(redis.port, ['PEXPIRE', `tandem:tandem:dlg:${id}`, 60_000]);
    }
    const seen = new Set<string>();
    let cursor: string | undefined = '0';
    let pages = 0;
    while (cursor !== undefined && pages < 1000) {
      const r: { status: number; body: { items: Array<{ id: string }>; next?: string; counts: unknown } } = await get('ops2', `/api/dialogs?limit=50&cursor=${cursor}`);
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(50);
      expect(r.body.counts).toBeDefined();
      for (const d of r.body.items) seen.add(d.id);
      cursor = r.body.next;
      pages++;
    }
    for (const id of ids) expect(seen.has(id)).toBe(true);
    const big = await get<{ items: unknown[] }>('ops2', '/api/dialogs?limit=1000000');
    expect(big.body.items.length).toBeLessThanOrEqual(100);
    const one = await get<{ items: unknown[] }>('ops2', '/api/dialogs?callId=unknown-call');
    expect(one.body.items).toEqual([]);
  });

  it('GET /api/media/sessions: paginated on a node with a relay, 501 without one', async () => {
    const m = await get<{ total: number; offset: number; items: unknown[] }>('ops2', '/api/media/sessions?offset=0&limit=10');
    expect(m.status).toBe(200);
    expect(m.body).toMatchObject({ total: 0, offset: 0, items: [] });
    expect((await get('ops1', '/api/media/sessions')).status).toBe(501);
  });

  it('reads on loopback need no token, the live feed is a read, writes need the token', async () => {
    expect((await get('ops1', '/api/events')).status).toBe(200);
    const hello = await new Promise<{ type: string; snapshot: ClusterSnapshot }>((resolveMsg, reject) => {
      const ws = new WebSocket(`${admin('ops1').replace('http', 'ws')}/api/live`);
      ws.once('message', (d) => {
        ws.close();
        resolveMsg(JSON.parse(String(d)) as { type: string; snapshot: ClusterSnapshot });
      });
      ws.once('error', reject);
    });
    expect(hello.type).toBe('hello');
    expect(hello.snapshot.nodes.length).toBe(2);
    expect((await fetch(`${admin('ops1')}/dispatcher/probe`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${admin('ops1')}/dispatcher/probe`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).not.toBe(401);
  });

  it('GET /metrics: cluster metrics (live nodes, VIP holder and epoch, heartbeat age, Redis latency)', async () => {
    const text = await (await fetch(`${admin('ops1')}/metrics`)).text();
    expect(text).toMatch(/^tandem_cluster_nodes_live 2$/m);
    expect(text).toMatch(new RegExp(`^tandem_cluster_vip_holder\\{vip="${VIP.replace(/\./g, '\\.')}",node="ops[12]"\\} 1$`, 'm'));
    expect(text).toMatch(/^tandem_cluster_vip_epoch\{vip="[^"]+"\} \d+$/m);
    expect(text).toMatch(/^tandem_cluster_node_heartbeat_age_seconds\{node="ops2"\} [\d.e-]+$/m);
    expect(text).toMatch(/^tandem_redis_latency_seconds [\d.e-]+$/m);
    expect(text).toMatch(/^tandem_redis_outbox_depth/m);
  });

  it('tandem status --json and the table', async () => {
    const j = await runStatus(['--admin', admin('ops2'), '--json']);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.stdout) as { cluster: ClusterSnapshot; events: ClusterEvent[] };
    expect(report.cluster.nodes.map((n) => n.nodeId).sort()).toEqual(['ops1', 'ops2']);
    expect(report.events.some((e) => e.kind === 'node-up')).toBe(true);
    const t = await runStatus(['--admin', admin('ops2')]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/cluster tandem: 2 live nodes/);
    expect(t.stdout).toMatch(/^ops1\s+up\s+signalling/m);
    expect(t.stdout).toMatch(/^ops2\*\s+up/m);
    expect(t.stdout).toContain(VIP);
    const bad = await runStatus(['--admin', 'http://127.0.0.1:1', '--timeout', '1000']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/tandem status: /);
  });

  it('SIGKILL of the VIP holder: the survivor reports the node down and the VIP moved to it', async () => {
    const { body } = await get<ClusterSnapshot>('ops1', '/api/cluster');
    const holder = body.vips[0]!.holder!;
    const survivor = holder === 'ops1' ? 'ops2' : 'ops1';
    await nodes.get(holder)!.t.stop('SIGKILL');
    const events = await waitFor('node-down and vip-moved', async () => {
      const r = await get<{ events: ClusterEvent[] }>(survivor, '/api/events?limit=100');
      const e = r.body.events;
      return e.some((x) => x.kind === 'node-down' && x.subject === holder) && e.some((x) => x.kind === 'vip-moved' && x.subject === VIP) ? e : undefined;
    }, 10_000, 200);
    expect(events.find((x) => x.kind === 'vip-moved')!.text).toContain(`from ${holder} to ${survivor}`);
    const snap = (await get<ClusterSnapshot>(survivor, '/api/cluster')).body;
    expect(snap.vips[0]!.holder).toBe(survivor);
    expect(snap.nodes.find((n) => n.nodeId === holder)?.live).toBe(false);
    const text = await (await fetch(`${admin(survivor)}/metrics`)).text();
    expect(text).toMatch(/^tandem_cluster_nodes_down_total 1$/m);
    expect(text).toMatch(/^tandem_cluster_vip_moves_total\{vip="[^"]+"\} 1$/m);
  }, 20_000);
});
