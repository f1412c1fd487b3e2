/**
 * Dialog store shared through Redis: one hash per dialog, `tandem:<cluster>:dlg:<id>`, with the
 * record as JSON in field `rec` plus `_v`, `_owner`, `_exp`. The key lives `earlyTtlSec` while the
 * dialog is early and `confirmedTtlSec` once confirmed, counted from the last `put`; `delete`
 * leaves a tombstone for `tombstoneSec`.
 *
 * Each node's confirmed dialogs are also listed in the set `tandem:<cluster>:owned:<node>`, so a
 * live node can claim a dead node's dialogs (`claimOrphans`: one Lua script moves the whole set,
 * sets itself as owner and bumps each record's epoch; only one claimer gets them).
 *
 * `put` and `delete` never wait on Redis. `get` answers from the local cache and asks Redis on a
 * miss (the in-dialog request of a call another node set up); with Redis down an unknown dialog
 * is undefined. `size()` counts the dialogs this node knows.
 */
import type { DialogRecord, DialogStore } from '../store.js';
import type { RedisScript } from './redis-connection.js';
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

/**
 * KEYS[1] dead node's owned set, KEYS[2] claimer's owned set; ARGV: claimer, version, key prefix
 * (`tandem:<cluster>:dlg:`), channel, node id for the message. Returns the claimed records (JSON).
 */
const CLAIM_LUA = `
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local text = redis.call('HGET', key, 'rec')
  if text and redis.call('HEXISTS', key, '_del') == 0 then
    local ok, rec = pcall(cjson.decode, text)
    if ok and type(rec) == 'table' then
      rec['owner'] = ARGV[1]
      rec['epoch'] = (tonumber(rec['epoch']) or 0) + 1
      local json = cjson.encode(rec)
      redis.call('HSET', key, 'rec', json, '_owner', ARGV[1], '_v', ARGV[2])
      redis.call('SADD', KEYS[2], id)
      redis.call('PUBLISH', ARGV[4], 'dlg\\n' .. ARGV[5] .. '\\n' .. ARGV[2] .. '\\n' .. id)
      table.insert(out, json)
    end
  end
end
if KEYS[1] ~= KEYS[2] then redis.call('DEL', KEYS[1]) end
return out
`;

export class RedisDialogStore implements DialogStore {
  readonly records: SharedRecords<DialogRecord>;
  #earlyMs: number;
  #confirmedMs: number;
  #tombstoneMs: number;
  #now: () => number;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  #state: RedisState;
  #claim: RedisScript;

  constructor(opts: RedisDialogStoreOptions) {
    this.#earlyMs = (opts.earlyTtlSec ?? 600) * 1000;
    this.#confirmedMs = (opts.confirmedTtlSec ?? 14_400) * 1000;
    this.#tombstoneMs = (opts.tombstoneSec ?? 60) * 1000;
    this.#now = opts.now ?? Date.now;
    this.#state = opts.state;
    this.#claim = opts.state.script('claim-dialogs', CLAIM_LUA);
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

  async put(record: DialogRecord, onDurable?: () => void): Promise<void> {
    const ttl = record.state === 'confirmed' ? this.#confirmedMs : this.#earlyMs;
    this.records.write(record.id, { ...record }, this.#now() + ttl, onDurable);
    // Confirmed dialogs, and ringing calls with a failover to go on with, are claimable.
    if ((record.state === 'confirmed' || record.invite?.serial) && record.owner) {
      const set = this.#ownedKey(record.owner);
      this.#state.outbox.push({ commands: [['sadd', set, record.id], ['pexpire', set, this.#confirmedMs]] });
    }
  }

  async delete(id: string): Promise<void> {
    const owner = this.records.peek(id)?.value?.owner ?? this.#state.nodeId;
    this.records.write(id, undefined, this.#now() + this.#tombstoneMs);
    this.#state.outbox.push({ commands: [['srem', this.#ownedKey(owner), id]] });
  }

  /** Nodes that own confirmed dialogs in Redis (live or not). Never rejects: [] when Redis cannot be asked. */
  async owners(): Promise<string[]> {
    const prefix = `tandem:${this.#state.cluster}:owned:`;
    const out: string[] = [];
    try {
      let cursor = '0';
      do {
        const r = (await this.#state.commands.call('SCAN', cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)) as [string, string[]];
        cursor = r[0];
        for (const k of r[1]) out.push(k.slice(prefix.length));
      } while (cursor !== '0');
    } catch {
      return [];
    }
    return out;
  }

  /**
   * Takes over the confirmed dialogs of `deadOwner`: this node becomes their owner, each record's
   * epoch grows by one. Resolves with the records claimed ([] when another node was first or Redis
   * cannot be asked).
   */
  async claimOrphans(deadOwner: string): Promise<DialogRecord[]> {
    const state = this.#state;
    let reply: unknown;
    try {
      reply = await state.commands.evalScript(this.#claim, [this.#ownedKey(deadOwner), this.#ownedKey(state.nodeId)], [state.nodeId, state.nextVersion(), `tandem:${state.cluster}:dlg:`, state.channel, state.nodeId]);
    } catch {
      return [];
    }
    const out: DialogRecord[] = [];
    for (const text of Array.isArray(reply) ? reply : []) {
      try {
        const rec = JSON.parse(String(text)) as DialogRecord;
        this.records.updateLocal(rec.id, rec);
        out.push(rec);
      } catch {
        /* a record that does not parse is skipped */
      }
    }
    return out;
  }

  #ownedKey(node: string): string {
    return `tandem:${this.#state.cluster}:owned:${node}`;
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
