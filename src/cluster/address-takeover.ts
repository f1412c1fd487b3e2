/**
 * Which virtual addresses (VIPs) this node serves, and when.
 *
 * - `keepalived`: an outside manager moves the address. The node binds the VIP's sockets at start
 *   (with `net.ipv4.ip_nonlocal_bind=1` the sockets exist before the address arrives), so
 *   takeover costs only the address move: packets are served as soon as they arrive. The node
 *   watches its interfaces for the address (every `addressPollMs`) only to learn that it arrived
 *   (`onArrived`): a peer died or gave it up, and callers may retransmit the peer's requests here.
 * - `lease`: the nodes elect the holder of each VIP through a lease (Redis). The holder renews it
 *   every `ttlMs / 4`; the others try to take it every `pollMs`, so after the holder dies the VIP
 *   moves within `ttlMs + pollMs` (defaults: 600 + 100 ms). A holder that hears its lease is gone
 *   (another node holds it) unbinds at once; a holder that cannot reach Redis keeps serving, since
 *   nobody else can take the lease without Redis either, and on one host a second bind of the
 *   same address fails anyway (a node whose bind fails gives the lease back).
 *
 * The manager only decides; binding is the `bind`/`unbind` callbacks' job (the signalling node
 * opens its listening points on the VIP).
 */
import { networkInterfaces } from 'node:os';
import { createLogger, rateLimitedLog } from '../util/logger.js';
import { counter, gauge } from '../util/metrics.js';
import type { LeaseGrant, LeaseStore } from './lease-store.js';

const log = createLogger('cluster');
const takeovers = counter('tandem_cluster_vip_acquired_total', 'Virtual addresses this node started serving, by address', ['vip']);
const losses = counter('tandem_cluster_vip_lost_total', 'Virtual addresses this node stopped serving, by address and reason', ['vip', 'reason']);
const arrivals = counter('tandem_cluster_vip_arrived_total', 'Virtual addresses that appeared on this node\'s interfaces after it started (keepalived mode), by address', ['vip']);
const leaseErrors = counter('tandem_cluster_lease_errors_total', 'Lease operations that failed (Redis unreachable or slow)');

export type TakeoverMode = 'lease' | 'keepalived';

export interface AddressTakeoverOptions {
  nodeId: string;
  vips: string[];
  mode: TakeoverMode;
  /** Required in lease mode. */
  leases?: LeaseStore;
  /** Lease lifetime: a dead holder's VIP is free after this. @default 600 */
  ttlMs?: number;
  /** How often a node that does not hold a VIP tries to take it. @default 100 */
  pollMs?: number;
  /** Opens the VIP's sockets. A rejection (address in use) gives the lease back. */
  bind: (vip: string, epoch: number) => Promise<void>;
  /** Closes them. */
  unbind: (vip: string, reason: string) => Promise<void>;
  /** Called after each change, for the admin API and events. */
  onChange?: (vip: string, held: boolean, epoch: number | undefined) => void;
  /**
   * keepalived mode: the address appeared on a local interface after start (this node became the
   * VRRP master). Not called for an address already here at start.
   */
  onArrived?: (vip: string) => void;
  /** keepalived mode: how often the interfaces are read for `onArrived`. @default 50 */
  addressPollMs?: number;
  /** The addresses on this host's interfaces (a test replaces it). @default os.networkInterfaces */
  localAddresses?: () => Set<string>;
}

function interfaceAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

interface VipState {
  vip: string;
  grant: LeaseGrant | undefined;
  busy: boolean;
  lastRenewOkMs: number;
}

export class AddressTakeover {
  readonly #o: Required<Omit<AddressTakeoverOptions, 'leases' | 'onChange' | 'onArrived'>> & Pick<AddressTakeoverOptions, 'leases' | 'onChange' | 'onArrived'>;
  readonly #state = new Map<string, VipState>();
  #timer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: AddressTakeoverOptions) {
    if (opts.mode === 'lease' && !opts.leases) throw new Error('lease takeover needs a lease store (Redis)');
    this.#o = { ...opts, ttlMs: opts.ttlMs ?? 600, pollMs: opts.pollMs ?? 100, addressPollMs: opts.addressPollMs ?? 50, localAddresses: opts.localAddresses ?? interfaceAddresses };
    for (const vip of opts.vips) this.#state.set(vip, { vip, grant: undefined, busy: false, lastRenewOkMs: 0 });
    const self = this;
    gauge('tandem_cluster_vip_held', 'Virtual addresses held by this node (1) or not (0)', ['vip'], function () {
      for (const s of self.#state.values()) this.set({ vip: s.vip }, s.grant ? 1 : 0);
    });
  }

