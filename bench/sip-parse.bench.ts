/**
 * SIP message parse/serialize micro-benchmark (one core).
 *   node --import tsx bench/sip-parse.bench.ts [secondsPerCase=2.5]
 * Prints messages/s per case. Figures depend on the machine; tests never assert on them.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseMessage } from '../src/sip/message/parser.js';
import { serialize } from '../src/sip/message/serializer.js';
import type { SipMessage } from '../src/sip/message/sip-message.js';

const fixture = (name: string) => readFileSync(new URL(`../test/fixtures/sip/${name}`, import.meta.url));
const invite = fixture('invite-typical.sip');
const ok200 = fixture('ok-200-invite.sip');
const secondsPerCase = Number(process.argv[2] ?? 2.5);
const only = process.argv[3]; // optional substring filter on case names (profiling)

let sink = 0;
function must(buf: Buffer): SipMessage {
  const r = parseMessage(buf);
  if (!r.ok) throw new Error(`fixture does not parse: ${r.reason}`);
  return r.value;
}

function run(name: string, bytes: number, fn: () => void): void {
  if (only !== undefined && !name.includes(only)) return;
  // warm-up
  for (let i = 0; i < 20_000; i++) fn();
  const deadline = process.hrtime.bigint() + BigInt(Math.round(secondsPerCase * 1e9));
  let n = 0;
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (;;) {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    if (process.hrtime.bigint() >= deadline) break;
  }
  const cpu = process.cpuUsage(cpu0);
  const wallSec = Number(process.hrtime.bigint() - start) / 1e9;
  // CPU time of this process: on a shared machine this is the fairer "one core" figure
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  const rate = n / wallSec;
  const cpuRate = n / cpuSec;
  console.log(
    `${name.padEnd(52)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} msg/s wall ${Math.round(cpuRate).toLocaleString('en-US').padStart(9)} msg/s cpu  ${(1e6 / cpuRate).toFixed(2).padStart(5)} µs cpu/msg  ${((cpuRate * bytes) / 1e6).toFixed(0).padStart(4)} MB/s`,
  );
}

console.log(
  `node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; INVITE ${invite.length} B, 200 OK ${ok200.length} B`,
);

// Machine calibration: cost of one step of a tight character-scanning loop (about 0.3-0.5 ns on
// an idle current core). The parser is such loops; on a loaded or slow machine scale by this.
{
  const text = 'sip:bob@biloxi.example.com;transport=udp';
  let best = Infinity;
  for (let r = 0; r < 20; r++) {
    const c0 = process.cpuUsage();
    let acc = 0;
    for (let k = 0; k < 200_000; k++) for (let i = 0; i < text.length; i++) acc += text.charCodeAt(i);
    const c = process.cpuUsage(c0);
    sink += acc;
    best = Math.min(best, ((c.user + c.system) * 1000) / (200_000 * text.length));
  }
  console.log(`calibration: ${best.toFixed(2)} ns cpu per char-scan step (best of 20)`);
}

run('parse INVITE (lazy; routing headers validated)', invite.length, () => {
  const m = must(invite);
  sink += m.headers.length;
});
run('parse INVITE + read routing values', invite.length, () => {
  const m = must(invite);
  sink += m.topVia.branch!.length + m.callId.length + m.cseq.seq + (m.fromTag?.length ?? 0) + (m.maxForwards ?? 0);
});
run('parse + serialize INVITE (unmodified relay)', invite.length, () => {
  sink += serialize(must(invite)).length;
});
run('parse + serialize 200 OK (unmodified relay)', ok200.length, () => {
  sink += serialize(must(ok200)).length;
});
run('proxy: parse INVITE, add Via, decrement MF, serialize', invite.length, () => {
  const m = must(invite);
  m.prepend('Via', 'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKbench1');
  m.set('Max-Forwards', String((m.maxForwards ?? 70) - 1));
  sink += serialize(m).length;
});
run('proxy: parse 200 OK, pop top Via, serialize', ok200.length, () => {
  const m = must(ok200);
  m.removeFirst('Via');
  sink += serialize(m).length;
});
run('transport: stamp received/rport on top Via, read, serialize', invite.length, () => {
  const m = must(invite);
  const via = m.topVia;
  const params = new Map(via.params);
  params.set('received', '198.51.100.7');
  params.set('rport', '5099');
  m.replaceTopVia({ ...via, params });
  sink += m.topVia.branch!.length + m.cseq.seq + m.callId.length + serialize(m).length;
});
run('parse INVITE + typed access of every header', invite.length, () => {
  const m = must(invite);
  sink += m.vias.length + m.contacts.length + m.recordRoutes.length + m.routes.length;
  sink += (m.contentLength ?? 0) + (m.contentType?.length ?? 0) + m.from.uri.host.length + m.to.uri.host.length;
  if (m.isRequest()) sink += m.requestUri.host.length;
  for (const e of m.headers.entries) sink += m.getAll(e.name).length;
});
if (sink === 42) console.log('');
