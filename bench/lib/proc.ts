// What the benches read off processes: CPU time from /proc, a free loopback port.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ on Linux). */
export const CLK_TCK = 100;

/** utime + stime of the processes, in clock ticks (0 for one that is gone). */
export function cpuTicks(...pids: Array<number | undefined>): number {
  let t = 0;
  for (const pid of pids) {
    if (!pid) continue;
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      t += Number(f[11]) + Number(f[12]);
    } catch {
      /* process gone */
    }
  }
  return t;
}

/** A UDP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}
