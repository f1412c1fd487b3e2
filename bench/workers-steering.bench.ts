/**
 * The receiving step of `tandem start --workers N`: what steering adds per message.
 *
 *  1. Call-ID scan + hash (callIdHash) over a typical INVITE and a 200 OK, ns per message, and
 *     the full parse of the same INVITE for scale.
 *  2. Hand-over over the worker channel: one WorkerChannel forwards INVITEs (with their source)
 *     to another in the same process, as fast as the receiver drains, 1, 8 and 256 per turn of
 *     the event loop (messages of one turn leave as one batch); CPU µs per forwarded message
 *     counts both ends (send + receive + header decode), the cost a steered message adds.
 *
 *   node --import tsx bench/workers-steering.bench.ts [secondsPerCase=2]
 * Figures depend on the machine; tests never assert on them.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { callIdHash } from '../src/signalling/workers/call-id-hash.js';
import { WorkerChannel } from '../src/signalling/workers/worker-channel.js';
import { parseMessage } from '../src/sip/message/parser.js';
import type { Source } from '../src/sip/transport/types.js';

const secondsPerCase = Number(process.argv[2] ?? 2);
const fixture = (name: string) => readFileSync(new URL(`../test/fixtures/sip/${name}`, import.meta.url));
const invite = fixture('invite-typical.sip');
const ok200 = fixture('ok-200-invite.sip');

console.log(`workers steering bench: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${loadavg()[0]!.toFixed(2)}`);

let sink = 0;
function loop(name: string, fn: () => void): void {
  for (let i = 0; i < 50_000; i++) fn();
  const cpu0 = process.cpuUsage();
  const deadline = process.hrtime.bigint() + BigInt(Math.round(secondsPerCase * 1e9));
  let n = 0;
  for (;;) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    if (process.hrtime.bigint() >= deadline) break;
  }
  const cpu = process.cpuUsage(cpu0);
  const ns = ((cpu.user + cpu.system) * 1000) / n;
  console.log(`  ${name.padEnd(40)} ${ns.toFixed(0).padStart(6)} ns/msg CPU  (${(1e9 / ns / 1e6).toFixed(2)} M msg/s per core)`);
}

loop(`callIdHash INVITE (${invite.length} B)`, () => {
  sink ^= callIdHash(invite);
});
loop(`callIdHash 200 OK (${ok200.length} B)`, () => {
  sink ^= callIdHash(ok200);
});
loop('full parse of the same INVITE (scale)', () => {
  sink ^= parseMessage(invite).ok ? 1 : 0;
});

// 2. channel hand-over, bounded in count and time
const token = Buffer.from('0123456789abcdef', 'hex');
let received = 0;
const rx = new WorkerChannel(token, {
  onMessage: (data) => {
    received++;
    sink ^= data.length;
  },
  onWrite: () => undefined,
});
const tx = new WorkerChannel(token, { onMessage: () => undefined, onWrite: () => undefined });
const rxPort = await rx.open();
await tx.open();
tx.setPeers([0, rxPort]);
const source: Source = { transport: 'udp', address: '192.0.2.10', port: 5060, localAddress: '127.0.0.1', localPort: 5060 };

/**
 * Hands `total` INVITEs over, `perTurn` per turn of the event loop (what one worker reads from
 * its socket in one turn decides the batch: 1 is the worst case, one datagram per message).
 */
async function handOver(perTurn: number, total: number): Promise<void> {
  received = 0;
  const window = Math.max(256, perTurn);
  let sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + 30_000;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      // Keep at most `window` in flight so the receive buffer never overflows (loss would skew it).
      for (let k = 0; k < perTurn && sent < total && sent - received < window; k++) {
        tx.forward(1, invite, source);
        sent++;
      }
      if (received >= total || Date.now() > deadline) resolve();
      else setImmediate(pump);
    };
    pump();
  });
  const cpu = process.cpuUsage(cpu0);
  const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  const usPer = (cpu.user + cpu.system) / received;
  console.log(
    `  channel hand-over, ${String(perTurn).padStart(3)} per turn     ${usPer.toFixed(2).padStart(6)} µs/msg CPU, both ends  (${received} of ${sent} in ${wallSec.toFixed(2)} s, ${(received / wallSec / 1000).toFixed(0)} k msg/s)`,
  );
}

await handOver(1, 50_000);
await handOver(8, 100_000);
await handOver(256, 200_000);
rx.close();
tx.close();
if (sink === 0.5) console.log(sink);
