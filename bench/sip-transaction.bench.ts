// SIP transaction layer benchmark.
//   node --import tsx --expose-gc bench/sip-transaction.bench.ts [count] [udpSeconds] [sections]
// sections: comma list of layer,memory,udp (default all three).
// 1. Layer alone (no sockets, fake clock): the same cycle with messages parsed and serialized
//    (and their top Via / CSeq read) outside the timed sections, so only transaction work is timed (key, map, state machine,
//    timers, hand-off to the transport): sendRequest, receive(request) -> server tx, respond,
//    receive(response) -> match + complete.
// 2. In memory (no sockets, fake clock so no retransmission fires): create 100,000 concurrent
//    non-INVITE client transactions, deliver them to a server layer (100,000 server
//    transactions, all live at once), answer every one, match the responses back, retire all.
//    Includes serialize + parse + createResponse. Prints transactions/s per phase and memory
//    per live transaction.
// 3. Real UDP on 127.0.0.1: OPTIONS from a client layer to a server layer with N transactions
//    in flight; prints completed transactions/s.
// Each figure is given per wall-clock second and per CPU second of this process (the machine is
// shared: CPU time is the steadier figure when other processes compete for the cores).
// Bounded: the in-memory parts are fixed work, the UDP part stops after `udpSeconds` (default 5).
import { cpus } from 'node:os';
import { TimerWheel } from '../src/util/timer-wheel.js';
import { createRequest, createResponse } from '../src/sip/message/builders.js';
import { parseMessage } from '../src/sip/message/parser.js';
import { SipRequest, SipResponse } from '../src/sip/message/sip-message.js';
import { InMemoryNetwork, InMemoryTransport } from '../src/sip/transport/in-memory-transport.js';
import { TransportLayer } from '../src/sip/transport/transport-layer.js';
import type { Endpoint, Source } from '../src/sip/transport/types.js';
import { TransactionLayer } from '../src/sip/transaction/transaction-layer.js';
import type { ServerTransaction } from '../src/sip/transaction/types.js';

const N = Number(process.argv[2] ?? 100_000);
const UDP_SECONDS = Number(process.argv[3] ?? 5);
const SECTIONS = new Set((process.argv[4] ?? 'layer,memory,udp').split(','));
const gc = (globalThis as { gc?: () => void }).gc;

