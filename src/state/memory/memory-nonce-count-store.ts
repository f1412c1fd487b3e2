import { GenerationalMap } from '../../util/generational-map.js';
import type { NonceCountStore } from '../store.js';
import { ownString } from '../../util/string-calls.js';

export interface MemoryNonceCountStoreOptions {
  /**
   * Most nonces remembered (oldest forgotten first).
   * @default 200000
   */
  maxNonces?: number;
  now?: () => number;
}

/** In-process nonce-count replay state (RFC 7616 §3.4) for one node. */
export class MemoryNonceCountStore implements NonceCountStore {
  #seen: GenerationalMap<string, { nc: number; expiresAtMs: number }>;
  #now: () => number;

  constructor(opts: MemoryNonceCountStoreOptions = {}) {
    this.#seen = new GenerationalMap(opts.maxNonces ?? 200_000);
    this.#now = opts.now ?? Date.now;
  }

  async accept(nonce: string, nc: number, ttlSec: number): Promise<boolean> {
    const now = this.#now();
    const seen = this.#seen.get(nonce);
    const live = seen !== undefined && seen.expiresAtMs > now;
    if (live && nc <= seen.nc) return false;
    // Its own copy of the nonce: the caller's is a slice of a whole received header block.
    this.#seen.set(ownString(nonce), { nc, expiresAtMs: live ? seen.expiresAtMs : now + ttlSec * 1000 });
    return true;
  }

  async close(): Promise<void> {
    this.#seen.clear();
  }
}
