import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../../src/sip/message/parser.js';
import type { SipRequest } from '../../../src/sip/message/sip-message.js';
import { Registrar, registerFactsOf } from '../../../src/signalling/registrar/registrar.js';
import { MemoryLocationStore } from '../../../src/state/memory/memory-location-store.js';
import type { Source } from '../../../src/sip/transport/types.js';
import type { SyncLocationStore } from '../../../src/state/store.js';

const src: Source = { transport: 'udp', address: '192.0.2.7', port: 40000, localAddress: '127.0.0.1', localPort: 5060 };

function reg(o: { callId?: string; cseq?: number; contacts?: string[]; expires?: number; extra?: string[]; to?: string }): SipRequest {
  const lines = [
    'REGISTER sip:d.test SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bKx',
    'Max-Forwards: 70',
    `From: <sip:alice@d.test>;tag=1`,
    `To: <${o.to ?? 'sip:alice@d.test'}>`,
    `Call-ID: ${o.callId ?? 'c1'}`,
    `CSeq: ${o.cseq ?? 1} REGISTER`,
    ...(o.contacts ?? []).map((c) => `Contact: ${c}`),
    ...(o.expires !== undefined ? [`Expires: ${o.expires}`] : []),
    ...(o.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ];
  const r = parseMessage(Buffer.from(lines.join('\r\n')));
  if (!r.ok) throw new Error(r.reason);
  return r.value as SipRequest;
}

function setup() {
  let now = 1_000_000;
  const store = new MemoryLocationStore({ now: () => now, sweepIntervalMs: 3_600_000 });
  const r = new Registrar({ store, isLocalDomain: (h) => h === 'd.test', minExpiresSec: 60, maxExpiresSec: 3600, maxContactsPerAor: 2, now: () => now });
  return { r, store, advance: (ms: number) => (now += ms) };
}

describe('Registrar (RFC 3261 §10.3)', () => {
  it('adds, lists with remaining expiry, refreshes and removes bindings', async () => {
    const { r, store, advance } = setup();
    let res = await r.handle(reg({ contacts: ['<sip:alice@192.0.2.7:5060>;q=0.5'], expires: 600 }), src);
    expect(res.status).toBe(200);
    expect(res.getAll('Contact')).toEqual(['<sip:alice@192.0.2.7:5060>;expires=600;q=0.5']);
    expect(res.get('Date')).toBeDefined();
    advance(100_000);
    res = await r.handle(reg({ cseq: 2 }), src); // query
    expect(res.getAll('Contact')[0]).toContain('expires=500');
    const b = await store.getBindings('sip:alice@d.test');
    expect(b[0]?.received).toMatchObject({ address: '192.0.2.7', port: 40000 });
    res = await r.handle(reg({ cseq: 3, contacts: ['<sip:alice@192.0.2.7:5060>;expires=0'] }), src);
    expect(res.getAll('Contact')).toEqual([]);
    expect(store.size()).toBe(0);
  });

  it('423 with Min-Expires; longer expiry is capped; wildcard needs Expires 0', async () => {
    const { r } = setup();
    const brief = await r.handle(reg({ contacts: ['<sip:a@h>'], expires: 30 }), src);
    expect(brief.status).toBe(423);
    expect(brief.get('Min-Expires')).toBe('60');
    const long = await r.handle(reg({ contacts: ['<sip:a@h>'], expires: 99999 }), src);
    expect(long.getAll('Contact')[0]).toContain('expires=3600');
    expect((await r.handle(reg({ cseq: 2, contacts: ['*'], expires: 5 }), src)).status).toBe(400);
    expect((await r.handle(reg({ cseq: 3, contacts: ['*'], expires: 0 }), src)).status).toBe(200);
  });

  it('rejects an out-of-order CSeq for the same Call-ID, accepts a new Call-ID', async () => {
    const { r } = setup();
    await r.handle(reg({ cseq: 5, contacts: ['<sip:a@h>'], expires: 600 }), src);
    // The same CSeq at once is a retransmission (see below); a lower one is out of order.
    expect((await r.handle(reg({ cseq: 5, contacts: ['<sip:a@h>'], expires: 600 }), src)).status).toBe(200);
    expect((await r.handle(reg({ cseq: 4, contacts: ['<sip:a@h>'], expires: 600 }), src)).status).toBe(400);
    expect((await r.handle(reg({ callId: 'other', cseq: 1, contacts: ['<sip:a@h>'], expires: 600 }), src)).status).toBe(200);
  });

  it('limits contacts per AOR, checks the AOR against the authenticated user, stores Path', async () => {
    const { r, store } = setup();
    expect((await r.handle(reg({ contacts: ['<sip:a@h1>', '<sip:a@h2>'], expires: 600 }), src)).status).toBe(200);
    expect((await r.handle(reg({ cseq: 2, contacts: ['<sip:a@h3>'], expires: 600 }), src)).status).toBe(403);
    expect((await r.handle(reg({ cseq: 3, contacts: ['<sip:a@h1>'], expires: 600 }), src, 'bob')).status).toBe(403);
    const withPath = await r.handle(reg({ callId: 'p', to: 'sip:bob@d.test', contacts: ['<sip:b@h>'], expires: 600, extra: ['Path: <sip:edge.d.test;lr>', 'Supported: path'] }), src, 'bob');
    expect(withPath.status).toBe(200);
    expect(withPath.get('Path')).toBe('<sip:edge.d.test;lr>');
    expect((await store.getBindings('sip:bob@d.test'))[0]?.path).toEqual(['<sip:edge.d.test;lr>']);
    expect((await r.handle(reg({ to: 'sip:x@elsewhere.test', contacts: ['<sip:b@h>'] }), src)).status).toBe(404);
  });
});

describe('Registrar: REGISTER answered without a server transaction', () => {
  it('a retransmission (same Call-ID and CSeq, within 64*T1) gets the 200 again and changes nothing; later, it is out of order', async () => {
    const { r, store, advance } = setup();
    const first = await r.handle(reg({ cseq: 5, contacts: ['<sip:alice@192.0.2.7:5060>'], expires: 600 }), src);
    expect(first.status).toBe(200);
    const before = await store.getBindings('sip:alice@d.test');
    advance(1_000);
    const again = await r.handle(reg({ cseq: 5, contacts: ['<sip:alice@192.0.2.7:5060>'], expires: 600 }), src);
    expect(again.status).toBe(200);
    expect(await store.getBindings('sip:alice@d.test')).toEqual(before);
    // answerRetransmission (the digest path for a reused nonce count): only for the AOR's owner
    expect((await r.answerRetransmission(registerFactsOf(reg({ cseq: 5, contacts: ['<sip:x@203.0.113.9>'] })), 'alice'))?.status).toBe(200);
    expect(await r.answerRetransmission(registerFactsOf(reg({ cseq: 5 })), 'bob')).toBeUndefined();
    expect(await r.answerRetransmission(registerFactsOf(reg({ cseq: 6 })), 'alice')).toBeUndefined();
    expect(await store.getBindings('sip:alice@d.test')).toEqual(before);
    advance(40_000);
    expect((await r.handle(reg({ cseq: 5, contacts: ['<sip:alice@192.0.2.7:5060>'], expires: 600 }), src)).status).toBe(400);
    expect((await r.handle(reg({ cseq: 4, contacts: ['<sip:alice@192.0.2.7:5060>'], expires: 600 }), src)).status).toBe(400);
  });
});

describe('Registrar.decideNow (in-process store, no promise)', () => {
  const sequence = (): SipRequest[] => [
    reg({ contacts: ['<sip:alice@192.0.2.7:5060>;q=0.5'], expires: 600 }),
    reg({ cseq: 1, contacts: ['<sip:alice@192.0.2.7:5060>;q=0.5'], expires: 600 }), // retransmission
    reg({ cseq: 2, contacts: ['<sip:alice@192.0.2.8:5060>', '<sip:alice@192.0.2.7:5060>;expires=900'] }),
    reg({ cseq: 2, contacts: ['<sip:alice@192.0.2.9:5060>'] }), // out of order
    reg({ cseq: 3, contacts: ['<sip:alice@192.0.2.9:5060>'] }), // one too many
    reg({ cseq: 4, contacts: ['<sip:a@h>'], expires: 30 }), // too brief
    reg({ cseq: 5, contacts: ['<sip:a@h>;q=7'] }), // bad q
    reg({ cseq: 6, to: 'sip:bob@d.test', contacts: ['<sip:bob@h>'] }), // another user's AOR
    reg({ cseq: 7 }), // query
    reg({ cseq: 8, contacts: ['*'] }), // wildcard without Expires: 0
    reg({ cseq: 9, contacts: ['*'], expires: 0 }),
    reg({ cseq: 10 }),
  ];

  it('answers a sequence of REGISTERs as decide does, and leaves the same bindings', async () => {
    const now = setup();
    const later = setup();
    for (const req of sequence()) {
      const sync = now.r.decideNow(registerFactsOf(req), src, 'alice');
      const async = await later.r.decide(registerFactsOf(req), src, 'alice');
      expect(sync).toBeDefined();
      expect(sync).toEqual(async);
      expect(now.store.getBindingsSync('sip:alice@d.test')).toEqual(later.store.getBindingsSync('sip:alice@d.test'));
      now.advance(1000);
      later.advance(1000);
    }
  });

  it('says undefined when the store is outside the process, or while a REGISTER of the AOR is being written', async () => {
    const inner = new MemoryLocationStore({ sweepIntervalMs: 3_600_000 });
    let release!: () => void;
    const gate = new Promise<void>((done) => (release = done));
    // A store answering only with promises (as Redis does), whose first write waits for the gate.
    const remote = {
      getBindings: (aor: string) => inner.getBindings(aor),
      setBindings: async (aor: string, b: Parameters<typeof inner.setBindings>[1]) => {
        await gate;
        await inner.setBindings(aor, b);
      },
      size: () => inner.size(),
      aorCount: () => inner.aorCount(),
      onExpired: () => undefined,
      close: async () => undefined,
    };
    const viaPromises = new Registrar({ store: remote, isLocalDomain: (h) => h === 'd.test' });
    expect(viaPromises.decideNow(registerFactsOf(reg({ contacts: ['<sip:a@h>'] })), src)).toBeUndefined();

    // The in-process registrar with an AOR lock held: a write through `decide` on a store that waits.
    const inProcess: SyncLocationStore = { ...remote, getBindingsSync: (aor) => inner.getBindingsSync(aor), setBindingsSync: (aor, b) => inner.setBindingsSync(aor, b) };
    const held = new Registrar({ store: inProcess, isLocalDomain: (h) => h === 'd.test' });
    const first = held.decide(registerFactsOf(reg({ contacts: ['<sip:alice@192.0.2.7:5060>'] })), src);
    expect(held.decideNow(registerFactsOf(reg({ cseq: 2, contacts: ['<sip:alice@192.0.2.8:5060>'] })), src)).toBeUndefined();
    // Another AOR is not held up.
    expect(held.decideNow(registerFactsOf(reg({ to: 'sip:bob@d.test', contacts: ['<sip:bob@h>'] })), src)?.status).toBe(200);
    release();
    expect((await first).status).toBe(200);
    expect(held.decideNow(registerFactsOf(reg({ cseq: 2, contacts: ['<sip:alice@192.0.2.8:5060>'] })), src)?.headers.filter(([n]) => n === 'Contact')).toHaveLength(2);
  });
});
