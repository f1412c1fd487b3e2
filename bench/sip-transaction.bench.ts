// SIP transaction layer benchmark.
//   node --import tsx --expose-gc bench/sip-transaction.bench.ts [count] [udpSeconds]
// 1. In memory (no sockets, fake clock so no retransmission fires): create 100,000 concurrent
//    non-INVITE client transactions, deliver them to a server layer (100,000 server
//    transactions, all live at once), answer every one, match the responses back, retire all.
//    Prints transactions/s per phase and memory per live transaction.
// 2. Real UDP on 127.0.0.1: OPTIONS from a client layer to a server layer with N transactions
//    in flight; prints completed transactions/s.
// Bounded: the in-memory part is fixed work, the UDP part stops after `udpSeconds` (default 5).
import { cpus } from 'node:os';
import { TimerWheel } from '../src/util/timer-wheel.js';
import { createRequest, createResponse } from '../src/sip/message/builders.js';
import type { SipRequest } from '../src/sip/message/sip-message.js';
import { InMemoryNetwork, InMemoryTransport } from '../src/sip/transport/in-memory-transport.js';
import { TransportLayer } from '../src/sip/transport/transport-layer.js';
import type { Endpoint, Source } from '../src/sip/transport/types.js';
import { TransactionLayer } from '../src/sip/transaction/transaction-layer.js';
import type { ServerTransaction } from '../src/sip/transaction/types.js';

const N = Number(process.argv[2] ?? 100_000);
const UDP_SECONDS = Number(process.argv[3] ?? 5);
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
  let t0 = performance.now();
  for (let i = 0; i < N; i++) uac.sendRequest(requests[i]!, target, handlers);
  const createMs = performance.now() - t0;
  requests.length = 0;
  const afterClient = mem();

  // Deliver: parse + server transaction creation + TU callback.
  hold = false;
  const src: Source = { transport: 'udp', address: '10.0.0.1', port: 5060, localAddress: '10.0.0.2', localPort: 5060 };
  t0 = performance.now();
  for (const data of held) b.receiveBytes(data, src);
  const serverMs = performance.now() - t0;
  held.length = 0;
  const peak = mem();
  const liveAtPeak = uac.size + uas.size;

  // Answer every request; responses are parsed and matched to their client transactions.
  t0 = performance.now();
  for (const tx of pending) tx.respond(createResponse(tx.request, 200));
  await flush();
  const completeMs = performance.now() - t0;
  pending.length = 0;
  const completed = mem(); // both sides Completed, waiting for Timers K and J

  // Timers K and J retire everything.
  t0 = performance.now();
  wheel.advance(64 * 500 + 10);
  const retireMs = performance.now() - t0;

  const clientBytes = (afterClient - base) / N;
  const serverBytes = (peak - afterClient) / N;
  console.log(`in-memory, ${N.toLocaleString('en-US')} concurrent non-INVITE transactions (fake clock, serialize + parse included)`);
  console.log(`  create client tx (send):           ${rate(N, createMs)}  (${createMs.toFixed(0)} ms)`);
  console.log(`  receive + create server tx:        ${rate(N, serverMs)}  (${serverMs.toFixed(0)} ms)`);
  console.log(`  respond + match + complete:        ${rate(N, completeMs)}  (${completeMs.toFixed(0)} ms)`);
  console.log(`  whole cycle:                       ${rate(N, createMs + serverMs + completeMs)}`);
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
  const t0 = performance.now();
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
  const ms = performance.now() - t0;
  console.log(`  ${String(inFlight).padStart(4)} in flight: ${rate(done, ms)}  (${done.toLocaleString('en-US')} OPTIONS/200 in ${(ms / 1000).toFixed(1)} s, ${failed} failed)`);
  uac.close();
  uas.close();
  await client.close();
  await server.close();
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
await inMemory();
console.log('UDP loopback, OPTIONS round trips (client and server layers in one process)');
for (const n of [1, 50, 500]) await udpLoopback(n);
process.exit(0);
