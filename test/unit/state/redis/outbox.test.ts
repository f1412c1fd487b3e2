import { describe, expect, it } from 'vitest';
import { Outbox, type OutboxSink } from '../../../../src/state/redis/outbox.js';
import type { PipelineResult, RedisCommand } from '../../../../src/state/redis/redis-connection.js';
import { metricsRegistry } from '../../../../src/util/metrics.js';

function replyError(message: string): Error {
  const err = new Error(message);
  err.name = 'ReplyError';
  return err;
}

/** A sink that records what it applied; it can be down, fail pipelines, or hold them in flight. */
class FakeSink implements OutboxSink {
  ready = true;
  applied: string[] = [];
  batches: number[] = [];
  failPipelines = 0;
  replyFor: (cmd: RedisCommand) => Error | null = () => null;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;

  hold(): void {
    this.#gate = new Promise((r) => (this.#open = r));
  }

  release(): void {
    this.#gate = undefined;
    this.#open?.();
  }

  async exec(commands: RedisCommand[]): Promise<PipelineResult> {
    this.batches.push(commands.length);
    if (this.#gate) await this.#gate;
    if (!this.ready) throw new Error('connection lost');
    if (this.failPipelines > 0) {
      this.failPipelines--;
      throw new Error('timeout');
    }
    return commands.map((c) => {
      const err = this.replyFor(c);
      if (!err) this.applied.push(String(c[1]));
      return [err, 'OK'];
    });
  }
}

const set = (v: string): RedisCommand => ['set', v];
const tick = () => new Promise((r) => setTimeout(r, 5));

async function droppedMetric(name: string): Promise<number> {
  const m = await metricsRegistry.getSingleMetric('tandem_redis_outbox_dropped_total')!.get();
  return m.values.find((v) => v.labels.outbox === name)?.value ?? 0;
}

describe('Outbox', () => {
  it('sends writes pushed together in pipelines of batchSize, in order', async () => {
    const sink = new FakeSink();
    const o = new Outbox(sink, { batchSize: 4, name: 'batch' });
    for (let i = 0; i < 10; i++) o.push({ commands: [set(`w${i}`)] });
    await o.idle();
    expect(sink.batches).toEqual([4, 4, 2]);
    expect(sink.applied).toEqual(Array.from({ length: 10 }, (_, i) => `w${i}`));
    expect(o.stats.applied).toBe(10);
    await o.close();
  });

  it('holds writes while the sink is down and replays them in order when it returns', async () => {
    const sink = new FakeSink();
    sink.ready = false;
    const o = new Outbox(sink, { retryDelayMs: 10_000, name: 'replay' });
    for (let i = 0; i < 100; i++) o.push({ commands: [set(`w${i}`)] });
    await tick();
    expect(sink.applied).toEqual([]);
    expect(o.depth).toBe(100);
    sink.ready = true;
    o.kick();
    await o.idle();
    expect(sink.applied).toEqual(Array.from({ length: 100 }, (_, i) => `w${i}`));
    expect(o.stats.dropped).toBe(0);
    await o.close();
  });

  it('past maxEntries drops the oldest waiting writes and counts them', async () => {
    const sink = new FakeSink();
    sink.ready = false;
    const o = new Outbox(sink, { maxEntries: 10, retryDelayMs: 10_000, name: 'bound' });
    for (let i = 0; i < 15; i++) o.push({ commands: [set(`w${i}`)] });
    expect(o.depth).toBe(10);
    expect(o.stats.dropped).toBe(5);
    expect(await droppedMetric('bound')).toBe(5);
    sink.ready = true;
    o.kick();
    await o.idle();
    expect(sink.applied).toEqual(Array.from({ length: 10 }, (_, i) => `w${i + 5}`));
    await o.close();
  });

  it('counts writes in flight against the bound', async () => {
    const sink = new FakeSink();
    sink.hold();
    const o = new Outbox(sink, { maxEntries: 4, batchSize: 2, name: 'inflight' });
    o.push({ commands: [set('a')] });
    o.push({ commands: [set('b')] });
    await tick();
    expect(sink.batches).toEqual([2]);
    for (const v of ['c', 'd', 'e', 'f']) o.push({ commands: [set(v)] });
    expect(o.depth).toBe(4);
    expect(o.stats.dropped).toBe(2);
    sink.release();
    await o.idle();
    expect(sink.applied).toEqual(['a', 'b', 'e', 'f']);
    await o.close();
  });

  it('a write with the key of a waiting one replaces it in place', async () => {
    const sink = new FakeSink();
    sink.ready = false;
    const o = new Outbox(sink, { maxEntries: 2, retryDelayMs: 10_000, name: 'coalesce' });
    o.push({ key: 'k1', commands: [set('k1=v1')] });
    o.push({ key: 'k2', commands: [set('k2=v1')] });
    o.push({ key: 'k1', commands: [set('k1=v2')] });
    expect(o.depth).toBe(2);
    expect(o.stats.dropped).toBe(0);
    expect(o.stats.replaced).toBe(1);
    sink.ready = true;
    o.kick();
    await o.idle();
    expect(sink.applied).toEqual(['k1=v2', 'k2=v1']);
    await o.close();
  });

  it('sends a failed pipeline again, whole, ahead of later writes', async () => {
    const sink = new FakeSink();
    sink.failPipelines = 2;
    const o = new Outbox(sink, { retryDelayMs: 1, name: 'retry' });
    o.push({ commands: [set('a'), set('a2')] });
    o.push({ commands: [set('b')] });
    await tick();
    o.push({ commands: [set('c')] });
    await o.idle();
    expect(sink.applied).toEqual(['a', 'a2', 'b', 'c']);
    expect(o.stats.failedBatches).toBe(2);
    await o.close();
  });

  it('a write sent again does not overwrite a newer one for the same key', async () => {
    const sink = new FakeSink();
    sink.hold();
    sink.failPipelines = 1;
    const o = new Outbox(sink, { retryDelayMs: 1, name: 'newer' });
    o.push({ key: 'k', commands: [set('k=v1')] });
    await tick();
    o.push({ key: 'k', commands: [set('k=v2')] });
    sink.release();
    await o.idle();
    expect(sink.applied).toEqual(['k=v2']);
    await o.close();
  });

  it('retries transient error replies and drops (and counts) refused writes', async () => {
    const sink = new FakeSink();
    let readonlyLeft = 2;
    sink.replyFor = (c) => {
      if (c[1] === 'r' && readonlyLeft-- > 0) return replyError("READONLY You can't write against a read only replica.");
      if (c[1] === 'bad') return replyError('WRONGTYPE Operation against a key holding the wrong kind of value');
      return null;
    };
    const o = new Outbox(sink, { retryDelayMs: 1, name: 'errors' });
    const seen: string[] = [];
    o.push({ commands: [set('r')], onApplied: (rs) => seen.push(`r:${rs[0]![0] === null}`) });
    o.push({ commands: [set('bad')], onApplied: (rs) => seen.push(`bad:${rs[0]![0] === null}`) });
    o.push({ commands: [set('ok')] });
    await o.idle();
    expect(sink.applied).toEqual(['ok', 'r']);
    expect(seen.sort()).toEqual(['bad:false', 'r:true']);
    expect(o.stats.rejected).toBe(1);
    expect(o.stats.applied).toBe(2);
    await o.close();
  });

  it('close() waits for the writes held, up to its timeout, and reports what was left', async () => {
    const sink = new FakeSink();
    const o = new Outbox(sink, { name: 'close' });
    o.push({ commands: [set('a')] });
    expect(await o.close(1000)).toBe(0);
    expect(sink.applied).toEqual(['a']);
    expect(o.push({ commands: [set('late')] })).toBe(false);

    const down = new FakeSink();
    down.ready = false;
    const o2 = new Outbox(down, { name: 'close-down' });
    o2.push({ commands: [set('x')] });
    o2.push({ commands: [set('y')] });
    expect(await o2.close(20)).toBe(2);
    await o2.idle();
  });
});
