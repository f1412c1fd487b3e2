/**
 * The dashboard in a real browser: headless Chromium (Debian `chromium`) driven by playwright-core
 * opens `/` of one node of a running two-node cluster (Redis, lease VIP) with a media cluster node.
 * The page shows the three nodes by role, its charts move while INVITEs and REGISTERs arrive at
 * both signalling nodes and RTP crosses the media node, and when the VIP holder is SIGKILLed
 * the node turns DOWN and the timeline shows the node-down and VIP-moved events. Screenshots go to
 * docs/ (README shows the one taken after the kill).
 *
 * Chromium is installed with apt-get when missing (as root); the test is skipped, saying why, only
 * when that is impossible.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterSnapshot } from '../../src/admin/cluster-monitor.js';
import { NgClient } from '../../src/ng/ng-client.js';
import { setUpCall, spawnClusterNode } from '../integration/media/media-cluster-harness.js';
import { randomRtpRange, type SpawnedMediaNode } from '../integration/media/media-harness.js';
import { RtpCalls } from '../integration/media/rtp-calls.js';
import { startTandem, type TandemProcess } from '../integration/signalling/helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from '../integration/signalling/helpers/test-ua.js';
import type { SipRequest } from '../../src/sip/message/sip-message.js';
import { freePort, SingleRedis, waitFor } from '../integration/state/redis-harness.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(import.meta.dirname, '../..');
const DOCS = join(ROOT, 'docs');
const VIP = '127.0.0.14';
const MEDIA_VIP = '127.0.0.24';
const DOMAIN = 'dash.test';
const TOKEN = 'dashboard-test-token-0123';
/** Screenshots replace the ones under docs/ only when asked (they are tracked files). */
const SHOTS = process.env['TANDEM_UPDATE_SCREENSHOTS'] === '1' ? DOCS : mkdtempSync(join(tmpdir(), 'tandem-shots-'));

function ensureChromium(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (process.getuid?.() !== 0) return `${CHROMIUM} is missing and this user cannot apt-get install chromium`;
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch {
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 120_000 });
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch (err) {
      return `apt-get install chromium failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} still missing after apt-get install chromium`;
}

const skipReason = ensureChromium();
if (skipReason) console.warn(`dashboard browser test skipped: ${skipReason}`);

let redis: SingleRedis;
let sipPort: number;
const nodes = new Map<string, { t: TandemProcess; admin: string; address: string }>();
let context: BrowserContext | undefined;
let page: Page;
let userDataDir = '';
let pbx: dgram.Socket | undefined;
let media: SpawnedMediaNode | undefined;
let mediaNgPort = 0;
let rtp: RtpCalls | undefined;
let ng: NgClient | undefined;
const uas: TestUa[] = [];

/** The callee answers every INVITE with 200 + SDP and every BYE with 200. */
function autoAnswer(bob: TestUa): void {
  const loop = async (): Promise<void> => {
    for (;;) {
      let req: SipRequest;
      try {
        req = (await bob.waitFor((m) => m.isRequest() && ['INVITE', 'BYE'].includes((m as SipRequest).method), 60_000)) as SipRequest;
      } catch {
        return;
      }
      if (req.method === 'INVITE') bob.send(bob.response(req, 200, 'OK', { toTag: `b${req.callId.slice(0, 6)}`, body: SAMPLE_SDP(42000) }));
      else bob.send(bob.response(req, 200, 'OK'));
    }
  };
  void loop();
}

/** Established calls (INVITE, 200, ACK) through `address` to `callee`, registered there: active calls on that node. */
async function calls(address: string, callee: string, count: number): Promise<void> {
  const answerer = await TestUa.create({ transport: 'udp', proxy: { host: address, port: sipPort }, user: callee, password: 'unused', domain: DOMAIN });
  uas.push(answerer);
  expect((await answerer.register()).status).toBe(200);
  autoAnswer(answerer);
  const alice = await TestUa.create({ transport: 'udp', proxy: { host: address, port: sipPort }, user: 'alice', password: 'unused', domain: DOMAIN });
  uas.push(alice);
  for (let i = 0; i < count; i++) {
    const call = new TestCall(alice, callee);
    let res = await call.invite({ sdp: SAMPLE_SDP(40000 + 2 * i) });
    if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (st) => st >= 200);
    expect(res.status).toBe(200);
    call.learn(res);
    call.ack2xx();
  }
}

async function startNode(name: string, address: string): Promise<void> {
  const t = await startTandem([
    '--node-id', name, '--sip', `udp:${address}:${sipPort}`, '--vip', VIP, '--takeover', 'lease', '--redis', redis.url,
    '--domain', DOMAIN, '--no-auth', '--no-media', '--admin', '127.0.0.1:0', '--admin-token', TOKEN,
  ]);
  const m = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''));
  nodes.set(name, { t, admin: m![1]!, address });
}