  /** VIPs held now, with the epoch of their lease (0 in keepalived mode). */
  held(): Array<{ vip: string; epoch: number }> {
    return [...this.#state.values()].filter((s) => s.grant).map((s) => ({ vip: s.vip, epoch: s.grant!.epoch }));
  }

  async start(): Promise<void> {
    if (this.#o.mode === 'keepalived') {
      for (const s of this.#state.values()) {
        await this.#o.bind(s.vip, 0);
        s.grant = { owner: this.#o.nodeId, epoch: 0 };
        this.#o.onChange?.(s.vip, true, 0);
      }
      if (this.#o.onArrived) this.#watchAddresses(this.#o.onArrived);
      return;
    }
    await this.#tick();
    this.#timer = setInterval(() => void this.#tick(), this.#o.pollMs);
    this.#renewTimer = setInterval(() => void this.#renewAll(), Math.max(20, Math.floor(this.#o.ttlMs / 4)));
    this.#timer.unref();
    this.#renewTimer.unref();
  }

  /** keepalived mode: calls `arrived` for each VIP that appears on an interface (absent before). */
  #watchAddresses(arrived: (vip: string) => void): void {
    const read = (): Set<string> => {
      try {
        return this.#o.localAddresses();
      } catch {
        return new Set();
      }
    };
    const first = read();
    const here = new Map(this.#o.vips.map((v) => [v, first.has(v)]));
    this.#timer = setInterval(() => {
      const now = read();
      for (const [vip, was] of here) {
        const is = now.has(vip);
        if (is === was) continue;
        here.set(vip, is);
        if (!is) continue;
        arrivals.inc({ vip });
        log.info({ vip }, 'virtual address arrived on this host (keepalived)');
        try {
          arrived(vip);
        } catch (err) {
          rateLimitedLog('vip-arrived', (n) => log.warn({ vip, err, suppressed: n }, 'handling an arrived address failed'));
        }
      }
    }, this.#o.addressPollMs);
    this.#timer.unref();
  }

  /** Releases every lease (clean shutdown: the peer takes over without waiting for the TTL). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearInterval(this.#renewTimer);
    for (const s of this.#state.values()) {
      const g = s.grant;
      if (!g) continue;
      s.grant = undefined;
      await this.#o.unbind(s.vip, 'shutdown').catch(() => undefined);
      if (this.#o.mode === 'lease') await this.#o.leases!.release(s.vip, g).catch(() => undefined);
    }
  }

  /** Tries to take every VIP not held. */
  async #tick(): Promise<void> {
    for (const s of this.#state.values()) {
      if (s.grant || s.busy || this.#stopped) continue;
      s.busy = true;
      try {
        const g = await this.#o.leases!.acquire(s.vip, this.#o.nodeId, this.#o.ttlMs);
        if (!g || this.#stopped) continue;
        try {
          await this.#o.bind(s.vip, g.epoch);
        } catch (err) {
          rateLimitedLog(`vip-bind-${s.vip}`, (n) => log.warn({ vip: s.vip, err, suppressed: n }, 'took the lease but could not bind the address; giving it back'));
          await this.#o.leases!.release(s.vip, g).catch(() => undefined);
          continue;
        }
        s.grant = g;
        s.lastRenewOkMs = Date.now();
        takeovers.inc({ vip: s.vip });
        log.info({ vip: s.vip, epoch: g.epoch }, 'serving virtual address');
        this.#o.onChange?.(s.vip, true, g.epoch);
      } catch {
        leaseErrors.inc();
      } finally {
        s.busy = false;
      }
    }
  }

  async #renewAll(): Promise<void> {
    for (const s of this.#state.values()) {
      const g = s.grant;
      if (!g || this.#stopped) continue;
      let ours: boolean;
      try {
        ours = await this.#o.leases!.renew(s.vip, g, this.#o.ttlMs);
        s.lastRenewOkMs = Date.now();
      } catch {
        // Redis unreachable: keep serving (see the class comment).
        leaseErrors.inc();
        continue;
      }
      if (ours || s.grant !== g) continue;
      s.grant = undefined;
      losses.inc({ vip: s.vip, reason: 'taken' });
      log.warn({ vip: s.vip, epoch: g.epoch }, 'lease taken by another node: no longer serving the virtual address');
      await this.#o.unbind(s.vip, 'lease lost').catch(() => undefined);
      this.#o.onChange?.(s.vip, false, undefined);
    }
  }
}
