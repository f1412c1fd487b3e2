/**
 * A media node in a cluster: its ng socket and every RTP/RTCP port live on virtual addresses
 * (VIPs); the node that holds a VIP's lease serves it, the others are hot standbys that mirror
 * its calls from Redis and take them over when the lease passes to them.
 *
 * Per VIP the node runs a relay engine bound to the VIP and a session manager (a {@link MediaCore}),
 * started at once (threads only, no sockets), and an ng server on `<vip>:<ng port>` while it
 * holds the VIP.
 *
 * - **Holder.** Every change of a call (offer, answer, latching, delete, timeout) is written to
 *   Redis as a versioned record (state/redis/media-session-store.ts) through the outbox, so no ng
 *   reply waits on Redis; every `snapshotIntervalMs` each call is written again with fresh counters.
 *   A call that ends (delete, timeout) is removed; a node that stops (SIGTERM, lease lost) leaves
 *   its records for the standby.
 * - **Standby.** Mirrors the records of the VIPs it does not hold: from the records published with
 *   every write, and by a replay from the VIP's index (every call with its version) at start, after
 *   its subscriber connection was down or Redis lost data, and every `rescanIntervalMs`, so a
 *   message missed while disconnected is caught up. A record that does not decode is skipped and
 *   counted (`tandem_media_replication_errors_total`).
 * - **Takeover** (the lease passes here): the ng server opens on the VIP (on one host this fails
 *   while the old holder still has the port, and the lease goes back), a last catch-up from the
 *   index, then each mirrored call is adopted (its exact ports bound on the VIP, each side set to
 *   the address the old node latched, as latched; counters continued from the snapshot). ng
 *   commands wait until adoption is done. The adopted calls are written back under this node and
 *   the new lease epoch; Redis refuses writes with an older epoch, so an old holder that lived on
 *   cannot overwrite them.
 * - A node that comes back after a failure is a standby: it resyncs from Redis and takes nothing
 *   back while the other node holds the VIP.
 *
 * keepalived mode (`takeover: 'keepalived'`): VRRP moves the address; every node binds the VIP's
 * ng socket at start, the node that has the address serves and writes, the standbys bind every
 * mirrored call's ports in advance (ip_nonlocal_bind), so forwarding resumes with the first packet
 * after the move (see README).
 */
import { networkInterfaces } from 'node:os';
import { AddressTakeover } from '../../cluster/address-takeover.js';
import type { LeaseGrant, LeaseStore } from '../../cluster/lease-store.js';
import { RedisLeaseStore } from '../../cluster/redis-lease-store.js';
import { MediaSessionStore } from '../../state/redis/media-session-store.js';
import { RedisState } from '../../state/redis/redis-state.js';
import { redactRedisUrl } from '../../state/redis/redis-url.js';
import { createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter, gauge, histogram } from '../../util/metrics.js';
import { parseHostPort, validateMediaConfig, type MediaConfig, type MediaConfigInput } from '../config-schema.js';
import { createMediaCore, registerRelayMetrics, type MediaCore } from '../media-node.js';
import { NgServer } from '../ng-server/ng-server.js';
import type { EndReason } from '../sessions/session-manager.js';
import type { CallExport } from '../sessions/session-export.js';
import { decodeSessionRecord, encodeSessionRecord } from './session-record.js';

const log = createLogger('media-cluster');

const mErrors = counter('tandem_media_replication_errors_total', 'media session records skipped: unreadable message or record (json, schema, fields, call-id), adoption failures', ['reason']);
const mTakeovers = counter('tandem_media_takeovers_total', 'VIPs taken over with their calls');
const mAdopted = counter('tandem_media_calls_taken_over_total', 'calls taken over from another node');
const mTakeoverSec = histogram('tandem_media_takeover_seconds', 'lease acquired -> calls bound and ng serving', [], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);

