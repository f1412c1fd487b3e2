/**
 * Call records shared through Redis: `claim` is `SET tandem:<cluster>:cdr:<call-id> <node> NX`
 * (kept a day), so of every node that sees a call end only the first writes its record; records
 * go to the stream `tandem:<cluster>:cdr` (trimmed to about `maxStreamEntries`) through the
 * outbox. With Redis unreachable the claim is granted (a record twice is better than none) and
 * counted.
 */
import { counter } from '../../util/metrics.js';
import type { AccountingStore, CallRecord } from '../store.js';
import type { RedisState } from './redis-state.js';

const claimUnchecked = counter('tandem_accounting_claims_unchecked_total', 'Call records written without asking Redis whether another node already wrote them (Redis unreachable)');

export interface RedisAccountingStoreOptions {
  state: RedisState;
  /** @default 86400 */
  claimTtlSec?: number;
  /** Approximate length the stream is trimmed to. @default 1000000 */
  maxStreamEntries?: number;
}

export class RedisAccountingStore implements AccountingStore {
  readonly #state: RedisState;
  readonly #ttlSec: number;
  readonly #max: number;
  readonly #stream: string;

  constructor(opts: RedisAccountingStoreOptions) {
    this.#state = opts.state;
    this.#ttlSec = opts.claimTtlSec ?? 86_400;
    this.#max = opts.maxStreamEntries ?? 1_000_000;
    this.#stream = `tandem:${opts.state.cluster}:cdr`;
  }

  async claim(callId: string, setUpHere = false): Promise<boolean> {
    if (setUpHere) {
      // No round trip for the common case; a peer that ends the call later finds the claim.
      this.#state.outbox.push({ commands: [['set', this.#state.key('cdr', callId), this.#state.nodeId, 'NX', 'EX', this.#ttlSec]] });
      return true;
    }
    try {
      const r = await this.#state.commands.call('SET', this.#state.key('cdr', callId), this.#state.nodeId, 'NX', 'EX', this.#ttlSec);
      return r === 'OK';
    } catch {
      claimUnchecked.inc();
      return true;
    }
  }

  append(record: CallRecord): void {
    this.#state.outbox.push({ commands: [['xadd', this.#stream, 'MAXLEN', '~', this.#max, '*', 'record', JSON.stringify(record)]] });
  }

  async close(): Promise<void> {}
}
