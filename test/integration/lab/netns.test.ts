/**
 * The lab's namespace layer with real VRRP (root and keepalived only; skipped otherwise): two
 * nodes run keepalived (VRRPv3, 20 ms adverts, unicast) and a UDP echo bound to the VIP in
 * advance (ip_nonlocal_bind); the host sends to the VIP every 5 ms. The master is switched off
 * (link down and every process in its namespace killed): the VIP moves and the other node
 * answers. Teardown leaves no namespace and no link, also when run twice.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keepalivedConfig } from '../../../src/cluster/keepalived-config.js';
import { notifyCommand, readVrrpEvents, startKeepalived } from '../../../src/lab/netns/keepalived.js';
import {
  NetnsError,
  addressHolderOf,
  createNetwork,
  execInNamespace,
  labPrefix,
  listNamespaces,
  readNetnsState,
  setNodeLink,
  spawnInNamespace,
  teardownNetwork,
} from '../../../src/lab/netns/netns.js';

const canRun = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0 && spawnSync('keepalived', ['--version']).status === 0;
const net = `198.19.${process.pid % 200}`; // the benchmarking range 198.18.0.0/15, never a real network
const HOST = `${net}.1`;
const VIP = `${net}.100`;
const PORT = 7777;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A UDP echo bound to the VIP (before the address is there), answering with the node's name. */
const ECHO = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(process.argv[1]+' '+m,r.port,r.address));s.bind(${PORT},'${VIP}',()=>console.log('bound'))`;

let dir = '';
const children: ChildProcess[] = [];

describe.skipIf(!canRun)('lab network namespaces with keepalived', () => {
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    if (dir) {
      teardownNetwork(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes the network, moves the VIP by VRRP when the master is switched off, tears down to nothing', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tandem-netns-'));
    const t0 = performance.now();
    const state = createNetwork(dir, { hostAddress: HOST, nodes: [{ name: 'n1', address: `${net}.11` }, { name: 'n2', address: `${net}.12` }] });
    const setUpMs = performance.now() - t0;
    const prefix = labPrefix(dir);
    expect(listNamespaces().filter((n) => n.startsWith(prefix)).sort()).toEqual([`${prefix}-bridge`, `${prefix}-n1`, `${prefix}-n2`].sort());
    expect(readNetnsState(dir)?.hostLink).toBe(state.hostLink);
    expect(execInNamespace(dir, 'n1', 'sysctl', ['-n', 'net.ipv4.ip_nonlocal_bind']).trim()).toBe('1');
    // A second lab in the same dir is refused with the way out named.
    expect(() => createNetwork(dir, { hostAddress: `${net}.2`, nodes: [] })).toThrow(/tandem lab down --dir/);
    try {
      createNetwork(dir, { hostAddress: `${net}.2`, nodes: [] });
    } catch (err) {
      expect((err as NetnsError).code).toBe('NETNS_ERR_LEFTOVER');
    }

    for (const [n, other, priority] of [['n1', 'n2', 250], ['n2', 'n1', 240]] as const) {
      const echo = spawnInNamespace(dir, n, process.execPath, ['-e', ECHO, n], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(echo);
      await new Promise<void>((res) => echo.stdout!.once('data', () => res()));
      const text = keepalivedConfig({
        nodeId: n, role: 'test', vips: [VIP], dev: 'eth0', sourceAddress: state.nodes[n]!.address, peers: [state.nodes[other]!.address],
        priority, advertIntervalMs: 20, notify: notifyCommand(dir, n),
      });
      const ka = startKeepalived(dir, n, text);
      children.push(ka);
      ka.stdout!.resume();
      ka.stderr!.resume();
    }
    await waitFor('n1 to hold the VIP', () => addressHolderOf(dir, VIP) === 'n1' || undefined, 10_000);

    // The host sends to the VIP every 5 ms and notes who answers when.
    const sock = dgram.createSocket('udp4');
    const answers: Array<{ t: number; from: string }> = [];
    sock.on('message', (m) => answers.push({ t: performance.now(), from: m.toString().split(' ')[0]! }));
    await new Promise<void>((res) => sock.bind(0, HOST, () => res()));
    let seq = 0;
    const sender = setInterval(() => sock.send(String(seq++), PORT, VIP), 5);
    try {
      await waitFor('answers from n1', () => answers.filter((a) => a.from === 'n1').length > 20 || undefined, 5000);
      // Switched off: the link goes and every process in its namespace dies at once.
      const offAt = performance.now();
      setNodeLink(dir, 'n1', false);
      for (const p of spawnSync('ip', ['netns', 'pids', state.nodes['n1']!.namespace], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          // gone since it was listed (a keepalived child exits with its parent): ESRCH
        }
      }
      await waitFor('answers from n2', () => answers.some((a) => a.from === 'n2') || undefined, 5000);
      await sleep(300);
      const first = answers.find((a) => a.from === 'n2')!;
      const lastN1 = [...answers].reverse().find((a) => a.from === 'n1')!;
      console.log(`netns: set-up ${setUpMs.toFixed(0)} ms; VIP answered by n2 ${(first.t - offAt).toFixed(0)} ms after n1 was switched off (gap ${(first.t - lastN1.t).toFixed(0)} ms, 20 ms adverts)`);
      expect(addressHolderOf(dir, VIP, ['n2'])).toBe('n2');
      expect(answers.slice(-10).every((a) => a.from === 'n2')).toBe(true);
      // notify ran: n1 became MASTER, then n2.
      const events = readVrrpEvents(dir).filter((e) => e.state === 'MASTER');
      expect(events.map((e) => e.node)).toEqual(['n1', 'n2']);
      // The link comes back: n1 (keepalived dead) gets no address back.
      setNodeLink(dir, 'n1', true);
    } finally {
      clearInterval(sender);
      sock.close();
    }

    const t1 = performance.now();
    const removed = teardownNetwork(dir);
    const teardownMs = performance.now() - t1;
    console.log(`netns: teardown ${teardownMs.toFixed(0)} ms: ${removed.join('; ')}`);
    expect(removed.some((r) => r.startsWith(`link ${state.hostLink}`))).toBe(true);
    expect(listNamespaces().filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout).not.toContain(state.hostLink!);
    expect(spawnSync('ip', ['-o', 'addr', 'show'], { encoding: 'utf8' }).stdout).not.toContain(`${HOST}/`);
    expect(existsSync(join(dir, 'netns'))).toBe(false);
    expect(teardownNetwork(dir)).toEqual([]);
  }, 60_000);

  it('active/active: the node that starts first does not keep the other\'s VIP (standby grace)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'tandem-netns-aa-'));
    const mine: ChildProcess[] = [];
    try {
      const s = createNetwork(d, { hostAddress: `${net}.4`, nodes: [{ name: 'a', address: `${net}.31` }, { name: 'b', address: `${net}.32` }] });
      const vips = { a: `${net}.110`, b: `${net}.111` };
      const start = (n: 'a' | 'b'): void => {
        const other = n === 'a' ? 'b' : 'a';
        const ka = startKeepalived(d, n, keepalivedConfig({
          nodeId: n, role: 'media', vips: [vips[n]], standbyVips: [vips[other]], dev: 'eth0', sourceAddress: s.nodes[n]!.address, peers: [s.nodes[other]!.address], standbyGraceSec: 2,
        }));
        ka.stdout!.resume();
        ka.stderr!.resume();
        mine.push(ka);
      };
      start('a');
      await sleep(1000);
      start('b');
      await waitFor('each VIP on its owner', () => (addressHolderOf(d, vips.a) === 'a' && addressHolderOf(d, vips.b) === 'b') || undefined, 10_000);
      // And it stays so after the grace of both.
      await sleep(2500);
      expect([addressHolderOf(d, vips.a), addressHolderOf(d, vips.b)]).toEqual(['a', 'b']);
    } finally {
      for (const c of mine) c.kill('SIGKILL');
      teardownNetwork(d);
      rmSync(d, { recursive: true, force: true });
    }
  }, 30_000);

  it('teardown after a crash halfway: namespaces found by the lab prefix without a state file', () => {
    const d = mkdtempSync(join(tmpdir(), 'tandem-netns-crash-'));
    try {
      createNetwork(d, { hostAddress: `${net}.3`, nodes: [{ name: 'a', address: `${net}.21` }] });
      rmSync(join(d, 'netns'), { recursive: true, force: true });
      const removed = teardownNetwork(d);
      expect(removed.length).toBe(3);
      expect(listNamespaces().filter((n) => n.startsWith(labPrefix(d)))).toEqual([]);
    } finally {
      teardownNetwork(d);
      rmSync(d, { recursive: true, force: true });
    }
  });
});
