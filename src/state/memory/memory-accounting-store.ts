import type { AccountingStore, CallRecord } from '../store.js';

/** One process's call records: each call claimed once (bounded memory of claims), records kept in a bounded list. */
export class MemoryAccountingStore implements AccountingStore {
  readonly records: CallRecord[] = [];
  readonly #claimed = new Set<string>();
  readonly #max: number;

  constructor(maxEntries = 100_000) {
    this.#max = maxEntries;
  }

  async claim(callId: string): Promise<boolean> {
    if (this.#claimed.has(callId)) return false;
    this.#claimed.add(callId);
    if (this.#claimed.size > this.#max) this.#claimed.delete(this.#claimed.values().next().value!);
    return true;
  }

  append(record: CallRecord): void {
    this.records.push(record);
    if (this.records.length > this.#max) this.records.shift();
  }

  async close(): Promise<void> {}
}
