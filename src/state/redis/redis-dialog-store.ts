/**
 * Dialog store shared through Redis: one hash per dialog, `tandem:<cluster>:dlg:<id>`, with the
 * record as JSON in field `rec` plus `_v`, `_owner`, `_exp`. The key lives `earlyTtlSec` while the
 * dialog is early and `confirmedTtlSec` once confirmed, counted from the last `put`; `delete`
 * leaves a tombstone for `tombstoneSec`.
 *
 * `put` and `delete` never wait on Redis. `get` answers from the local cache and asks Redis on a
 * miss (the in-dialog request of a call another node set up); with Redis down an unknown dialog
 * is undefined. `size()` counts the dialogs this node knows.
 */
import type { DialogRecord, DialogStore } from '../store.js';
import type { RedisState } from './redis-state.js';
import { SharedRecords, type CachedRecord, type RecordCodec } from './shared-records.js';

export interface RedisDialogStoreOptions {
  state: RedisState;
  /**
   * Lifetime of an early dialog's record after its last write.
   * @default 600
   */
  earlyTtlSec?: number;
  /**
   * Lifetime of a confirmed dialog's record after its last write (the dialog tracker ends
   * confirmed dialogs after 3 h by default).
   * @default 14400
   */
  confirmedTtlSec?: number;
  /**
   * How long a deleted dialog's tombstone stays.
   * @default 60
   */
  tombstoneSec?: number;
  /**
   * Most dialogs cached by this node; the oldest are forgotten past it.
   * @default 500000
   */
  maxCachedDialogs?: number;
  /**
   * How long "no such dialog", read from Redis, is cached.
   * @default 10
   */
  negativeCacheSec?: number;
  /** @default 1000 */
  sweepIntervalMs?: number;
  now?: () => number;
}

const codec: RecordCodec<DialogRecord> = {
  encode(record) {
    return ['rec', JSON.stringify(record)];
  },
  decode(fields) {
    const text = fields.get('rec');
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as DialogRecord;
    } catch {
      return undefined;
    }
  },
};

export class RedisDialogStore implements DialogStore {
  readonly records: SharedRecords<DialogRecord>;
  #earlyMs: number;
  #confirmedMs: number;
  #tombstoneMs: number;
  #now: () => number;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: RedisDialogStoreOptions) {
    this.#earlyMs = (opts.earlyTtlSec ?? 600) * 1000;
    this.#confirmedMs = (opts.confirmedTtlSec ?? 14_400) * 1000;
    this.#tombstoneMs = (opts.tombstoneSec ?? 60) * 1000;
    this.#now = opts.now ?? Date.now;
    this.records = new SharedRecords<DialogRecord>({
      state: opts.state,
      kind: 'dlg',
      codec,
      maxCached: opts.maxCachedDialogs ?? 500_000,
      negativeTtlMs: (opts.negativeCacheSec ?? 10) * 1000,
      now: this.#now,
      onChange: (_id, before, after) => this.#onChange(before, after),
    });
    this.#timer = setInterval(() => this.records.sweep(this.#now()), opts.sweepIntervalMs ?? 1000);
    this.#timer.unref();
  }

  async get(id: string): Promise<DialogRecord | undefined> {
    return (await this.records.read(id))?.value;
  }

  async put(record: DialogRecord): Promise<void> {
    const ttl = record.state === 'confirmed' ? this.#confirmedMs : this.#earlyMs;
    this.records.write(record.id, { ...record }, this.#now() + ttl);
  }

  async delete(id: string): Promise<void> {
    this.records.write(id, undefined, this.#now() + this.#tombstoneMs);
  }

  size(): number {
    return this.#count;
  }

  /** Stops the sweep. The RedisState is closed by its owner (it is shared by several stores). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #onChange(before: CachedRecord<DialogRecord> | undefined, after: CachedRecord<DialogRecord> | undefined): void {
    this.#count += (after?.value ? 1 : 0) - (before?.value ? 1 : 0);
  }
}
