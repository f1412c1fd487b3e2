import { GenerationalMap } from '../../util/generational-map.js';
import { ownString as own } from '../../util/string-calls.js';
import type { AccountingStore, CallRecord } from '../store.js';


/**
 * One process's call records: each call claimed once (a bounded set of recent Call-IDs), the
 * latest records kept in a bounded list (nothing reads them but tests and a debugger: the JSON
 * lines file and Redis are where records go). Both hold their own copies of strings.
 */
export class MemoryAccountingStore implements AccountingStore {
  readonly records: CallRecord[] = [];
  readonly #claimed: GenerationalMap<string, true>;
  readonly #maxRecords: number;

  /** @param maxEntries Call-IDs remembered as claimed. @param maxRecords records kept. */
  constructor(maxEntries = 100_000, maxRecords = 1_000) {
    this.#claimed = new GenerationalMap(maxEntries);
    this.#maxRecords = maxRecords;
  }

  async claim(callId: string): Promise<boolean> {
    if (this.#claimed.has(callId)) return false;
    this.#claimed.set(own(callId), true);
    return true;
  }

  append(record: CallRecord): void {
    const r: CallRecord = { ...record, callId: own(record.callId) };
    if (r.from !== undefined) r.from = own(r.from);
    if (r.to !== undefined) r.to = own(r.to);
    this.records.push(r);
    if (this.records.length > this.#maxRecords) this.records.shift();
  }

  async close(): Promise<void> {}
}
