/**
 * The registrar's fast path (REGISTER answered from the datagram's text) against the generic path
 * (parser, transaction layer, node): two signalling nodes on real UDP sockets, one with the fast
 * path and one without, get the same REGISTERs and must give the same answers, header for header
 * (the To-tag, the nonce and the Date aside). Forged and odd REGISTERs are in the list: what the
 * fast path does not take must still get the generic path's answer.
 */
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignallingNode } from '../../../src/signalling/signalling-node.js';
import { buildAuthorization } from '../../../src/sip/auth/digest.js';
import { parseMessage } from '../../../src/sip/message/parser.js';
import { SipResponse } from '../../../src/sip/message/sip-message.js';
import { metricsRegistry } from '../../../src/util/metrics.js';

const DOMAIN = 'fast.test';
const USERS: Record<string, string> = { alice: 'alice-pw', bob: 'bob-pw' };

interface Side {
  node: SignallingNode;
  port: number;
}

let fast: Side;
let generic: Side;
let client: dgram.Socket;
let clientPort: number;

async function side(fastRegister: boolean): Promise<Side> {
  const node = new SignallingNode({
    listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }],
    domains: [DOMAIN],
    auth: { enabled: true, realm: DOMAIN, secret: 'same-secret-on-both', maxFailures: 3, blockSec: 60 },
    users: { lookup: (u) => (USERS[u] !== undefined ? { username: u, password: USERS[u] } : undefined) },
    fastRegister,
  });
  const lps = await node.start();
  return { node, port: lps[0]!.port };
}

beforeAll(async () => {
  fast = await side(true);
  generic = await side(false);
  client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  clientPort = client.address().port;
});

afterAll(async () => {
  client.close();
  await fast.node.shutdown(0);
  await generic.node.shutdown(0);
});

/** Sends one datagram to a node and waits for its answer (undefined after 400 ms). */
function exchange(port: number, text: string): Promise<SipResponse | undefined> {
  return new Promise((resolve) => {
    const onMessage = (m: Buffer) => {
      const r = parseMessage(m);
      if (r.ok && r.value instanceof SipResponse) {
        clearTimeout(timer);
        client.off('message', onMessage);
        resolve(r.value);
      }
    };
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      resolve(undefined);
    }, 400);
    client.on('message', onMessage);
    client.send(Buffer.from(text.replace(/\n/g, '\r\n')), port, '127.0.0.1');
  });
}

interface Reg {
  user?: string;
  toUser?: string;
  callId: string;
  cseq: number;
  contact?: string | undefined;
  expires?: number;
  via?: string;
  extra?: string[];
  ruri?: string;
  authorization?: string;
  body?: string;
}

function register(r: Reg): string {
  const user = r.user ?? 'alice';
  const lines = [
    `REGISTER ${r.ruri ?? `sip:${DOMAIN}`} SIP/2.0`,
    `Via: ${r.via ?? `SIP/2.0/UDP 127.0.0.1:${clientPort};rport;branch=z9hG4bK-${r.callId}-${r.cseq}`}`,
    'Max-Forwards: 70',
    `From: <sip:${user}@${DOMAIN}>;tag=f${r.callId}`,
    `To: <sip:${r.toUser ?? user}@${DOMAIN}>`,
    `Call-ID: ${r.callId}`,
    `CSeq: ${r.cseq} REGISTER`,
  ];
  if (r.contact !== undefined) lines.push(`Contact: ${r.contact}`);
  if (r.expires !== undefined) lines.push(`Expires: ${r.expires}`);
  if (r.authorization) lines.push(`Authorization: ${r.authorization}`);
  lines.push(...(r.extra ?? []));
  lines.push(`Content-Length: ${r.body?.length ?? 0}`, '', r.body ?? '');
  return lines.join('\n');
}

/** The answer with what legitimately differs between two nodes blanked out. */
function comparable(res: SipResponse | undefined): string {
  if (!res) return 'no answer';
  const lines = [`${res.status} ${res.reason}`];
  for (const e of res.headers.entries) {
    let v = e.value;
    if (e.key === 'to') v = v.replace(/;tag=[^;]+/, ';tag=*');
    if (e.key === 'date') v = '*';
    if (e.key === 'www-authenticate' || e.key === 'proxy-authenticate') v = v.replace(/nonce="[^"]*"/, 'nonce="*"').replace(/opaque="[^"]*"/, 'opaque="*"');
    lines.push(`${e.name}: ${v}`);
  }
  return lines.join('\n');
}

