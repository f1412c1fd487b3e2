/**
 * Memory-safety churn of the native forwarder (src/media/relay/native/forwarder.cc) under
 * AddressSanitizer + UBSan: pairs are opened and released continuously while valid, short and
 * random datagrams flow to them and statistics are read; bad arguments are passed to every entry
 * point. Not part of `vitest run` (it needs an instrumented build and LD_PRELOAD); run by hand:
 *
 *   node test/integration/relay/native-asan-stress.mjs [seconds=15]
 *
 * Builds the addon with -fsanitize=address,undefined into a temporary directory, re-runs itself
 * with the sanitizer runtimes preloaded, and exits non-zero on any sanitizer report. Loopback
 * only, ports 9000-10599, bounded in time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const seconds = Number(process.argv[2] ?? 15);

if (!process.env.TANDEM_ASAN_ADDON) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-asan-'));
  const out = join(dir, 'forwarder-asan.node');
  const include = ['/usr/include/node', join(dirname(process.execPath), '../include/node')].find((d) => {
    try {
      execFileSync('test', ['-f', join(d, 'node_api.h')]);
      return true;
    } catch {
      return false;
    }
  });
  const src = join(here, '../../../src/media/relay/native/forwarder.cc');
  execFileSync('g++', ['-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-std=c++17', '-shared', '-fPIC', '-pthread',
    '-DNODE_GYP_MODULE_NAME=tandem_forwarder', '-DNAPI_VERSION=8', `-I${include}`, src, '-o', out], { stdio: 'inherit' });
  const lib = (name) => execFileSync('g++', [`-print-file-name=${name}`]).toString().trim();
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), String(seconds)], {
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, TANDEM_ASAN_ADDON: out, LD_PRELOAD: `${lib('libasan.so')}:${lib('libubsan.so')}`, ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1' },
    timeout: (seconds + 60) * 1000,
  });
  const stderr = r.stderr?.toString() ?? '';
  rmSync(dir, { recursive: true, force: true });
  const bad = /ERROR: AddressSanitizer|runtime error:/.test(stderr);
  if (bad || r.status !== 0) {
    process.stderr.write(stderr.slice(-8000));
    console.error(`native-asan-stress: FAILED (status ${r.status})`);
    process.exit(1);
  }
  console.log('native-asan-stress: no sanitizer reports');
  process.exit(0);
}

const m = createRequire(import.meta.url)(process.env.TANDEM_ASAN_ADDON);
// flags 1|2: shared ports (SO_REUSEPORT + steering program) and IP_FREEBIND, as a cluster node makes them.
const h = m.create(2, '127.0.0.1', 262144, 3);
const BASE = 9000;
const bind = () => new Promise((res) => {
  const s = createSocket('udp4');
  s.on('message', () => void received++);
  s.bind(0, '127.0.0.1', () => res(s));
});
let received = 0;
const [A, B, N] = [await bind(), await bind(), await bind()];
const ap = A.address().port;
const bp = B.address().port;
const live = new Map();
const later = new Map();
let id = 1;
let opened = 0;
let sent = 0;
const end = Date.now() + seconds * 1000;
const pkt = Buffer.alloc(172);
pkt[0] = 0x80;
while (Date.now() < end) {
  for (let k = 0; k < 4; k++, id++) {
    const slot = (id % 400) * 4;
    const ports = [BASE + slot, BASE + slot + 1, BASE + slot + 2, BASE + slot + 3];
    // Every third pair is bound by its forwarding thread (openLater) and reported by opened().
    if (id % 3 === 0) {
      if (m.openLater(h, id % 2, id, ...ports) === undefined) later.set(id, ports);
      continue;
    }
    if (m.open(h, id % 2, id, ...ports) !== undefined) continue;
    live.set(id, ports);
    opened++;
    m.peer(h, id, 0, '127.0.0.1', ap, '127.0.0.1', ap, id % 3 !== 0, id % 5 === 0, 8000);
    m.peer(h, id, 1, '127.0.0.1', bp, 'not an address', 70000, true, false, 0);
  }
  const done = m.opened(h);
  for (let i = 0; i + 1 < done.length; i += 2) {
    const pid = done[i];
    const ports = later.get(pid);
    later.delete(pid);
    if (done[i + 1] !== '' || !ports) continue;
    live.set(pid, ports);
    opened++;
    m.peer(h, pid, 0, '127.0.0.1', ap, '127.0.0.1', ap, true, false, 8000);
    m.peer(h, pid, 1, '127.0.0.1', bp, '127.0.0.1', bp + 1, true, false, 8000);
  }
  for (const [pid, ports] of live) {
    pkt.writeUInt16BE(sent & 0xffff, 2);
    pkt.writeUInt32BE(pid, 8);
    A.send(pkt, ports[0], '127.0.0.1');
    B.send(pkt, ports[2], '127.0.0.1');
    N.send(Buffer.from([0x80, 200, 0]), ports[1], '127.0.0.1');
    const junk = Buffer.alloc(Math.floor(Math.random() * 40));
    for (let i = 0; i < junk.length; i++) junk[i] = (Math.random() * 256) | 0;
    N.send(junk, ports[Math.floor(Math.random() * 4)], '127.0.0.1');
    sent += 4;
  }
  for (const pid of [...live.keys()]) {
    if (Math.random() < 0.3) m.stats(h, pid);
    if (Math.random() < 0.25) {
      m.close(h, pid, pid % 2 === 0); // half closed by the forwarding thread
      live.delete(pid);
    }
  }
  m.totals(h);
  m.idle(h, 10);
  m.events(h);
  m.stats(h, 'x');
  m.peer(h);
  m.open(h, 5, 1, 1, 2, 3, 4);
  m.openLater(h, 5, 1, 1, 2, 3, 4);
  m.openLater(h, 0, 'x');
  m.opened({});
  m.close({}, 1);
  m.stats(null, 1);
  await new Promise((r) => setTimeout(r, 1));
}
m.destroy(h);
m.destroy(h);
console.log(JSON.stringify({ opened, sent, received }));
for (const s of [A, B, N]) s.close();
