// ng command path in one process: offer, answer and delete through NgServer.handle (allow-list,
// cookie cache, bencode, request normalisation, SessionManager, the native relay binding real
// ports, reply encoding, metrics), without the UDP socket. Two ways:
// - back to back: the next command as soon as the previous one is answered;
// - after idle: the process sleeps `--idle-ms` (default 20, the gap at 50 calls/s) before each
//   command. On a shared machine the caches are cold by then, so this is what a lightly loaded
//   node pays; its cost grows with the memory a command touches (code and data), not with its
//   instruction count alone.
// Per command: p50 / p99 µs; per call: bytes allocated on the JS heap (batches without a
// collection only).
//
//   node --import tsx bench/ng-path.bench.ts [--calls 2000] [--idle-calls 400] [--idle-ms 20]
import { getHeapStatistics } from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';
import { createMediaCore } from '../src/media/media-node.js';
import { validateMediaConfig } from '../src/media/config-schema.js';
import { NgServer } from '../src/media/ng-server/ng-server.js';
import { bencodeWithPrefix } from '../src/ng/bencode.js';
import { percentile } from './lib/percentile.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => (argv.includes(name) ? argv[argv.indexOf(name) + 1]! : dflt);
const CALLS = Number(opt('--calls', '2000'));
const IDLE_CALLS = Number(opt('--idle-calls', '400'));
const IDLE_MS = Number(opt('--idle-ms', '20'));
const H = '127.0.0.1';

function sdp(port: number, version: number): string {
  return (
    `v=0\r\no=- ${1000 + version} ${version} IN IP4 ${H}\r\ns=-\r\nc=IN IP4 ${H}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 8 101\r\n` +
    'a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n'
  );
}

const v = validateMediaConfig({ ng: `${H}:0`, interface: H, rtpPorts: '30000-39999', warmUpCalls: 2000 });
if (!v.ok) throw new Error(v.reason);
const core = await createMediaCore(v.value);
const started = await NgServer.start({ udp: { host: H, port: 0 }, handler: core.handler });
if (!started.ok) throw new Error(started.reason);
const server = started.value;
core.setNgServer(server);
const source = { address: H, port: 9, transport: 'udp' as const };

let gcs = 0;
new PerformanceObserver((l) => (gcs += l.getEntries().length)).observe({ entryTypes: ['gc'] });

type Verb = 'offer' | 'answer' | 'delete';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let seq = 0;
function message(verb: Verb, i: number, tag: string): Buffer {
  const callId = `${tag}-${i}@bench`;
  const dict =
    verb === 'offer'
      ? { command: 'offer', 'call-id': callId, 'from-tag': `f${i}`, sdp: sdp(10_000 + (i % 5000) * 2, i), flags: ['trust-address'], replace: ['origin', 'session-connection'] }
      : verb === 'answer'
        ? { command: 'answer', 'call-id': callId, 'from-tag': `f${i}`, 'to-tag': `t${i}`, sdp: sdp(20_000 + (i % 5000) * 2, i + 1), flags: ['trust-address'], replace: ['origin', 'session-connection'] }
        : { command: 'delete', 'call-id': callId, 'from-tag': `f${i}` };
  return bencodeWithPrefix(`${seq++}_b `, dict, 'latin1');
}

/** One command; its time in µs (the message is built before the clock starts). */
async function timed(verb: Verb, i: number, tag: string): Promise<number> {
  const msg = message(verb, i, tag);
  const t = performance.now();
  const reply = await server.handle(msg, source);
  const us = (performance.now() - t) * 1000;
  if (!reply || !reply.includes('6:result2:ok')) throw new Error(`${verb} failed: ${reply?.toString('latin1').slice(0, 200)}`);
  return us;
}

const pct = (v: number[], p: number): number => percentile([...v].sort((a, b) => a - b), p);
const line = (name: string, s: Record<Verb, number[]>): string =>
  `${name.padEnd(22)}` + (['offer', 'answer', 'delete'] as Verb[]).map((k) => `${k} p50 ${pct(s[k], 50).toFixed(1).padStart(6)} p99 ${pct(s[k], 99).toFixed(1).padStart(7)} µs`).join('   ');

// Back to back, in batches: allocation is read from batches no collection ran in.
const warm: Record<Verb, number[]> = { offer: [], answer: [], delete: [] };
const perCall: number[] = [];
const BATCH = 50;
for (let b = 0; b < CALLS / BATCH; b++) {
  const gcBefore = gcs;
  const heapBefore = getHeapStatistics().used_heap_size;
  for (let i = b * BATCH; i < (b + 1) * BATCH; i++) {
    warm.offer.push(await timed('offer', i, 'w'));
    warm.answer.push(await timed('answer', i, 'w'));
    warm.delete.push(await timed('delete', i, 'w'));
  }
  const grown = getHeapStatistics().used_heap_size - heapBefore;
  await sleep(0); // let a collection's observer entry arrive
  if (gcs === gcBefore && grown > 0) perCall.push(grown / BATCH);
}
console.log(line('back to back', warm));
console.log(`JS heap allocated per call (offer+answer+delete): ${perCall.length ? `${Math.round(pct(perCall, 50))} bytes (median of ${perCall.length} batches without a collection)` : 'n/a (a collection in every batch)'}`);

// After idle: the gap a node at 50 calls/s sees before every command.
const idle: Record<Verb, number[]> = { offer: [], answer: [], delete: [] };
for (let i = 0; i < IDLE_CALLS; i++) {
  for (const verb of ['offer', 'answer', 'delete'] as Verb[]) {
    await sleep(IDLE_MS);
    idle[verb].push(await timed(verb, i, 'i'));
  }
}
console.log(line(`after ${IDLE_MS} ms idle`, idle));
await server.close();
await core.close();
