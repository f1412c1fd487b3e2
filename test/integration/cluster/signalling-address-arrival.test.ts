/**
 * A signalling node in keepalived mode learns that its VIP arrived (keepalived made it master:
 * the peer died or gave the address up), as a node in lease mode learns it from the lease's
 * epoch: from then on, for 64*T1, a retransmitted INVITE of the dead peer goes out on the peer's
 * branches. The address is added to `lo` here as keepalived adds it (root only; skipped
 * otherwise): the node counts its arrival once, and nothing before.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { startTandem, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { waitFor } from '../state/redis-harness.js';

const root = process.getuid?.() === 0;
const VIP = `127.0.${100 + Math.floor(Math.random() * 100)}.${2 + Math.floor(Math.random() * 250)}`;
let t: TandemProcess | undefined;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'ignore'] });

afterAll(async () => {
  await t?.stop('SIGKILL');
  if (root) {
    try {
      ip('addr', 'del', `${VIP}/32`, 'dev', 'lo');
    } catch {
      /* not added */
    }
  }
});

describe.skipIf(!root)('keepalived mode: the VIP arriving on the host', () => {
  it('is counted once when it appears, and not before', async () => {
    t = await startTandem(['--node-id', 'ka1', '--sip', 'udp:127.0.0.1:0', '--vip', VIP, '--takeover', 'keepalived', '--no-auth', '--admin', '127.0.0.1:0']);
    const adminUrl = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(t.stdout.join(''))![1]!;
    const arrivedCount = async () => Number(new RegExp(`tandem_cluster_vip_arrived_total\\{vip="${VIP.replace(/\./g, '\\.')}"\\} (\\d+)`).exec(await (await fetch(`${adminUrl}/metrics`)).text())?.[1] ?? 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(await arrivedCount()).toBe(0);
    ip('addr', 'add', `${VIP}/32`, 'dev', 'lo');
    await waitFor('the arrival counted', async () => ((await arrivedCount()) === 1 ? true : undefined), 3000, 20);
    await new Promise((r) => setTimeout(r, 200));
    expect(await arrivedCount()).toBe(1);
  });
});