/** Cluster part of a media node's config (the flags `tandem start` has for signalling). */
export interface MediaClusterOptions {
  /** This node's name, unique in the cluster. */
  nodeId: string;
  /** Cluster name (Redis key namespace). @default 'tandem' */
  cluster?: string;
  /** Addresses this node serves (takes at start when free) and stands by for; ng and media ports live on them. */
  vips: string[];
  /**
   * Addresses this node only stands by for (active/active: each node's own VIP in `vips`, the
   * other's here): their leases are contested only `standbyGraceMs` after start, so the node that
   * prefers them gets them when both start together; after that, like `vips`.
   * @default []
   */
  standbyVips?: string[];
  /** See `standbyVips`. @default 3 x leaseTtlMs */
  standbyGraceMs?: number;
  /**
   * How a VIP moves. `lease`: the nodes elect the holder through a Redis lease; the new holder binds
   * the calls' ports when it gets it. `keepalived`: VRRP moves the address; every node binds the
   * VIP's ng socket and the standby binds every mirrored call's ports in advance
   * (net.ipv4.ip_nonlocal_bind=1), so forwarding resumes with the first packet after the move.
   * @default 'lease'
   */
  takeover?: 'lease' | 'keepalived';
  /** Shared state URL (redis:// or redis-sentinel://). */
  redis: string;
  /** Lease lifetime, ms. @default 600 */
  leaseTtlMs?: number;
  /** How often a standby tries to take the lease, ms. @default 100 */
  leasePollMs?: number;
  /** How often every call is written again with fresh counters, ms. @default 2000 */
  snapshotIntervalMs?: number;
  /** How often a standby replays a VIP's index in full (besides after disconnects), ms. @default 30000 */
  rescanIntervalMs?: number;
  /** keepalived mode: how often the node looks whether a VIP is on one of its interfaces, ms. @default 10 */
  addressPollMs?: number;
}

interface Mirrored {
  version: number;
  owner: string;
  epoch: number;
  call: CallExport;
  /** When this node learned this version, ms (a replay started later may drop it). */
  seenMs: number;
}

/** One VIP: its relay and sessions, its mirror of the other node's calls, its ng server while held. */
interface VipInstance {
  vip: string;
  core: MediaCore;
  held: boolean;
  epoch: number;
  ng: NgServer | undefined;
  mirror: Map<string, Mirrored>;
  /** Calls whose record must be written (coalesced per tick). */
  dirty: Set<string>;
  flushScheduled: boolean;
  /** While a takeover binds its calls, ng commands wait for it. */
  adopting: Promise<void> | undefined;
  /**
   * Standby: calls bound ahead of a takeover, with the record version bound (keepalived mode; lease
   * mode when the relay shares ports, see {@link RelayEngine.sharesPorts}).
   */
  prebound: Map<string, number>;
  syncing: boolean;
  syncAgain: boolean;
  /** The running pass of syncPrebound, if any. */
  syncRun: Promise<void> | undefined;
  /** Lease mode: the lease arrived and the calls are being claimed; no more binding ahead. */
  claiming: boolean;
  lastTakeover?: { atMs: number; epoch: number; adopted: number; failed: number; tookMs: number; ngMs: number; replayMs: number; adoptMs: number; catchUp: number; prebound?: number };
}

/** A running media cluster node. */
export interface MediaClusterNode {
  nodeId: string;
  /** ng UDP port on every VIP. */
  ngPort: number;
  state: RedisState;
  store: MediaSessionStore;
  /** The lease manager (lease mode). */
  takeover: AddressTakeover | undefined;
  /** Cluster view for the admin API and tests. */
  status: () => Record<string, unknown>;
  /** VIPs this node serves now (lease held, or address present in keepalived mode). */
  held: () => string[];
  /** `statistics` of one VIP's instance (the first when omitted). */
  statistics: (vip?: string) => Promise<Record<string, unknown>>;
  /** Stops: gives the leases back (the standby takes over at once), leaves the records. */
  close: () => Promise<void>;
}

/** Records of changed calls are written this long after the change (coalesced), ms. */
const FLUSH_DELAY_MS = 2;

/** Tries at a call whose ports are busy at takeover, and the pause between them (about 1 s in all). */
const ADOPT_RETRIES = 20;
const ADOPT_RETRY_MS = 50;

