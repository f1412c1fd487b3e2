import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');

/** A `tandem media` child process. */
export interface SpawnedMediaNode {
  proc: ChildProcess;
  ngPort: number;
  ngTcpPort: number | null;
  adminPort: number | null;
  stderr: () => string;
  stop: () => Promise<number | null>;
}

const RANGE_LOW = 16_000;
const RANGE_HIGH = 32_000; // below the kernel's ephemeral ports (32768+), where port-0 sockets land
let nextRangeStart = RANGE_LOW + 2 * Math.floor(Math.random() * ((RANGE_HIGH - RANGE_LOW) / 2));

/**
 * A media port range: ranges handed out in one process never overlap (they advance from a random
 * start), so nodes in one test file cannot steal each other's ports; other processes pick other
 * random starts.
 */
export function randomRtpRange(size = 200): string {
  const even = size + (size % 2);
  if (nextRangeStart + even > RANGE_HIGH) nextRangeStart = RANGE_LOW;
  const base = nextRangeStart;
  nextRangeStart += even + 2;
  return `${base}-${base + even - 1}`;
}

/** Spawns `node bin/tandem.mjs media ...` and waits for its ready line. */
export async function spawnMediaNode(args: string[]): Promise<SpawnedMediaNode> {
  const proc = spawn(process.execPath, [resolve(ROOT, 'bin/tandem.mjs'), 'media', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TANDEM_FROM_SOURCE: '1', TANDEM_LOG_LEVEL: process.env.TANDEM_LOG_LEVEL ?? 'warn' },
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  let out = '';
  const ready = await new Promise<Record<string, unknown>>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`media node did not start: ${err}`)), 15_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) {
        clearTimeout(timer);
        res(JSON.parse(line) as Record<string, unknown>);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`media node exited ${code}: ${err}`));
    });
  });
  return {
    proc,
    ngPort: ready['ngPort'] as number,
    ngTcpPort: ready['ngTcpPort'] as number | null,
    adminPort: ready['adminPort'] as number | null,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const [code] = (await exited) as [number | null];
      clearTimeout(t);
      return code;
    },
  };
}

/** A UDP socket on 127.0.0.1 that records what it receives. */
export async function udpPeer(address = '127.0.0.1'): Promise<{ sock: dgram.Socket; port: number; received: Array<{ msg: Buffer; from: string }>; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  const received: Array<{ msg: Buffer; from: string }> = [];
  sock.on('message', (msg, r) => received.push({ msg, from: `${r.address}:${r.port}` }));
  await new Promise<void>((r) => sock.bind(0, address, () => r()));
  return { sock, port: sock.address().port, received, close: () => sock.close() };
}

/** A 172-byte G.711-sized RTP packet (12-byte header + 160 bytes payload). */
export function rtpPacket(seq: number, ssrc: number, timestamp = seq * 160): Buffer {
  const b = Buffer.alloc(172, 0xd5);
  b[0] = 0x80;
  b[1] = 0; // PCMU
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(timestamp >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}

export function sendTo(sock: dgram.Socket, msg: Buffer, port: number, address = '127.0.0.1'): Promise<void> {
  return new Promise((r) => sock.send(msg, port, address, () => r()));
}

/** Sends one raw datagram and resolves with the first reply or undefined after `waitMs`. */
export async function rawRequest(port: number, msg: Buffer | string, waitMs = 1000, localAddress = '127.0.0.1'): Promise<Buffer | undefined> {
  const p = await udpPeer(localAddress);
  try {
    await sendTo(p.sock, Buffer.isBuffer(msg) ? msg : Buffer.from(msg, 'latin1'), port);
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && p.received.length === 0) await sleep(10);
    return p.received[0]?.msg;
  } finally {
    p.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(10);
  }
  return cond();
}

/** Port of the n-th m= line and the c= address of an SDP. */
export function sdpMedia(sdp: string, n = 0): { address: string; port: number } {
  const c = /c=IN IP4 (\S+)/.exec(sdp)?.[1] ?? '';
  const ports = [...sdp.matchAll(/^m=\S+ (\d+) /gm)].map((m) => Number(m[1]));
  return { address: c, port: ports[n] ?? -1 };
}

export function audioSdp(port: number, address = '127.0.0.1', extra: string[] = []): string {
  return ['v=0', `o=- 1 1 IN IP4 ${address}`, 's=-', `c=IN IP4 ${address}`, 't=0 0', `m=audio ${port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', ...extra, 'a=sendrecv', ''].join('\r\n');
}
