/**
 * CPU per REGISTER of the signalling node's two REGISTER paths, in one process: the registrar's
 * fast path (answered from the datagram's text) and the generic path (parser, transaction layer,
 * node), with digest auth over 10,000 users. Each REGISTER enters where a received datagram
 * enters (`TransportLayer.inject`) and its answer leaves through the node's real UDP socket to a
 * sink socket, so the figure includes the send but not the receive. A round is the challenge
 * (REGISTER -> 401) for N users, then the authenticated REGISTER (-> 200) for the same users;
 * the credentials are computed between the two, outside the timing. Rounds alternate between
 * the paths. This measures the code path; the SIPp figure against Kamailio is
 * `bench/signalling.bench.ts --only register --generic-register`.
 *
 * `--no-send`: the answers are kept instead of sent (no syscall, no sink), so the figure is the
 * JavaScript alone; on a shared machine its round-to-round spread is a few per cent, against
 * 10-20 % with the sends, which is what tells apart two versions of the path.
 *
 *   node --import tsx bench/register-path.bench.ts [--n 20000] [--rounds 3] [--no-send]
 */
import dgram from 'node:dgram';
import { SignallingNode } from '../src/signalling/signalling-node.js';
import { buildAuthorization } from '../src/sip/auth/digest.js';
import type { Source } from '../src/sip/transport/types.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const N = Number(arg('--n') ?? 20_000);
const ROUNDS = Number(arg('--rounds') ?? 3);
const NO_SEND = process.argv.includes('--no-send');
const DOMAIN = 'bench.test';
const USERS = 10_000;
const user = (i: number) => `u${String(i % USERS).padStart(5, '0')}`;

const sink = dgram.createSocket('udp4');
await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
sink.setRecvBufferSize(4 << 20);
const sinkPort = sink.address().port;
let received: Buffer[] = [];
sink.on('message', (m) => received.push(m));

async function startNode(fastRegister: boolean): Promise<{ node: SignallingNode; source: Source }> {
  const node = new SignallingNode({
    listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }],
    domains: [DOMAIN],
    auth: { enabled: true, realm: DOMAIN, algorithms: ['MD5'], maxFailures: 1_000_000 },
    users: { lookup: (u) => (/^u\d{5}$/.test(u) ? { username: u, password: `p-${u}` } : undefined) },
    fastRegister,
  });
  const lp = (await node.start())[0]!;
  if (NO_SEND) node.transport.transmit = (data: Buffer) => void received.push(data);
  return { node, source: { transport: 'udp', address: '127.0.0.1', port: sinkPort, localAddress: lp.address, localPort: lp.port } };
}

let round = 0;
function register(i: number, cseq: number, authorization?: string): Buffer {
  return Buffer.from(
    `REGISTER sip:${DOMAIN} SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP 127.0.0.1:${sinkPort};branch=z9hG4bK-${round}-${i}-${cseq};rport\r\n` +
      `From: <sip:${user(i)}@${DOMAIN}>;tag=${round}R${i}\r\n` +
      `To: <sip:${user(i)}@${DOMAIN}>\r\n` +
      `Call-ID: ${round}-${i}@bench\r\n` +
      `CSeq: ${cseq} REGISTER\r\n` +
      `Contact: <sip:${user(i)}@127.0.0.1:${sinkPort}>\r\n` +
      (authorization ? `Authorization: ${authorization}\r\n` : '') +
      'Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n',
    'latin1',
  );
}

async function waitAnswers(n: number): Promise<void> {
  const until = Date.now() + 30_000;
  while (received.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  if (received.length < n) throw new Error(`only ${received.length} of ${n} answers`);
}

/**
 * Injects the requests in batches of 50 (as datagrams arrive in one turn of the event loop), at
 * most 500 unanswered (the sink's socket buffer would drop answers), and returns CPU µs per
 * request, the sink's reading included.
 */
async function timed(node: SignallingNode, source: Source, reqs: Buffer[]): Promise<number> {
  received = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < reqs.length; i += 50) {
    for (let j = i; j < Math.min(i + 50, reqs.length); j++) node.transport.inject(reqs[j]!, source);
    do await new Promise((r) => setImmediate(r));
    while (i - received.length > 500);
  }
  await waitAnswers(reqs.length);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / reqs.length;
}

async function measure(side: { node: SignallingNode; source: Source }): Promise<{ challenge: number; authenticated: number }> {
  round++;
  const first = Array.from({ length: N }, (_, i) => register(i, 1));
  const challenge = await timed(side.node, side.source, first);
  const status = (b: Buffer) => Number(b.toString('latin1', 8, 11));
  if (!received.every((b) => status(b) === 401)) throw new Error('expected 401s');
  // The challenge of request i, found by its Call-ID; credentials computed outside the timing.
  const nonces = new Map<string, string>();
  for (const b of received) {
    const t = b.toString('latin1');
    nonces.set(/Call-ID: (\S+)/.exec(t)![1]!, /WWW-Authenticate: (.+)\r\n/.exec(t)![1]!);
  }
  const second = Array.from({ length: N }, (_, i) => {
    const ch = nonces.get(`${round}-${i}@bench`)!;
    const auth = buildAuthorization(ch, { username: user(i), password: `p-${user(i)}` }, 'REGISTER', `sip:${DOMAIN}`, 1);
    if (!auth.ok) throw new Error(auth.reason);
    return register(i, 2, auth.value);
  });
  const authenticated = await timed(side.node, side.source, second);
  if (!received.every((b) => status(b) === 200)) throw new Error(`expected 200s, got ${received.find((b) => status(b) !== 200)?.toString('latin1', 0, 40)}`);
  return { challenge, authenticated };
}

const fast = await startNode(true);
const generic = await startNode(false);
console.log(`REGISTER paths, in process: ${N} users' REGISTER -> 401 -> REGISTER -> 200 per round, ${ROUNDS} rounds alternating (first round is warm-up)${NO_SEND ? ', answers kept, not sent' : ''}`);
const results: Record<string, { challenge: number[]; authenticated: number[] }> = { fast: { challenge: [], authenticated: [] }, generic: { challenge: [], authenticated: [] } };
for (let r = 0; r <= ROUNDS; r++) {
  for (const [name, side] of [['fast', fast], ['generic', generic]] as const) {
    const m = await measure(side);
    if (r === 0) continue;
    results[name]!.challenge.push(m.challenge);
    results[name]!.authenticated.push(m.authenticated);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
for (const [name, r] of Object.entries(results)) {
  const c = med(r.challenge);
  const a = med(r.authenticated);
  console.log(`  ${name.padEnd(8)} CPU per REGISTER: challenge ${c.toFixed(1)} µs, authenticated ${a.toFixed(1)} µs, per registration (both) ${(c + a).toFixed(1)} µs  [rounds: ${r.challenge.map((x, i) => `${x.toFixed(0)}+${r.authenticated[i]!.toFixed(0)}`).join(', ')}]`);
}
const f = results['fast']!;
const g = results['generic']!;
console.log(`  fast/generic per registration: ${((med(f.challenge) + med(f.authenticated)) / (med(g.challenge) + med(g.authenticated))).toFixed(2)}`);
await fast.node.shutdown(0);
await generic.node.shutdown(0);
sink.close();
process.exit(0);
