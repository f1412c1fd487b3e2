/**
 * Accounting: one record per call (answered or not), written by whichever node sees it end, also
 * when the node that set the call up died before. The shared store decides which node writes
 * (`claim`); the record goes to its stream and, when configured, to a JSON-lines file.
 */
import { appendFile } from 'node:fs/promises';
import type { AccountingStore, CallRecord, DialogRecord } from '../../state/store.js';
import { counter } from '../../util/metrics.js';
import { createLogger, rateLimitedLog } from '../../util/logger.js';

const log = createLogger('accounting');
const written = counter('tandem_accounting_records_total', 'Call records written by this node, by end reason', ['reason']);
const skipped = counter('tandem_accounting_duplicates_skipped_total', 'Call ends already accounted for by another node (or earlier)');
const fileErrors = counter('tandem_accounting_file_errors_total', 'Call records that could not be appended to the accounting file');

export interface AccountingOptions {
  store: AccountingStore;
  /** JSON-lines file every record is appended to. */
  file?: string;
  nodeId?: string;
  now?: () => number;
}

export class Accounting {
  readonly #o: AccountingOptions;
  /** File appends in order, one at a time. */
  #fileChain: Promise<void> = Promise.resolve();

  constructor(opts: AccountingOptions) {
    this.#o = opts;
  }

  /** The call of `rec` ended for `reason`: its record, unless another node already wrote it. */
  async callEnded(rec: DialogRecord, reason: CallRecord['endReason']): Promise<void> {
    const setUpHere = this.#o.nodeId !== undefined && (rec.creator ?? rec.owner) === this.#o.nodeId;
    if (!(await this.#o.store.claim(rec.callId, setUpHere))) {
      skipped.inc();
      return;
    }
    const endMs = (this.#o.now ?? Date.now)();
    const answered = rec.state === 'confirmed' ? (rec.answeredAtMs ?? rec.createdAtMs) : undefined;
    const record: CallRecord = {
      callId: rec.callId,
      ...(rec.fromUri ? { from: uriOf(rec.fromUri) } : {}),
      ...(rec.toUri ? { to: uriOf(rec.toUri) } : {}),
      startMs: rec.createdAtMs,
      ...(answered !== undefined ? { answerMs: answered } : {}),
      endMs,
      durationSec: answered !== undefined ? Math.max(0, Math.round((endMs - answered) / 100) / 10) : 0,
      endReason: reason,
      ...(rec.creator ?? rec.owner ? { setupNode: (rec.creator ?? rec.owner)! } : {}),
      ...(this.#o.nodeId ? { endNode: this.#o.nodeId } : {}),
    };
    this.#o.store.append(record);
    written.inc({ reason });
    const file = this.#o.file;
    if (file) {
      const line = `${JSON.stringify(record)}\n`;
      this.#fileChain = this.#fileChain.then(() =>
        appendFile(file, line).catch((err: unknown) => {
          fileErrors.inc();
          rateLimitedLog('accounting-file', (s) => log.error({ err, file, suppressed: s }, 'cannot append call record'));
        }),
      );
    }
  }

  /** Resolves once every record so far is in the file. */
  flushed(): Promise<void> {
    return this.#fileChain;
  }
}

/** The URI of a From/To value (`"Alice" <sip:a@d>;tag=1` -> `sip:a@d`; a bare URI ends at its first `;`). */
function uriOf(nameAddr: string): string {
  const lt = nameAddr.indexOf('<');
  if (lt >= 0) {
    const gt = nameAddr.indexOf('>', lt);
    return nameAddr.slice(lt + 1, gt < 0 ? undefined : gt);
  }
  const semi = nameAddr.indexOf(';');
  return (semi < 0 ? nameAddr : nameAddr.slice(0, semi)).trim();
}