/** REGISTERs of `count` users (no auth on these nodes). */
async function register(address: string, count: number, tag: string): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  for (let i = 0; i < count; i++) {
    const user = `${tag}${i}`;
    const msg =
      `REGISTER sip:${DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-reg-${user}-${Date.now()};rport\r\nMax-Forwards: 70\r\n` +
      `From: <sip:${user}@${DOMAIN}>;tag=r${i}\r\nTo: <sip:${user}@${DOMAIN}>\r\nCall-ID: reg-${user}-${Date.now()}\r\nCSeq: 1 REGISTER\r\n` +
      `Contact: <sip:${user}@127.0.0.1:${port}>\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n`;
    s.send(msg, sipPort, address);
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 200));
  s.close();
}

/** A back-end PBX that answers OPTIONS probes with 200. */
async function fakePbx(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('message', (buf, rinfo) => {
    const text = buf.toString('latin1');
    if (!text.startsWith('OPTIONS ')) return;
    const keep = text.split('\r\n').filter((l) => /^(via|from|to|call-id|cseq):/i.test(l));
    s.send(`SIP/2.0 200 OK\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s;
}

/** INVITEs for an unknown user (answered 404): enough to move calls/s. */
async function sendInvites(address: string, count: number, tag: string): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  for (let i = 0; i < count; i++) {
    const callId = `dash-${tag}-${i}-${Date.now()}`;
    const msg =
      `INVITE sip:nobody@${DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${callId};rport\r\nMax-Forwards: 70\r\n` +
      `From: <sip:load@${DOMAIN}>;tag=${i}\r\nTo: <sip:nobody@${DOMAIN}>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:load@127.0.0.1:${port}>\r\nContent-Length: 0\r\n\r\n`;
    s.send(msg, sipPort, address);
    await new Promise((r) => setTimeout(r, 25));
  }
  s.close();
}

describe.skipIf(skipReason !== undefined)('dashboard in headless Chromium', () => {
  beforeAll(async () => {
    redis = await SingleRedis.start();
    sipPort = await freePort();
    await startNode('east', '127.0.0.2');
    await startNode('west', '127.0.0.3');
    mediaNgPort = await freePort();
    media = await spawnClusterNode({ name: 'media-1', vip: MEDIA_VIP, ngPort: mediaNgPort, redisUrl: redis.url, rtpPorts: randomRtpRange(100) });
    userDataDir = mkdtempSync(join(tmpdir(), 'tandem-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      viewport: { width: 1400, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    for (const u of uas) u.close();
    for (const n of nodes.values()) await n.t.stop('SIGKILL');
    rtp?.close();
    ng?.close();
    await media?.stop();
    pbx?.close();
    await redis?.stop();
  });

  it('shows both signalling nodes and the media node, charts moving under SIP and RTP load, the node-down and VIP-moved events when the VIP holder is SIGKILLed, and a PBX marked down', async () => {
    const snap = await waitFor('a VIP holder and two nodes', async () => {
      const s = (await (await fetch(`${nodes.get('east')!.admin}/api/cluster`)).json()) as ClusterSnapshot;
      return s.vips[0]?.holder && ['east', 'west'].every((id) => s.nodes.some((n) => n.nodeId === id && n.live)) ? s : undefined;
    }, 20_000, 200);
    const holder = snap.vips[0]!.holder!;
    const survivor = holder === 'east' ? 'west' : 'east';
    // A back-end PBX in the dispatcher of both nodes (the table lists it with its state and calls).
    pbx = await fakePbx();
    const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    for (const n of nodes.values()) {
      expect((await fetch(`${n.admin}/dispatcher/sets/pbx`, { method: 'PUT', headers: auth, body: JSON.stringify({ algorithm: 'round-robin' }) })).status).toBe(200);
      const add = await fetch(`${n.admin}/dispatcher/sets/pbx/destinations`, { method: 'POST', headers: auth, body: JSON.stringify({ uri: `sip:127.0.0.1:${pbx.address().port}` }) });
      expect(add.status).toBe(201);
    }
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(nodes.get(survivor)!.admin) && !r.url().startsWith(nodes.get(survivor)!.admin.replace('http', 'ws'))) external.push(r.url());
    });
    await page.goto(`${nodes.get(survivor)!.admin}/`);
    await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 10_000 });
    for (const id of ['east', 'west']) await page.locator(`#nodes .node[data-node="${id}"][data-live="true"]`).waitFor({ timeout: 10_000 });
    await expect(page.locator(`#nodes .node[data-node="${holder}"] .vip`).textContent()).resolves.toBe(VIP);
    expect(await page.locator('.uplot').count()).toBe(4);

    await page.locator(`#nodes .node[data-node="media-1"][data-live="true"]`).waitFor({ timeout: 10_000 });
    // RTP through the media node: three calls, both ways, every 20 ms.
    ng = new NgClient({ host: MEDIA_VIP, port: mediaNgPort, timeoutMs: 2000 });
    rtp = new RtpCalls(MEDIA_VIP);
    for (let i = 0; i < 3; i++) await setUpCall(ng, rtp, i, `dash-media-${i}`);
    rtp.start(20);
    // Calls that stay up, through each node to a callee registered there (the test UA answers
    // through its own proxy, not along the Via).
    await calls('127.0.0.2', 'bob', 4);
    await calls('127.0.0.3', 'carol', 6);
    // Load on both nodes; the charts' data must show calls/s above zero for each.
    const ticks0 = await page.evaluate(() => (window as unknown as { __tandem: { ticks: number } }).__tandem.ticks);
    await Promise.all([sendInvites('127.0.0.2', 100, 'e'), sendInvites('127.0.0.3', 100, 'w'), register('127.0.0.2', 40, 'e'), register('127.0.0.3', 25, 'w')]);
    await page.waitForFunction(
      () => {
        const s = (window as unknown as { __tandem: { series: Record<string, Array<{ callsPerSec: number }>> } }).__tandem.series;
        return ['east', 'west'].every((id) => (s[id] ?? []).some((p) => p.callsPerSec > 0));
      },
      undefined,
      { timeout: 10_000 },
    );
    const ticks1 = await page.evaluate(() => (window as unknown as { __tandem: { ticks: number } }).__tandem.ticks);
    expect(ticks1).toBeGreaterThan(ticks0);
    // uPlot draws the series it was given: one per node plus x.
    const seriesCount = await page.evaluate(() => (window as unknown as { __tandem: { charts: Record<string, { series: unknown[] }> } }).__tandem.charts['cps']!.series.length);
    expect(seriesCount).toBe(4);
    await page.locator(`#pbx tr[data-pbx="sip:127.0.0.1:${pbx.address().port}"]`).waitFor({ timeout: 5000 });
    await page.waitForFunction(
      () => {
        const s = (window as unknown as { __tandem: { series: Record<string, Array<{ registrations: number }>> } }).__tandem.series;
        return ['east', 'west'].every((id) => (s[id] ?? []).some((p) => p.registrations > 0));
      },
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForFunction(
      () => ((window as unknown as { __tandem: { series: Record<string, Array<{ mediaPacketsPerSec: number }>> } }).__tandem.series['media-1'] ?? []).some((p) => p.mediaPacketsPerSec > 100),
      undefined,
      { timeout: 10_000 },
    );
    await expect(page.locator('#nodes .node[data-node="media-1"]').textContent()).resolves.toContain('media');
    await page.waitForFunction(
      () => {
        const s = (window as unknown as { __tandem: { series: Record<string, Array<{ activeCalls: number }>> } }).__tandem.series;
        return (s['east'] ?? []).some((p) => p.activeCalls === 4) && (s['west'] ?? []).some((p) => p.activeCalls === 6);
      },
      undefined,
      { timeout: 10_000 },
    );
    await page.screenshot({ path: join(SHOTS, 'dashboard-live.png') });

    await nodes.get(holder)!.t.stop('SIGKILL');
    await page.locator(`#events li[data-kind="node-down"][data-subject="${holder}"]`).waitFor({ timeout: 15_000 });
    await page.locator(`#events li[data-kind="vip-moved"][data-subject="${VIP}"]`).waitFor({ timeout: 15_000 });
    await page.locator(`#nodes .node.down[data-node="${holder}"]`).waitFor({ timeout: 10_000 });
    await expect(page.locator(`#nodes .node[data-node="${survivor}"] .vip`).textContent()).resolves.toBe(VIP);
    expect(await page.locator('#events li[data-kind="vip-moved"]').first().textContent()).toContain(`from ${holder} to ${survivor}`);
    // An operator marks the PBX down on the survivor: the table and the timeline show it.
    const pbxUri = `sip:127.0.0.1:${pbx.address().port}`;
    const down = await fetch(`${nodes.get(survivor)!.admin}/dispatcher/sets/pbx/destinations/${encodeURIComponent(pbxUri)}/down`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(down.status).toBe(200);
    await page.locator(`#events li[data-kind="pbx-down"][data-subject="${pbxUri}"]`).waitFor({ timeout: 10_000 });
    await page.locator(`#pbx tr[data-pbx="${pbxUri}"] td.down`).waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(SHOTS, 'dashboard.png') });
    console.log(`dashboard screenshots in ${SHOTS}`);
    expect(errors).toEqual([]);
    // Offline: every request the page made went to the node itself (uPlot served from node_modules).
    expect(external).toEqual([]);
  }, 60_000);
});
