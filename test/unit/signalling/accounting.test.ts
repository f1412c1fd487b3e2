import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Accounting } from '../../../src/signalling/accounting/accounting.js';
import { MemoryAccountingStore } from '../../../src/state/memory/memory-accounting-store.js';
import type { DialogRecord } from '../../../src/state/store.js';

const rec = (over: Partial<DialogRecord> = {}): DialogRecord => ({
  id: 'c1',
  callId: 'c1',
  fromTag: 'a',
  toTag: 'b',
  state: 'confirmed',
  createdAtMs: 1_000,
  updatedAtMs: 2_000,
  answeredAtMs: 2_000,
  fromUri: 'sip:alice@d',
  toUri: 'sip:bob@d',
  creator: 'sip1',
  owner: 'sip1',
  ...over,
});

describe('Accounting', () => {
  it('writes one record per call, to the store and the JSON-lines file, however many nodes see it end', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cdr-')), 'cdr.jsonl');
    const store = new MemoryAccountingStore();
    const a = new Accounting({ store, file, nodeId: 'sip2', now: () => 32_000 });
    const b = new Accounting({ store, nodeId: 'sip3', now: () => 33_000 });
    await a.callEnded(rec(), 'bye');
    await b.callEnded(rec(), 'bye');
    await a.callEnded(rec({ id: 'c2', callId: 'c2', state: 'early', answeredAtMs: undefined }), 'cancel');
    await a.flushed();
    expect(store.records).toHaveLength(2);
    expect(store.records[0]).toEqual({ callId: 'c1', from: 'sip:alice@d', to: 'sip:bob@d', startMs: 1_000, answerMs: 2_000, endMs: 32_000, durationSec: 30, endReason: 'bye', setupNode: 'sip1', endNode: 'sip2' });
    expect(store.records[1]).toMatchObject({ callId: 'c2', durationSec: 0, endReason: 'cancel' });
    expect(store.records[1]!.answerMs).toBeUndefined();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { callId: string });
    expect(lines.map((l) => l.callId)).toEqual(['c1', 'c2']);
  });
});
