import { describe, expect, it } from 'vitest';
import { AddressTakeover } from '../../../src/cluster/address-takeover.js';
import type { LeaseGrant, LeaseStore } from '../../../src/cluster/lease-store.js';

/** One lease table shared by the "nodes" of a test (stand-in for Redis in a unit test of one class). */
class TableLeases implements LeaseStore {
  held = new Map<string, LeaseGrant>();
  epoch = 0;
  async acquire(name: string, owner: string): Promise<LeaseGrant | undefined> {
    const cur = this.held.get(name);
    if (cur && cur.owner !== owner) return undefined;
    if (cur) return cur;
    const g = { owner, epoch: ++this.epoch };
    this.held.set(name, g);
    return g;
  }
  async renew(name: string, grant: LeaseGrant): Promise<boolean> {
    const cur = this.held.get(name);
    return cur?.owner === grant.owner && cur.epoch === grant.epoch;
  }
  async release(name: string, grant: LeaseGrant): Promise<void> {
    const cur = this.held.get(name);
    if (cur?.owner === grant.owner && cur.epoch === grant.epoch) this.held.delete(name);
  }
  async holder(name: string): Promise<LeaseGrant | undefined> {
    return this.held.get(name);
  }
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('AddressTakeover (lease)', () => {
  it('a holder whose lease passed to another node stops serving the address at once', async () => {
    const leases = new TableLeases();
    const bound: string[] = [];
    const unbound: string[] = [];
    const a = new AddressTakeover({ nodeId: 'a', vips: ['198.18.0.10'], mode: 'lease', leases, ttlMs: 100, pollMs: 20, bind: async (v) => void bound.push(v), unbind: async (v, why) => void unbound.push(`${v}:${why}`) });
    await a.start();
    expect(a.held()).toEqual([{ vip: '198.18.0.10', epoch: 1 }]);
    // Another node now holds the lease (as after a Redis failover that lost the key): a's next
    // renewal hears it and a closes the address; it does not take it back.
    leases.held.set('198.18.0.10', { owner: 'b', epoch: 7 });
    await until(() => unbound.length > 0);
    expect(unbound).toEqual(['198.18.0.10:lease lost']);
    expect(a.held()).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(bound).toHaveLength(1);
    await a.stop();
  });

  it('a node whose bind fails gives the lease back instead of holding an address it cannot serve', async () => {
    const leases = new TableLeases();
    const a = new AddressTakeover({ nodeId: 'a', vips: ['198.18.0.11'], mode: 'lease', leases, ttlMs: 100, pollMs: 20, bind: async () => { throw new Error('EADDRINUSE'); }, unbind: async () => undefined });
    await a.start();
    expect(a.held()).toEqual([]);
    expect(leases.held.has('198.18.0.11')).toBe(false);
    await a.stop();
  });
});

describe('AddressTakeover (keepalived)', () => {
  it('tells when a VIP arrives on an interface after start (not one already here), again after it left and came back', async () => {
    let local = new Set(['10.0.0.1', '10.0.0.9']);
    const arrived: string[] = [];
    const t = new AddressTakeover({
      nodeId: 'n1',
      vips: ['10.0.0.9', '10.0.0.10'],
      mode: 'keepalived',
      bind: async () => undefined,
      unbind: async () => undefined,
      onArrived: (vip) => arrived.push(vip),
      addressPollMs: 5,
      localAddresses: () => local,
    });
    await t.start();
    await new Promise((r) => setTimeout(r, 40));
    expect(arrived).toEqual([]);
    local = new Set(['10.0.0.1', '10.0.0.9', '10.0.0.10']);
    await until(() => arrived.length === 1);
    expect(arrived).toEqual(['10.0.0.10']);
    local = new Set(['10.0.0.1', '10.0.0.9']);
    await new Promise((r) => setTimeout(r, 40));
    local = new Set(['10.0.0.1', '10.0.0.9', '10.0.0.10']);
    await until(() => arrived.length === 2);
    await new Promise((r) => setTimeout(r, 40));
    expect(arrived).toEqual(['10.0.0.10', '10.0.0.10']);
    await t.stop();
    local = new Set(['10.0.0.1']);
    await new Promise((r) => setTimeout(r, 20));
    local = new Set(['10.0.0.1', '10.0.0.9', '10.0.0.10']);
    await new Promise((r) => setTimeout(r, 40));
    expect(arrived).toHaveLength(2);
  });
});
