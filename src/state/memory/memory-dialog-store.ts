import type { DialogRecord, DialogStore } from '../store.js';

/** In-process dialog store. */
export class MemoryDialogStore implements DialogStore {
  #map = new Map<string, DialogRecord>();
  async get(id: string): Promise<DialogRecord | undefined> {
    return this.#map.get(id);
  }
  async put(record: DialogRecord, onDurable?: () => void): Promise<void> {
    this.#map.set(record.id, record);
    onDurable?.();
  }
  async delete(id: string): Promise<void> {
    this.#map.delete(id);
  }
  size(): number {
    return this.#map.size;
  }
  async close(): Promise<void> {
    this.#map.clear();
  }
}