async function fastPathCount(path: 'answered' | 'generic'): Promise<number> {
  const m = await metricsRegistry.getSingleMetric('tandem_registrar_fast_path_total')?.get();
  return m?.values.find((v) => v.labels['path'] === path)?.value ?? 0;
}

/**
 * Sends `r` to both nodes, first without credentials when `password` is given and then with
 * credentials answering each node's own challenge; returns both final answers, compared.
 */
async function both(r: Reg, password?: string, nc = 1): Promise<{ fast: SipResponse | undefined; generic: SipResponse | undefined }> {
  const out: { fast?: SipResponse | undefined; generic?: SipResponse | undefined } = {};
  for (const [name, s] of [['fast', fast], ['generic', generic]] as const) {
    let req = r;
    if (password !== undefined) {
      const ch = await exchange(s.port, register({ ...r, callId: `${r.callId}`, cseq: r.cseq }));
      expect(ch?.status).toBe(401);
      const auth = buildAuthorization(ch!.get('WWW-Authenticate')!, { username: r.user ?? 'alice', password }, 'REGISTER', r.ruri ?? `sip:${DOMAIN}`, nc);
      if (!auth.ok) throw new Error(auth.reason);
      req = { ...r, cseq: r.cseq + 1, authorization: auth.value };
    }
    out[name] = await exchange(s.port, register(req));
  }
  expect(comparable(out.fast)).toBe(comparable(out.generic));
  return out as { fast: SipResponse | undefined; generic: SipResponse | undefined };
}

