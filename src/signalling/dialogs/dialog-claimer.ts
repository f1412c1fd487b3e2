/**
 * Owner duties survive their owner: every `intervalMs` the node compares the owners of confirmed
 * dialogs in the shared store with the live nodes (heartbeats); a dead owner's dialogs are
 * claimed (atomically, one claimer wins, each record's epoch grows) and tracked here from then on:
 * call counts per back-end, timeouts, the keep-alive of long calls. At start a node also takes
 * back what a previous process of the same name owned.
 */
import type { DialogRecord, DialogStore, NodeRegistry } from '../../state/store.js';
import { createLogger } from '../../util/logger.js';
import type { DialogTracker } from './dialog-tracker.js';

const log = createLogger('dialogs');

export interface DialogClaimerOptions {
  nodeId: string;
  store: DialogStore;
  registry: NodeRegistry;
  tracker: DialogTracker;
  /** @default 1000 */
  intervalMs?: number;
  /** A node with dialogs and no heartbeat was found (called before its dialogs are claimed). */
  onPeerDead?: (nodeId: string) => void;
  /** A claimed call still ringing with a serial failover to go on with. */
  onRinging?: (record: DialogRecord) => void;
}

export class DialogClaimer {
  readonly #o: DialogClaimerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #lastLive = new Set<string>();

  constructor(opts: DialogClaimerOptions) {
    this.#o = opts;
  }

  start(): void {
    void this.#claim(this.#o.nodeId);
    this.#timer = setInterval(() => void this.tick(), this.#o.intervalMs ?? 1000);
    this.#timer.unref();
  }

  /** One round: claims the dialogs of every owner with no live heartbeat. */
  async tick(): Promise<void> {
    const { store, registry, nodeId } = this.#o;
    if (this.#running || !store.owners || !store.claimOrphans) return;
    this.#running = true;
    try {
      const live = new Set((await registry.liveNodes()).map((n) => n.nodeId));
      // Our own heartbeat not seen yet (start, or Redis unreachable): no judgement on others.
      if (!live.has(nodeId)) return;
      // A node whose heartbeat just lapsed, even with no established call (only ringing ones).
      for (const n of this.#lastLive) if (!live.has(n)) this.#o.onPeerDead?.(n);
      this.#lastLive = live;
      for (const owner of await store.owners()) {
        if (owner !== nodeId && !live.has(owner)) {
          this.#o.onPeerDead?.(owner);
          await this.#claim(owner);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #claim(owner: string): Promise<void> {
    const claimed = (await this.#o.store.claimOrphans?.(owner)) ?? [];
    for (const rec of claimed) {
      if (rec.state === 'confirmed') this.#o.tracker.adopt(rec);
      else this.#o.onRinging?.(rec);
    }
    if (claimed.length) log.warn({ from: owner, dialogs: claimed.length }, 'claimed the dialogs of a node with no heartbeat');
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
