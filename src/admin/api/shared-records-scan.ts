/**
 * Pages through the shared records of a kind (`tandem:<c>:<kind>:*`) with SCAN: one SCAN call
 * (COUNT = the page size) and one pipelined HGETALL of at most a page of keys per request, so no
 * request runs unbounded work in Redis.
 * The cursor is Redis's; a page may hold fewer items than asked (SCAN's nature), the client
 * follows `next` until it is undefined.
 */
import type { RedisState } from '../../state/redis/redis-state.js';
import { globEscape } from './paging.js';

export interface ScanPage<T> {
  items: T[];
  /** Cursor of the next page; undefined when the scan is complete. */
  next?: string;
}

/** Fields of a hash reply: ioredis hands HGETALL back as an object in a pipeline, as a flat array elsewhere. */
function fieldsOf(reply: unknown): Map<string, string> | undefined {
  if (Array.isArray(reply)) {
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), String(reply[i + 1]));
    return m;
  }
  if (reply && typeof reply === 'object') return new Map(Object.entries(reply as Record<string, string>).map(([k, v]) => [k, String(v)]));
  return undefined;
}

export interface RecordMeta {
  id: string;
  owner?: string;
  version: number;
  expiresAtMs: number;
}

/**
 * One page of live (not removed) records of `kind` whose id contains `contains` (when given).
 * `decode` turns a record's fields into the item; undefined skips it.
 */
export async function scanRecords<T>(
  state: RedisState,
  kind: string,
  cursor: string,
  limit: number,
  decode: (fields: Map<string, string>, meta: RecordMeta) => T | undefined,
  contains?: string,
): Promise<ScanPage<T>> {
  const prefix = state.key(kind, '');
  const match = `${globEscape(prefix)}${contains ? `*${globEscape(contains)}*` : '*'}`;
  // Our cursor is `<redis cursor>.<keys of that batch already returned>`: SCAN may hand back more
  // keys than asked, and the rest of a batch is served by scanning the same cursor again.
  const m = /^(\d{1,20})(?:\.(\d{1,6}))?$/.exec(cursor);
  const at = m ? m[1]! : '0';
  const skip = m?.[2] ? Number(m[2]) : 0;
  const reply = await state.commands.call('SCAN', at, 'MATCH', match, 'COUNT', limit);
  if (!Array.isArray(reply) || reply.length < 2) return { items: [] };
  const batchNext = String(reply[0]);
  const batch = (Array.isArray(reply[1]) ? (reply[1] as unknown[]) : []).map(String).slice(0, 100_000);
  const keys = batch.slice(skip, skip + limit);
  const next = skip + limit < batch.length ? `${at}.${skip + limit}` : batchNext !== '0' ? batchNext : undefined;
  const items: T[] = [];
  if (keys.length) {
    const results = await state.commands.exec(keys.map((k) => ['hgetall', k]));
    results.forEach(([err, r], i) => {
      if (err) return;
      const f = fieldsOf(r);
      if (!f || f.has('_del') || f.size === 0) return;
      const meta: RecordMeta = {
        id: keys[i]!.slice(prefix.length),
        ...(f.get('_owner') ? { owner: f.get('_owner')! } : {}),
        version: Number(f.get('_v') ?? 0) || 0,
        expiresAtMs: Number(f.get('_exp') ?? 0) || 0,
      };
      const item = decode(f, meta);
      if (item !== undefined) items.push(item);
    });
  }
  return { items, ...(next !== undefined ? { next } : {}) };
}