describe('REGISTER fast path answers as the generic path does', () => {
  it('challenge, registration, refresh, query, removal', async () => {
    const answeredBefore = await fastPathCount('answered');
    const challenge = await both({ callId: 'c1', cseq: 1, contact: `<sip:alice@127.0.0.1:${clientPort}>`, expires: 600 });
    expect(challenge.fast?.status).toBe(401);
    expect(challenge.fast?.get('WWW-Authenticate')).toMatch(/^Digest realm="fast.test"/);

    const ok = await both({ callId: 'c2', cseq: 1, contact: `<sip:alice@127.0.0.1:${clientPort}>;q=0.5`, expires: 600 }, 'alice-pw');
    expect(ok.fast?.status).toBe(200);
    expect(ok.fast?.get('Contact')).toMatch(/^<sip:alice@127\.0\.0\.1:\d+>;expires=600;q=0\.5$/);
    expect(ok.fast?.topVia.rport).toBe(clientPort);
    expect(ok.fast?.topVia.received).toBe('127.0.0.1');

    // a refresh with the Contact's own expires and another contact added
    const refresh = await both({ callId: 'c2', cseq: 3, contact: `<sip:alice@127.0.0.1:${clientPort}>;expires=300, <sip:alice@192.0.2.10>`, expires: 900 }, 'alice-pw', 2);
    expect(refresh.fast?.status).toBe(200);
    expect(refresh.fast?.getAll('Contact')).toHaveLength(2);

    const query = await both({ callId: 'c2', cseq: 5 }, 'alice-pw', 3);
    expect(query.fast?.getAll('Contact')).toHaveLength(2);

    const removeAll = await both({ callId: 'c2', cseq: 7, contact: '*', expires: 0 }, 'alice-pw', 4);
    expect(removeAll.fast?.status).toBe(200);
    expect(removeAll.fast?.getAll('Contact')).toHaveLength(0);
    // Every exchange above was taken by the fast path on the fast node (two per step but the first).
    expect((await fastPathCount('answered')) - answeredBefore).toBe(9);
    // And both nodes hold the same bindings.
    expect(await fast.node.location.getBindings(`sip:alice@${DOMAIN}`)).toEqual([]);
  });

  it('the registrar refusals: AOR of another user, too brief, bad q, bad Expires, wildcard misuse, out of order', async () => {
    expect((await both({ callId: 'r1', cseq: 1, toUser: 'bob', contact: '<sip:x@192.0.2.1>' }, 'alice-pw')).fast?.status).toBe(403);
    const brief = await both({ callId: 'r2', cseq: 1, contact: '<sip:alice@192.0.2.1>', expires: 10 }, 'alice-pw');
    expect(brief.fast?.status).toBe(423);
    expect(brief.fast?.get('Min-Expires')).toBe('60');
    expect((await both({ callId: 'r3', cseq: 1, contact: '<sip:alice@192.0.2.1>;q=7' }, 'alice-pw')).fast?.status).toBe(400);
    expect((await both({ callId: 'r4', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Expires: soon'] }, 'alice-pw')).fast?.status).toBe(400);
    expect((await both({ callId: 'r5', cseq: 1, contact: '*', expires: 60 }, 'alice-pw')).fast?.status).toBe(400);
    expect((await both({ callId: 'r6', cseq: 10, contact: '<sip:alice@192.0.2.6>', expires: 60 }, 'alice-pw')).fast?.status).toBe(200);
    expect((await both({ callId: 'r6', cseq: 3, contact: '<sip:alice@192.0.2.6>', expires: 60 }, 'alice-pw', 2)).fast?.status).toBe(400);
    expect((await both({ callId: 'r7', cseq: 1, toUser: 'nobody', ruri: 'sip:elsewhere.test', contact: '<sip:a@192.0.2.1>' })).fast?.status).toBeDefined();
  });

  it('forged credentials change nothing on either path: wrong password, replayed nonce count, unknown user', async () => {
    const wrong = await both({ user: 'bob', callId: 'f1', cseq: 1, contact: '<sip:bob@203.0.113.66>' }, 'not-bobs');
    expect(wrong.fast?.status).toBe(401);
    // A replay of a used nonce count with a different Contact (an attacker who saw the REGISTER):
    // challenged again, the binding untouched.
    for (const s of [fast, generic]) {
      const ch = await exchange(s.port, register({ user: 'bob', callId: 'f2', cseq: 1 }));
      const auth = buildAuthorization(ch!.get('WWW-Authenticate')!, { username: 'bob', password: 'bob-pw' }, 'REGISTER', `sip:${DOMAIN}`, 1);
      if (!auth.ok) throw new Error(auth.reason);
      expect((await exchange(s.port, register({ user: 'bob', callId: 'f2', cseq: 2, contact: '<sip:bob@192.0.2.20>', expires: 600, authorization: auth.value })))?.status).toBe(200);
      const replay = await exchange(s.port, register({ user: 'bob', callId: 'f3', cseq: 9, contact: '<sip:bob@203.0.113.66>', expires: 600, authorization: auth.value }));
      expect(replay?.status).toBe(401);
      // the genuine retransmission gets its 200 again, and nothing changes
      const again = await exchange(s.port, register({ user: 'bob', callId: 'f2', cseq: 2, contact: '<sip:bob@192.0.2.20>', expires: 600, authorization: auth.value }));
      expect(again?.status).toBe(200);
      const bindings = await s.node.location.getBindings(`sip:bob@${DOMAIN}`);
      expect(bindings.map((b) => b.contact)).toEqual(['sip:bob@192.0.2.20']);
    }
    expect((await both({ user: 'mallory', callId: 'f4', cseq: 1, contact: '<sip:m@203.0.113.66>' }, 'guess')).fast?.status).toBe(401);
  });

  it('what the fast path leaves alone gets the generic answer', async () => {
    const genericBefore = await fastPathCount('generic');
    const odd: Reg[] = [
      { callId: 'o1', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Route: <sip:127.0.0.1;lr>'] },
      { callId: 'o2', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Path: <sip:edge.test;lr>', 'Supported: path'] },
      { callId: 'o3', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Require: gruu'] },
      { callId: 'o4', cseq: 1, contact: '<sip:alice@192.0.2.1>', body: 'hello' },
      { callId: 'o5', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Max-Forwards: 0'] },
      { callId: 'o6', cseq: 1, contact: '<sip:alice@192.0.2.1>', via: `SIP/2.0/UDP ua.example:${clientPort};branch=z9hG4bK-o6` },
      { callId: 'o7', cseq: 1, contact: '<sip:alice@192.0.2.1>', via: `SIP/2.0/UDP 127.0.0.1:${clientPort};rport=${clientPort};branch=z9hG4bK-o7` },
      { callId: 'o8', cseq: 1, contact: '<sip:alice@192.0.2.1>', ruri: `sip:${DOMAIN}?x=y` },
      { callId: 'o9', cseq: 1, contact: '<sip:alice@192.0.2.1', expires: 60 },
      { callId: 'o10', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Contact: <sip:alice@192.0.2.2>'] },
      { callId: 'o11', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Call-ID: twice'] },
    ];
    for (const r of odd) await both(r);
    // the same past the digest check, where the registrar reads them (Path returned, Require refused)
    const paths = await both({ callId: 'o21', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Path: <sip:edge.test;lr>', 'Supported: path'] }, 'alice-pw');
    expect(paths.fast?.get('Path')).toBe('<sip:edge.test;lr>');
    expect((await both({ callId: 'o22', cseq: 1, contact: '<sip:alice@192.0.2.1>', extra: ['Require: gruu'] }, 'alice-pw')).fast?.status).toBe(420);
    // a sent-by that is a name (received added, no rport), and an rport already filled in
    for (const via of [`SIP/2.0/UDP ua.example:${clientPort};branch=z9hG4bK-o23`, `SIP/2.0/UDP 127.0.0.1:${clientPort};rport=${clientPort};branch=z9hG4bK-o24`]) {
      const res = await both({ callId: `o23${via.length}`, cseq: 1, contact: '<sip:alice@192.0.2.1>', via }, 'alice-pw');
      expect(res.fast?.status).toBe(200);
    }
    // o6 is taken (a Via without rport from another address is the common case); the rest are not
    expect((await fastPathCount('generic')) - genericBefore).toBeGreaterThanOrEqual(odd.length - 2);
    // garbled and truncated datagrams starting like a REGISTER: no crash, the next one is answered
    for (const junk of ['R', 'REG', 'REGISTER ', 'REGISTER sip:fast.test SIP/2.0\r\nVia: SIP/2.0/UDP']) {
      client.send(Buffer.from(junk, 'latin1'), fast.port, '127.0.0.1');
      client.send(Buffer.from(junk, 'latin1'), generic.port, '127.0.0.1');
    }
    expect((await both({ callId: 'o30', cseq: 1, contact: '<sip:alice@192.0.2.1>' })).fast?.status).toBe(401);
    // compact header names are the plain form too
    const compact = register({ callId: 'p1', cseq: 1, contact: '<sip:alice@192.0.2.1>' })
      .replace(/^Via:/m, 'v:')
      .replace(/^From:/m, 'f:')
      .replace(/^To:/m, 't:')
      .replace(/^Call-ID:/m, 'i:')
      .replace(/^Contact:/m, 'm:');
    const [a, b] = [await exchange(fast.port, compact), await exchange(generic.port, compact)];
    expect(comparable(a)).toBe(comparable(b));
  });

  it('a blocked source is dropped by both paths', async () => {
    // Wrong passwords until each node blocks the source (maxFailures), then even a plain REGISTER
    // from it gets no answer, on either path.
    for (const s of [fast, generic]) {
      let blocked = false;
      for (let i = 0; i < 10 && !blocked; i++) {
        const ch = await exchange(s.port, register({ user: 'bob', callId: `b${i}`, cseq: 1 }));
        if (!ch) {
          blocked = true;
          break;
        }
        const auth = buildAuthorization(ch.get('WWW-Authenticate')!, { username: 'bob', password: 'not-bobs' }, 'REGISTER', `sip:${DOMAIN}`, 1);
        if (!auth.ok) throw new Error(auth.reason);
        blocked = (await exchange(s.port, register({ user: 'bob', callId: `b${i}`, cseq: 2, contact: '<sip:bob@203.0.113.66>', authorization: auth.value }))) === undefined;
      }
      expect(blocked).toBe(true);
      expect(await exchange(s.port, register({ user: 'alice', callId: 'b-after', cseq: 1, contact: '<sip:alice@192.0.2.1>' }))).toBeUndefined();
    }
  });
});