/** KEYS[1] the lease's epoch counter; ARGV[1] a floor: the counter is raised to it when lower. */
const RAISE_EPOCH_LUA = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`;

/**
 * Lease names `media-<vip>`, so a media VIP never shares a lease with a signalling VIP. And no
 * acquisition for one lease TTL after the Redis connection came back: a Redis that restarted empty
 * lost the lease key, and a live holder takes it back with its next renewal (every TTL/4); a
 * standby polling faster would otherwise grab the free key and move the calls for nothing.
 */
class PrefixedLeases implements LeaseStore {
  #quietUntilMs = 0;
  constructor(
    readonly inner: LeaseStore,
    redis: { on(event: 'down', fn: () => void): unknown; on(event: 'ready', fn: () => void): unknown },
    ttlMs: number,
  ) {
    let wasDown = false;
    redis.on('down', () => (wasDown = true));
    redis.on('ready', () => {
      if (wasDown) this.#quietUntilMs = Date.now() + ttlMs;
      wasDown = false;
    });
  }
  async acquire(name: string, owner: string, ttlMs: number): Promise<LeaseGrant | undefined> {
    if (Date.now() < this.#quietUntilMs) {
      const held = await this.inner.holder(`media-${name}`);
      // Ours from before (a restart of this node): take it on; anyone else's, or free: wait.
      if (held?.owner !== owner) return undefined;
    }
    return this.inner.acquire(`media-${name}`, owner, ttlMs);
  }
  renew(name: string, grant: LeaseGrant, ttlMs: number): Promise<boolean> {
    return this.inner.renew(`media-${name}`, grant, ttlMs);
  }
  release(name: string, grant: LeaseGrant): Promise<void> {
    return this.inner.release(`media-${name}`, grant);
  }
  holder(name: string): Promise<LeaseGrant | undefined> {
    return this.inner.holder(`media-${name}`);
  }
}

/** Starts a media cluster node (see the file comment). Throws on bad config. */
export async function startMediaClusterNode(input: MediaConfigInput, opts: MediaClusterOptions): Promise<MediaClusterNode> {
  const keepalived = opts.takeover === 'keepalived';
  if (opts.vips.length === 0) throw new Error('media cluster: give at least one --vip');
  const standbyVips = (opts.standbyVips ?? []).filter((v) => !opts.vips.includes(v));
  const allVips = [...opts.vips, ...standbyVips];
  const base = validateMediaConfig(input);
  if (!base.ok) throw new Error(base.reason);
  const ng = parseHostPort(base.value.ng)!;
  if (ng.port === 0) throw new Error('media cluster: --ng needs a fixed port (the same on every node)');
  const cluster = opts.cluster ?? 'tandem';
  const snapshotIntervalMs = opts.snapshotIntervalMs ?? 2000;
  const rescanIntervalMs = opts.rescanIntervalMs ?? 30_000;
  /** A mirrored call not refreshed for this long, and missing from the index, has ended. */
  const staleAfterMs = 3 * snapshotIntervalMs + 5000;
  const state = new RedisState({ url: opts.redis, nodeId: opts.nodeId, cluster });
  const store = new MediaSessionStore({ state });
  log.info({ redis: redactRedisUrl(opts.redis), cluster, nodeId: opts.nodeId, vips: opts.vips, standbyVips }, 'media cluster node: sessions replicated in Redis');

  const instances = new Map<string, VipInstance>();
  const counts = { messages: 0, garbled: 0, scans: 0, scanFailures: 0 };
  const skip = (reason: string, detail: Record<string, unknown>): void => {
    counts.garbled++;
    mErrors.inc({ reason });
    rateLimitedLog(`media-record-${reason}`, (n) => log.warn({ reason, ...detail, suppressed: n }, 'media session record skipped'));
  };

  const flush = (inst: VipInstance): void => {
    inst.flushScheduled = false;
    if (!inst.held) return inst.dirty.clear();
    for (const callId of inst.dirty) {
      const call = inst.core.sessions.exportCall(callId);
      if (!call) continue;
      store.put(inst.vip, callId, encodeSessionRecord(call), inst.epoch);
      inst.core.sessions.markReplicated(callId);
    }
    inst.dirty.clear();
  };

  const onSessionChange = (inst: VipInstance, callId: string, ended: EndReason | undefined): void => {
    if (!inst.held) return;
    if (ended === undefined) {
      inst.dirty.add(callId);
      if (!inst.flushScheduled) {
        inst.flushScheduled = true;
        // Shortly after the reply, not right after it: the command that follows an offer's reply
        // (its answer) comes within a millisecond and should not find the loop encoding records.
        setTimeout(() => flush(inst), FLUSH_DELAY_MS).unref();
      }
      return;
    }
    inst.dirty.delete(callId);
    // A node that stops serving (shutdown, lease lost) leaves the call to the standby.
    if (ended === 'shutdown' || ended === 'handover') return;
    store.remove(inst.vip, callId, inst.epoch);
  };

  /** Applies one record of another node to the mirror of a VIP this node does not hold. */
  const mirrorRecord = (inst: VipInstance, callId: string, version: number, owner: string, epoch: number, rec: string | undefined, seenMs: number): void => {
    // While this node serves the VIP it is the writer. Otherwise records it wrote itself are
    // mirrored too: they come from before a restart or a handover, and the calls live on.
    if (inst.held) return;
    // As Redis orders writes: the higher epoch wins, then the newer version.
    const cur = inst.mirror.get(callId);
    if (cur && (cur.epoch > epoch || (cur.epoch === epoch && cur.version >= version))) return;
    if (rec === undefined) {
      inst.mirror.delete(callId);
      if (prebinds(inst)) void syncPrebound(inst);
      return;
    }
    const d = decodeSessionRecord(rec, callId);
    if (!d.ok) return skip(d.reason, { vip: inst.vip, callId, owner });
    inst.mirror.set(callId, { version, owner, epoch, call: d.value, seenMs });
    if (prebinds(inst)) void syncPrebound(inst);
  };

  /**
   * Whether the standby binds mirrored calls ahead of a takeover: keepalived mode (ports on the VIP
   * before the address is here: ip_nonlocal_bind, IP_FREEBIND), and lease mode when the relay
   * shares ports (on one host the holder has the same address and ports: SO_REUSEPORT, with the
   * kernel giving every packet to the holder's socket until it is gone).
   */
  const prebinds = (inst: VipInstance): boolean => keepalived || (inst.core.relay.sharesPorts && !prebindPaused);
  /** Lease mode: binding ahead is off while the records cannot be followed (see staleAfterDownMs). */
  let prebindPaused = false;

  /**
   * Standby: binds every mirrored call now (so forwarding starts with the first packet after the
   * address moves or the holder's sockets close), follows newer records (counters and peers in
   * place; dialogues or ports changed: bound again) and frees the calls that ended. One run at a
   * time; changes meanwhile cause another.
   */
  const syncPrebound = (inst: VipInstance): Promise<void> => {
    if (inst.held || inst.claiming) return Promise.resolve();
    if (inst.syncing) {
      inst.syncAgain = true;
      return inst.syncRun ?? Promise.resolve();
    }
    inst.syncing = true;
    // On the next turn of the loop: a burst of records (a snapshot rewrites every call) makes one pass.
    inst.syncRun = new Promise<void>((r) => setImmediate(r))
      .then(() => syncPreboundRun(inst))
      .finally(() => {
        inst.syncing = false;
        inst.syncRun = undefined;
      });
    return inst.syncRun;
  };

  const syncPreboundRun = async (inst: VipInstance): Promise<void> => {
    do {
      inst.syncAgain = false;
      for (const [callId, m] of [...inst.mirror]) {
        if (inst.held || inst.claiming || closed) return;
        const bound = inst.prebound.get(callId);
        if (bound === m.version) continue;
        if (bound !== undefined && inst.core.sessions.refreshAdopted(m.call)) {
          inst.prebound.set(callId, m.version);
          continue;
        }
        inst.core.sessions.drop(callId);
        const r = await inst.core.sessions.adopt(m.call, { standby: true });
        if (r.ok) inst.prebound.set(callId, m.version);
        else {
          inst.prebound.delete(callId);
          mErrors.inc({ reason: 'prebind' });
          rateLimitedLog('media-prebind', (n) => log.warn({ vip: inst.vip, callId, code: r.code, reason: r.reason, suppressed: n }, 'could not bind a mirrored call ahead of a takeover'));
        }
      }
      for (const callId of [...inst.prebound.keys()]) {
        if (inst.mirror.has(callId) || inst.held || inst.claiming) continue;
        inst.core.sessions.drop(callId);
        inst.prebound.delete(callId);
      }
    } while (inst.syncAgain && !inst.held && !inst.claiming && !closed);
  };

  store.onMessage((m, raw) => {
    counts.messages++;
    if (!m) return skip('message', { snippet: raw.slice(0, 80) });
    const inst = instances.get(m.vip);
    if (!inst) return;
    mirrorRecord(inst, m.callId, m.version, m.owner, m.epoch, m.rec, Date.now());
  });

  /**
   * Replays a VIP's calls from its index: fetches every record whose version the mirror does not
   * hold, drops mirrored calls the index no longer lists (unless learned after the replay began).
   * Returns how many records were fetched. Rejects when Redis fails.
   */
  const replay = async (inst: VipInstance, keepMissing = false): Promise<number> => {
    const startedMs = Date.now();
    const index = await store.index(inst.vip);
    const want: string[] = [];
    for (const [callId, version] of index) {
      const cur = inst.mirror.get(callId);
      if (!cur || cur.version < version) want.push(callId);
    }
    const records = want.length ? await store.fetch(inst.vip, want) : [];
    for (const r of records) {
      if (r.version === 0) continue;
      if (r.rec === undefined && !r.deleted) {
        skip('fields', { vip: inst.vip, callId: r.callId, owner: r.owner });
        continue;
      }
      mirrorRecord(inst, r.callId, r.version, r.owner, r.epoch, r.rec, startedMs);
    }
    // A call the index no longer lists ended, unless Redis lost its data and the owner has not
    // written it back yet: so it is dropped when its record is a tombstone, or when its version is
    // older than the owner's snapshots allow for a live call (every call is rewritten every
    // snapshotIntervalMs). At takeover (`keepMissing`) nothing is dropped.
    if (!keepMissing) {
      const missing = [...inst.mirror].filter(([callId, m]) => !index.has(callId) && m.seenMs < startedMs).map(([callId]) => callId);
      if (missing.length) {
        const now = Date.now();
        for (const r of await store.fetch(inst.vip, missing)) {
          const m = inst.mirror.get(r.callId);
          if (m && m.seenMs < startedMs && (r.deleted || now - m.version > staleAfterMs)) inst.mirror.delete(r.callId);
        }
      }
    }
    counts.scans++;
    if (prebinds(inst)) void syncPrebound(inst);
    return records.length;
  };

  const replayAll = async (keepMissing = false): Promise<void> => {
    for (const inst of instances.values()) if (!inst.held) await replay(inst, keepMissing);
  };

  const foreignCount = (): number => {
    let n = 0;
    for (const i of instances.values()) n += i.mirror.size;
    return n;
  };

  for (const vip of allVips) {
    const cfg: MediaConfig = { ...base.value, interface: vip, advertise: allVips.length === 1 && base.value.advertise ? base.value.advertise : vip, ng: `${vip}:${ng.port}`, sparePairs: 0 };
    const inst: VipInstance = {
      vip,
      core: undefined as unknown as MediaCore,
      held: false,
      epoch: 0,
      ng: undefined,
      mirror: new Map(),
      dirty: new Set(),
      flushScheduled: false,
      adopting: undefined,
      prebound: new Map(),
      syncing: false,
      syncAgain: false,
      syncRun: undefined,
      claiming: false,
    };
    inst.core = await createMediaCore(Object.freeze(cfg), {
      onSessionChange: (callId, ended) => onSessionChange(inst, callId, ended),
      // Node-wide, as rtpengine counts them: every call mirrored for any VIP this node does not serve.
      foreignSessions: () => foreignCount(),
      ownSessions: () => [...instances.values()].reduce((n, i) => n + (i.held ? i.core.sessions.size : 0), 0),
      foreignCallIds: () => [...instances.values()].flatMap((i) => [...i.mirror.keys()]),
      extraStatistics: () => ({ cluster: vipStatus(inst) }),
      gate: () => inst.adopting,
    }, { sharedPorts: true });
    instances.set(vip, inst);
  }
  registerRelayMetrics(instances.values().next().value!.core.relay);
  gauge('tandem_media_sessions_foreign', 'calls mirrored from other nodes (hot standby), not served here', [], function () {
    this.set(foreignCount());
  });

  const vipStatus = (inst: VipInstance): Record<string, unknown> => ({
    vip: inst.vip,
    held: inst.held,
    epoch: inst.epoch,
    own: inst.held ? inst.core.sessions.size : 0,
    foreign: inst.mirror.size,
    ...(prebinds(inst) ? { prebound: inst.held ? 0 : inst.prebound.size } : {}),
    takenOver: inst.core.sessions.adoptedCount,
    ...(inst.lastTakeover ? { lastTakeover: inst.lastTakeover } : {}),
  });

  // Replay after the subscriber was down (messages missed) or Redis lost its data; the owner
  // writes its calls back after a loss.
  state.onResync(async (lost) => {
    if (lost) for (const inst of instances.values()) if (inst.held) for (const id of inst.core.sessions.callIds()) inst.dirty.add(id);
    for (const inst of instances.values()) if (inst.held && inst.dirty.size) flush(inst);
    await replayAll(lost);
  });

  // Lease mode on one host: ports bound ahead are shared with the holder's. A standby that cannot
  // follow the records (subscriber down) might keep a call's ports after the holder freed them and,
  // once their quarantine is over, gave them to a new call, whose packets would then come here.
  // So its calls bound ahead are freed when the subscriber has been down for half the quarantine
  // (at most 3 s); the catch-up after it returns binds them again.
  const staleAfterDownMs = Math.max(100, Math.min(3000, base.value.portQuarantineMs / 2));
  let downTimer: NodeJS.Timeout | undefined;
  state.subscriber.on('down', () => {
    downTimer ??= setTimeout(() => {
      prebindPaused = true;
      for (const inst of instances.values()) {
        if (inst.held || keepalived || !inst.core.relay.sharesPorts || inst.prebound.size === 0) continue;
        log.warn({ vip: inst.vip, calls: inst.prebound.size }, 'Redis subscriber down: calls bound ahead of a takeover freed until the records can be followed again');
        for (const id of inst.prebound.keys()) inst.core.sessions.drop(id);
        inst.prebound.clear();
      }
    }, staleAfterDownMs);
    downTimer.unref();
  });
  state.subscriber.on('ready', () => {
    clearTimeout(downTimer);
    downTimer = undefined;
    prebindPaused = false;
  });

  let closed = false;
  // The first replay as soon as Redis answers, then a full one every rescanIntervalMs.
  const scanLoop = async (): Promise<void> => {
    let delayMs = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, delayMs).unref());
      if (closed) return;
      try {
        await replayAll();
        delayMs = rescanIntervalMs;
      } catch {
        counts.scanFailures++;
        delayMs = 500;
      }
    }
  };
  void scanLoop();

  const snapshotTimer = setInterval(() => {
    void (async () => {
      for (const inst of instances.values()) {
        if (!inst.held || inst.core.sessions.size === 0) continue;
        try {
          await inst.core.sessions.refreshCounters();
        } catch (err) {
          log.warn({ err }, 'counter snapshot failed');
        }
        for (const id of inst.core.sessions.callIds()) inst.dirty.add(id);
        flush(inst);
      }
    })();
  }, snapshotIntervalMs);
  snapshotTimer.unref();

  const bind = async (vip: string, epoch: number): Promise<void> => {
    const inst = instances.get(vip)!;
    const t0 = performance.now();
    // ng first: while the old holder still has the address's ports, this fails and the lease goes back.
    const started = await NgServer.start({ udp: { host: vip, port: ng.port }, ...(inst.core.config.ngTcp ? { tcp: { host: vip, port: parseHostPort(inst.core.config.ngTcp)!.port } } : {}), allow: inst.core.config.ngAllow, cookieCacheMs: inst.core.config.cookieCacheSec * 1000, handler: inst.core.handler });
    if (!started.ok) throw new Error(started.reason);
    // Calls bound ahead stay as they are; the pass binding more of them stops here.
    inst.claiming = true;
    let release!: () => void;
    inst.adopting = new Promise<void>((r) => (release = r));
    inst.ng = started.value;
    inst.core.setNgServer(started.value);
    try {
      await adoptAll(inst, epoch, t0);
    } catch (err) {
      // Nothing expected throws here; if it did, this node must not half-serve the VIP.
      inst.held = false;
      inst.core.sessions.handOver();
      inst.ng = undefined;
      inst.core.setNgServer(undefined);
      await started.value.close();
      throw err;
    } finally {
      inst.claiming = false;
      inst.adopting = undefined;
      release();
    }
  };

  /** The lease arrived and ng is bound: catch up, adopt every mirrored call, take ownership. */
  const adoptAll = async (inst: VipInstance, epoch: number, t0: number): Promise<void> => {
    const vip = inst.vip;
    const tNg = performance.now();
    await inst.syncRun?.catch(() => undefined);
    let catchUp = 0;
    try {
      // Whatever was published while this node was away, read now (Redis answered the lease just now).
      // Nothing is dropped here: a call the index lacks (Redis lost its data and the owner had no time
      // to write it back) is better taken over and left to its timeout than lost.
      catchUp = await replay(inst, true);
    } catch {
      counts.scanFailures++;
    }
    const tReplay = performance.now();
    inst.held = true;
    const calls = [...inst.mirror.values()];
    // Records are fenced by the lease epoch. A Redis that lost its data restarts the epoch count,
    // so a new grant can be lower than epochs in the records written back: write above them, and
    // move the counter past that so later grants stay higher.
    const seen = calls.reduce((m, c) => Math.max(m, c.epoch), 0);
    inst.epoch = epoch > seen ? epoch : seen + 1;
    if (inst.epoch !== epoch) {
      log.warn({ vip, granted: epoch, seen, using: inst.epoch }, 'lease epoch below the records\' (Redis lost its data?): writing above them');
      void state.commands.call('EVAL', RAISE_EPOCH_LUA, 1, `tandem:${cluster}:lease:media-${vip}:epoch`, inst.epoch).catch(() => undefined);
    }
    inst.mirror.clear();
    // Calls bound ahead (their ports shared with the old holder, whose sockets had the packets
    // until they closed): served as they are when up to date, else refreshed in place or bound again.
    let prebound = 0;
    let pending: Mirrored[] = [];
    const mirrored = new Set<string>();
    for (const m of calls) {
      const id = m.call.callId;
      mirrored.add(id);
      const bound = inst.prebound.get(id);
      if (bound === m.version || (bound !== undefined && inst.core.sessions.refreshAdopted(m.call))) {
        prebound++;
        continue;
      }
      if (bound !== undefined) inst.core.sessions.drop(id);
      pending.push(m);
    }
    for (const id of inst.prebound.keys()) if (!mirrored.has(id)) inst.core.sessions.drop(id);
    inst.prebound.clear();
    inst.core.sessions.claimStandby();
    let adopted = prebound;
    let failed = 0;
    // Ports still held by a node that is letting go (a handover while both live) free up within
    // moments: calls whose ports were busy are tried again for a while.
    for (let attempt = 0; pending.length > 0; attempt++) {
      const busy: Mirrored[] = [];
      await Promise.all(
        pending.map(async (m) => {
          const r = await inst.core.sessions.adopt(m.call);
          if (r.ok) adopted++;
          else if (r.code === 'NG_ERR_PORT_UNAVAILABLE' && attempt < ADOPT_RETRIES) busy.push(m);
          else {
            failed++;
            mErrors.inc({ reason: 'adopt' });
            rateLimitedLog('media-adopt', (n) => log.warn({ vip, callId: m.call.callId, code: r.code, reason: r.reason, suppressed: n }, 'could not take a call over'));
          }
        }),
      );
      pending = busy;
      if (pending.length) await new Promise((r) => setTimeout(r, ADOPT_RETRY_MS));
    }
    const tookMs = performance.now() - t0;
    const r1 = (x: number): number => Math.round(x * 10) / 10;
    inst.lastTakeover = { atMs: Date.now(), epoch: inst.epoch, adopted, failed, tookMs: r1(tookMs), ngMs: r1(tNg - t0), replayMs: r1(tReplay - tNg), adoptMs: r1(t0 + tookMs - tReplay), catchUp, prebound };
    mTakeovers.inc();
    mAdopted.inc(adopted);
    mTakeoverSec.observe(tookMs / 1000);
    log.info({ vip, epoch, adopted, failed, tookMs: inst.lastTakeover.tookMs }, calls.length ? 'took the virtual address over with its calls' : 'serving the virtual address');
  };

  const unbind = async (vip: string, reason: string): Promise<void> => {
    const inst = instances.get(vip)!;
    if (reason !== 'shutdown') for (const id of inst.core.sessions.callIds()) inst.dirty.add(id);
    if (inst.held && inst.dirty.size) flush(inst);
    inst.held = false;
    // Media ports first: the ng port is what a node taking over binds first (on one host it is the
    // fence), so by the time it can, every call's ports are free for it.
    inst.core.sessions.handOver();
    const server = inst.ng;
    inst.ng = undefined;
    inst.core.setNgServer(undefined);
    await server?.close();
    log.warn({ vip, reason }, 'no longer serving the virtual address; calls left to the holder');
    if (!closed) void replay(inst).catch(() => counts.scanFailures++);
  };

  /**
   * keepalived mode: the address arrived (VRRP made this node master). The calls are bound
   * already; from now on this node writes them, under a new epoch (ms now: no lease here).
   */
  const activate = (inst: VipInstance): void => {
    const t0 = performance.now();
    inst.held = true;
    inst.epoch = Date.now();
    const bound = inst.prebound.size;
    const unbound = [...inst.mirror.values()].filter((m) => !inst.prebound.has(m.call.callId) && !inst.core.sessions.exportCall(m.call.callId));
    inst.mirror.clear();
    inst.prebound.clear();
    inst.core.sessions.claimStandby();
    let release!: () => void;
    inst.adopting = new Promise<void>((r) => (release = r));
    void (async () => {
      let failed = 0;
      let early = 0;
      for (const m of unbound) {
        if ((await inst.core.sessions.adopt(m.call)).ok) early++;
        else failed++;
      }
      // Calls in Redis this node has not mirrored yet (it just started, or was cut off): read now.
      let late = 0;
      try {
        const index = await store.index(inst.vip);
        const missing = [...index.keys()].filter((id) => !inst.core.sessions.exportCall(id));
        for (const r of missing.length ? await store.fetch(inst.vip, missing) : []) {
          if (r.rec === undefined) continue;
          const d = decodeSessionRecord(r.rec, r.callId);
          if (!d.ok) {
            skip(d.reason, { vip: inst.vip, callId: r.callId, owner: r.owner });
            continue;
          }
          if ((await inst.core.sessions.adopt(d.value)).ok) late++;
          else failed++;
        }
      } catch {
        counts.scanFailures++;
      }
      inst.adopting = undefined;
      release();
      for (const id of inst.core.sessions.callIds()) inst.dirty.add(id);
      flush(inst);
      const tookMs = Math.round((performance.now() - t0) * 10) / 10;
      const adopted = bound + early + late;
      inst.lastTakeover = { atMs: Date.now(), epoch: inst.epoch, adopted, failed, tookMs, ngMs: 0, replayMs: 0, adoptMs: tookMs, catchUp: early + late };
      mTakeovers.inc();
      mAdopted.inc(adopted);
      log.info({ vip: inst.vip, bound, late: early + late, failed, tookMs }, 'virtual address arrived: serving its calls (bound in advance)');
    })();
  };

  /** keepalived mode: the address left. The calls stay bound and follow the new master's records. */
  const deactivate = (inst: VipInstance): void => {
    for (const id of inst.core.sessions.callIds()) inst.dirty.add(id);
    flush(inst);
    inst.held = false;
    for (const id of inst.core.sessions.callIds()) {
      inst.prebound.set(id, -1);
      inst.core.sessions.markStandby(id);
    }
    log.warn({ vip: inst.vip }, 'virtual address left: standing by with the calls bound');
    void replay(inst).catch(() => counts.scanFailures++);
  };

  let takeover: AddressTakeover | undefined;
  let standbyTakeover: AddressTakeover | undefined;
  let standbyTimer: NodeJS.Timeout | undefined;
  let addressTimer: NodeJS.Timeout | undefined;
  if (keepalived) {
    // The ng socket (and every call's ports) are bound on the VIP whether the address is here or
    // not: that needs net.ipv4.ip_nonlocal_bind=1 on the standby.
    for (const inst of instances.values()) {
      const started = await NgServer.start({ udp: { host: inst.vip, port: ng.port }, allow: inst.core.config.ngAllow, cookieCacheMs: inst.core.config.cookieCacheSec * 1000, handler: inst.core.handler });
      if (!started.ok) throw new Error(`${started.reason} (keepalived mode binds the VIP in advance: set net.ipv4.ip_nonlocal_bind=1)`);
      inst.ng = started.value;
      inst.core.setNgServer(started.value);
    }
    const check = (): void => {
      const local = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address)));
      for (const inst of instances.values()) {
        const here = local.has(inst.vip);
        if (here && !inst.held) activate(inst);
        else if (!here && inst.held) deactivate(inst);
      }
    };
    check();
    addressTimer = setInterval(check, opts.addressPollMs ?? 10);
    addressTimer.unref();
  } else {
    const leases = new PrefixedLeases(new RedisLeaseStore(state.commands, cluster), state.commands, opts.leaseTtlMs ?? 600);
    const takeoverFor = (vips: string[]): AddressTakeover =>
      new AddressTakeover({ nodeId: opts.nodeId, vips, mode: 'lease', leases, ttlMs: opts.leaseTtlMs ?? 600, pollMs: opts.leasePollMs ?? 100, bind, unbind });
    takeover = takeoverFor([...opts.vips]);
    const later = standbyVips.length ? takeoverFor(standbyVips) : undefined;
    standbyTakeover = later;
    // The first lease try waits for Redis to answer (or fails and the poll tries again).
    await takeover.start();
    standbyTimer = later
      ? setTimeout(() => {
          if (!closed) void later.start();
        }, opts.standbyGraceMs ?? 3 * (opts.leaseTtlMs ?? 600))
      : undefined;
  }

  const status = (): Record<string, unknown> => ({
    nodeId: opts.nodeId,
    cluster,
    redis: { commands: state.commands.ready, subscriber: state.subscriber.ready, outboxDepth: state.outbox.depth, resyncs: state.resyncs },
    replication: { ...counts, written: store.stats.written, stale: store.stats.stale },
    vips: [...instances.values()].map(vipStatus),
  });

  return {
    nodeId: opts.nodeId,
    ngPort: ng.port,
    state,
    store,
    takeover,
    status,
    held: () => [...instances.values()].filter((i) => i.held).map((i) => i.vip),
    statistics: (vip) => (vip ? instances.get(vip) : instances.values().next().value)!.core.statistics(),
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(snapshotTimer);
      clearTimeout(standbyTimer);
      clearTimeout(downTimer);
      clearInterval(addressTimer);
      for (const inst of instances.values()) if (inst.held) flush(inst);
      await takeover?.stop();
      await standbyTakeover?.stop();
      for (const inst of instances.values()) await inst.ng?.close();
      for (const inst of instances.values()) await inst.core.close();
      await state.close();
    },
  };
}
