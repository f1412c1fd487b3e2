/**
 * What `tandem start` adds to a node when it is part of a cluster: shared state in Redis, the
 * cluster secret, the node's identity and the takeover of virtual addresses.
 */
import { hostname } from 'node:os';
import { AddressTakeover } from '../cluster/address-takeover.js';
import { sharedClusterSecret } from '../cluster/cluster-secret.js';
import type { ClusterConfig, StateConfig } from '../cluster/config-schema.js';
import { RedisLeaseStore } from '../cluster/redis-lease-store.js';
import type { SignallingNode } from '../signalling/signalling-node.js';
import type { ListeningPoint, ListenSpec } from '../sip/transport/types.js';
import { RedisDialogStore } from '../state/redis/redis-dialog-store.js';
import { RedisLocationStore } from '../state/redis/redis-location-store.js';
import { RedisState } from '../state/redis/redis-state.js';
import { RedisNonceCountStore } from '../state/redis/redis-nonce-count-store.js';
import { RedisAuthFailureStore } from '../state/redis/redis-auth-failure-store.js';
import { RedisNodeRegistry } from '../state/redis/redis-node-registry.js';
import { RedisAccountingStore } from '../state/redis/redis-accounting-store.js';
import { MemoryAccountingStore } from '../state/memory/memory-accounting-store.js';
import type { AccountingStore, AuthFailureStore, DialogStore, LocationStore, NodeRegistry, NonceCountStore } from '../state/store.js';
import { logger } from '../util/logger.js';
import { redactRedisUrl } from '../state/redis/redis-url.js';

export interface ClusterRuntime {
  nodeId: string;
  state: RedisState | undefined;
  locationStore: LocationStore | undefined;
  dialogStore: DialogStore | undefined;
  nonceCounts: NonceCountStore | undefined;
  /** Call records: exactly once across the cluster with Redis, else this node's memory. */
  accountingStore: AccountingStore;
  authFailures: AuthFailureStore | undefined;
  /** Live nodes of the cluster (heartbeats in Redis). */
  registry: NodeRegistry | undefined;
  /** The cluster secret read from (or written to) Redis when none is configured. */
  secret: string | undefined;
  takeover: AddressTakeover | undefined;
  /** Starts serving VIPs once the node's own listening points are bound. */
  startTakeover(node: SignallingNode, own: ListeningPoint[], tls: ListenSpec['tls']): Promise<void>;
  close(): Promise<void>;
}

/** Connects to Redis (when configured) and prepares the stores and the secret. */
export async function startClusterRuntime(
  cluster: ClusterConfig,
  state: StateConfig,
  configuredSecret: string | undefined,
  auth: { maxFailures: number; failureWindowSec: number; blockSec: number },
  meta: Record<string, string> = {},
): Promise<ClusterRuntime> {
  const nodeId = cluster.nodeId ?? `${hostname()}-${process.pid}`;
  if (cluster.vips.length && cluster.takeover === 'lease' && !state.redis) throw new Error('--takeover lease needs shared state: give --redis URL (state.redis)');
  let redis: RedisState | undefined;
  let secret: string | undefined;
  let secretTimer: NodeJS.Timeout | undefined;
  if (state.redis) {
    redis = new RedisState({ url: state.redis, nodeId, cluster: cluster.name });
    logger.info({ redis: redactRedisUrl(state.redis), cluster: cluster.name, nodeId }, 'shared state in Redis');
    if (!configuredSecret) {
      secret = await sharedClusterSecret(redis.commands, cluster.name);
      // Written back now and then: a Redis that restarted empty gets the secret every node uses.
      const key = `tandem:${cluster.name}:secret`;
      const s = secret;
      const r = redis;
      secretTimer = setInterval(() => void r.commands.call('SET', key, s, 'NX').catch(() => undefined), 10_000);
      secretTimer.unref();
    }
  }
  const locationStore = redis ? new RedisLocationStore({ state: redis }) : undefined;
  const dialogStore = redis ? new RedisDialogStore({ state: redis }) : undefined;
  const nonceCounts = redis ? new RedisNonceCountStore({ state: redis }) : undefined;
  const accountingStore: AccountingStore = redis ? new RedisAccountingStore({ state: redis }) : new MemoryAccountingStore();
  const authFailures = redis ? new RedisAuthFailureStore({ state: redis, maxFailures: auth.maxFailures, windowSec: auth.failureWindowSec, blockSec: auth.blockSec }) : undefined;
  const registry = redis ? new RedisNodeRegistry({ state: redis, meta: { ...meta, vips: cluster.vips.join(','), takeover: cluster.takeover } }) : undefined;
  registry?.start();
  let takeover: AddressTakeover | undefined;
  const vipLps = new Map<string, ListeningPoint[]>();

  return {
    nodeId,
    state: redis,
    locationStore,
    dialogStore,
    nonceCounts,
    accountingStore,
    authFailures,
    registry,
    secret,
    get takeover() {
      return takeover;
    },
    async startTakeover(node, own, tls) {
      if (cluster.vips.length === 0) return;
      takeover = new AddressTakeover({
        nodeId,
        vips: [...cluster.vips],
        mode: cluster.takeover,
        ...(redis ? { leases: new RedisLeaseStore(redis.commands, cluster.name) } : {}),
        ttlMs: cluster.leaseTtlMs,
        pollMs: cluster.leasePollMs,
        // keepalived mode: the address arrived (a peer died or gave it up), so callers may
        // retransmit the peer's INVITEs here (lease mode learns it from the epoch, below).
        onArrived: () => node.notePeerTakeover(),
        // The VIP is served on every transport and port the node listens on, and what the node
        // sends leaves from it while it holds it.
        bind: async (vip, epoch) => {
          const lps: ListeningPoint[] = [];
          try {
            for (const lp of own) {
              lps.push(await node.transport.listen({ transport: lp.transport, address: vip, port: lp.port, advertise: vip, preferred: true, ...(lp.transport === 'tls' && tls ? { tls } : {}) }));
            }
          } catch (err) {
            for (const lp of lps) await node.transport.unlisten(lp);
            throw err;
          }
          vipLps.set(vip, lps);
          // Not the first holder ever: a peer held it, so callers may retransmit its INVITEs here.
          if (epoch > 1) node.notePeerTakeover();
        },
        unbind: async (vip) => {
          for (const lp of vipLps.get(vip) ?? []) await node.transport.unlisten(lp);
          vipLps.delete(vip);
        },
      });
      await takeover.start();
    },
    async close() {
      clearInterval(secretTimer);
      await takeover?.stop();
      await registry?.close();
      await locationStore?.close();
      await dialogStore?.close();
      await nonceCounts?.close();
      await authFailures?.close();
      await redis?.close();
    },
  };
}