function mem(): number {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function rate(count: number, ms: number): string {
  return `${Math.round((count / ms) * 1000).toLocaleString('en-US')} tx/s`;
}

/** Wall and CPU time of a section. */
class Clock {
  #t0 = 0;
  #c0: NodeJS.CpuUsage = { user: 0, system: 0 };
  wallMs = 0;
  cpuMs = 0;
  start(): this {
    this.#t0 = performance.now();
    this.#c0 = process.cpuUsage();
    return this;
  }
  stop(): this {
    this.wallMs += performance.now() - this.#t0;
    const c = process.cpuUsage(this.#c0);
    this.cpuMs += (c.user + c.system) / 1000;
    return this;
  }
  add(o: Clock): this {
    this.wallMs += o.wallMs;
    this.cpuMs += o.cpuMs;
    return this;
  }
  line(count: number): string {
    return `${rate(count, this.wallMs).padStart(14)}  (${this.wallMs.toFixed(0)} ms) | ${rate(count, this.cpuMs).padStart(14)} per CPU s`;
  }
}

/**
 * Parses outside the timed sections and reads the typed getters the transaction layer uses
 * (top Via, CSeq), so their lazy parse — message-layer work, done by the transport's Via
 * stamping on a real request anyway — is not counted as transaction work.
 */
function parsed<T extends SipRequest | SipResponse>(data: Buffer): T {
  const r = parseMessage(data);
  if (!r.ok) throw new Error(`bench: unparsable message: ${r.reason}`);
  const m = r.value as T;
  void m.topVia.branch;
  void m.cseq.method;
  return m;
}

/** Transaction work only: messages are built, serialized and parsed outside the timed sections. */
async function layerAlone(): Promise<void> {
  const wheel = new TimerWheel({ manual: true });
  const net = new InMemoryNetwork();
  const a = new InMemoryTransport(net, '10.0.0.1', 5060);
  const b = new InMemoryTransport(net, '10.0.0.2', 5060);
  const uac = new TransactionLayer(a, { wheel });
  const uas = new TransactionLayer(b, { wheel });
  const target: Endpoint = { transport: 'udp', address: '10.0.0.2', port: 5060 };
  const held: Buffer[] = [];
  net.filter = (data) => {
    held.push(data);
    return false;
  };
  const pending: ServerTransaction[] = [];
  uas.setUser({ onRequest: (_req, tx) => tx && pending.push(tx) });
  let finals = 0;
  const handlers = { onFinal: () => void finals++ };
  // Parsed requests that already carry their Via (sendRequest then sends their bytes as they are).
  const requests: SipRequest[] = [];
  for (let i = 0; i < N; i++) {
    const built = createRequest({
      method: 'OPTIONS',
      uri: 'sip:bob@10.0.0.2',
      from: '<sip:alice@10.0.0.1>',
      to: '<sip:bob@10.0.0.2>',
      cseq: 1,
      via: a.viaValue(target, `z9hG4bK-bench-${i}`),
      headers: [['Accept', 'application/sdp']],
    });
    requests.push(parsed<SipRequest>(built.toBuffer()));
  }
  const send = new Clock().start();
  for (let i = 0; i < N; i++) uac.sendRequest(requests[i]!, target, handlers);
  send.stop();
  requests.length = 0;
  const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
  const inbound = held.map((d) => parsed<SipRequest>(d));
  held.length = 0;
  const recv = new Clock().start();
  for (let i = 0; i < inbound.length; i++) uas.receive(inbound[i]!, src);
  recv.stop();
  inbound.length = 0;
  const responses = pending.map((tx) => parsed<SipResponse>(createResponse(tx.request, 200).toBuffer()));
  const respond = new Clock().start();
  for (let i = 0; i < pending.length; i++) pending[i]!.respond(responses[i]!);
  respond.stop();
  pending.length = 0;
  responses.length = 0;
  const back = held.map((d) => parsed<SipResponse>(d));
  held.length = 0;
  const srcB: Source = { transport: 'udp', address: '10.0.0.2', port: 5060, localAddress: '10.0.0.1', localPort: 5060 };
  const match = new Clock().start();
  for (let i = 0; i < back.length; i++) uac.receive(back[i]!, srcB);
  match.stop();
  back.length = 0;
  const retire = new Clock().start();
  wheel.advance(64 * 500 + 10);
  retire.stop();
  const all = new Clock().add(send).add(recv).add(respond).add(match);
  console.log(`transaction layer alone, ${N.toLocaleString('en-US')} concurrent non-INVITE transactions (parse, serialize, Via/CSeq getters untimed)`);
  console.log(`  sendRequest (client tx + send):    ${send.line(N)}`);
  console.log(`  receive request -> server tx:      ${recv.line(N)}`);
  console.log(`  respond (final, Timer J):          ${respond.line(N)}`);
  console.log(`  receive response -> match, Timer K: ${match.line(N)}`);
  console.log(`  whole cycle:                       ${all.line(N)}`);
  console.log(`  retire all (timers K, J):          ${retire.wallMs.toFixed(0)} ms; finals ${finals.toLocaleString('en-US')}, left: ${uac.size + uas.size} tx, ${wheel.size} timers`);
  uac.close();
  uas.close();
}

const flush = () => new Promise<void>((r) => setImmediate(r));

async function inMemory(): Promise<void> {
  const wheel = new TimerWheel({ manual: true });
  const net = new InMemoryNetwork();
  const a = new InMemoryTransport(net, '10.0.0.1', 5060);
  const b = new InMemoryTransport(net, '10.0.0.2', 5060);
  const uac = new TransactionLayer(a, { wheel });
  const uas = new TransactionLayer(b, { wheel });
  const target: Endpoint = { transport: 'udp', address: '10.0.0.2', port: 5060 };
  // Hold the requests in the "network" so all client transactions are live at once.
  const held: Buffer[] = [];
  let hold = true;
  net.filter = (data) => {
    if (hold) held.push(data);
    return !hold;
  };
  const pending: ServerTransaction[] = [];
  uas.setUser({ onRequest: (_req, tx) => tx && pending.push(tx) });
  let finals = 0;
  const handlers = { onFinal: () => void finals++ };
  const requests: SipRequest[] = [];
  for (let i = 0; i < N; i++) {
    requests.push(
      createRequest({
        method: 'OPTIONS',
        uri: 'sip:bob@10.0.0.2',
        from: '<sip:alice@10.0.0.1>',
        to: '<sip:bob@10.0.0.2>',
        cseq: 1,
        headers: [['Accept', 'application/sdp']],
      }),
    );
  }
  const base = mem();
  const create = new Clock().start();
  for (let i = 0; i < N; i++) uac.sendRequest(requests[i]!, target, handlers);
  create.stop();
  requests.length = 0;
  const afterClient = mem();

  // Deliver: parse + server transaction creation + TU callback.
  hold = false;
  const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
  const server = new Clock().start();
  for (const data of held) b.receiveBytes(data, src);
  server.stop();
  held.length = 0;
  const peak = mem();
  const liveAtPeak = uac.size + uas.size;

  // Answer every request; responses are parsed and matched to their client transactions.
  const complete = new Clock().start();
  for (const tx of pending) tx.respond(createResponse(tx.request, 200));
  await flush();
  complete.stop();
  pending.length = 0;
  const completed = mem(); // both sides Completed, waiting for Timers K and J

  // Timers K and J retire everything.
  const t0 = performance.now();
  wheel.advance(64 * 500 + 10);
  const retireMs = performance.now() - t0;

  const clientBytes = (afterClient - base) / N;
  const serverBytes = (peak - afterClient) / N;
  console.log(`in-memory, ${N.toLocaleString('en-US')} concurrent non-INVITE transactions (fake clock, serialize + parse included)`);
  console.log(`  create client tx (send):           ${create.line(N)}`);
  console.log(`  receive + create server tx:        ${server.line(N)}`);
  console.log(`  respond + match + complete:        ${complete.line(N)}`);
  console.log(`  whole cycle:                       ${new Clock().add(create).add(server).add(complete).line(N)}`);
  console.log(`  retire all (timers K, J):          ${retireMs.toFixed(0)} ms`);
  console.log(`  live transactions at peak:         ${liveAtPeak.toLocaleString('en-US')}  (final responses ${finals.toLocaleString('en-US')})`);
  console.log(`  memory per client transaction:     ${Math.round(clientBytes)} bytes (heap + buffers, incl. request)`);
  console.log(`  memory per server transaction:     ${Math.round(serverBytes)} bytes (incl. parsed request)`);
  console.log(`  memory per completed tx pair:      ${Math.round((completed - base) / N)} bytes (client in Timer K + server in Timer J)`);
  console.log(`  left after retire: client ${uac.size}, server ${uas.size}, timers ${wheel.size}`);
  if (!gc) console.log('  (run with --expose-gc for exact memory figures)');
}

async function udpLoopback(inFlight: number): Promise<void> {
  const server = new TransportLayer();
  const client = new TransportLayer();
  const slp = await server.listen({ transport: 'udp', address: '127.0.0.1', port: 0 });
  await client.listen({ transport: 'udp', address: '127.0.0.1', port: 0 });
  const uas = new TransactionLayer(server);
  const uac = new TransactionLayer(client);
  uas.setUser({ onRequest: (req, tx) => tx?.respond(createResponse(req, 200)) });
  uac.setUser({ onRequest: () => {} });
  const target: Endpoint = { transport: 'udp', address: '127.0.0.1', port: slp.port };
  const deadline = performance.now() + UDP_SECONDS * 1000;
  let done = 0;
  let failed = 0;
  const clock = new Clock().start();
  await new Promise<void>((resolve) => {
    let active = 0;
    const next = (): void => {
      while (active < inFlight && performance.now() < deadline) {
        active++;
        const req = createRequest({ method: 'OPTIONS', uri: `sip:bob@127.0.0.1:${slp.port}`, from: '<sip:alice@127.0.0.1>', to: '<sip:bob@127.0.0.1>' });
        const end = (ok: boolean) => {
          active--;
          if (ok) done++;
          else failed++;
          if (performance.now() < deadline) setImmediate(next);
          else if (active === 0) resolve();
        };
        uac.sendRequest(req, target, { onFinal: () => end(true), onTimeout: () => end(false), onTransportError: () => end(false) });
      }
      if (active === 0) resolve();
    };
    next();
  });
  clock.stop();
  console.log(`  ${String(inFlight).padStart(4)} in flight: ${clock.line(done)}  (${done.toLocaleString('en-US')} OPTIONS/200, ${failed} failed)`);
  uac.close();
  uas.close();
  await client.close();
  await server.close();
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
if (SECTIONS.has('layer')) await layerAlone();
if (SECTIONS.has('memory')) await inMemory();
if (SECTIONS.has('udp')) {
  console.log('UDP loopback, OPTIONS round trips (client and server layers in one process)');
  for (const n of [1, 50, 500]) await udpLoopback(n);
}
process.exit(0);
