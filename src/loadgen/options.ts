import { fail, ok, type Result } from '../util/result.js';

/** `6s`, `500ms`, `2m`, `1h`, bare number = seconds. */
export function parseDurationMs(text: string): Result<number> {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) return fail('LOAD_ERR_OPTION', `bad duration "${text}" (use e.g. 6s, 500ms, 2m)`);
  const v = Number(m[1]);
  const unit = (m[2] ?? 's').toLowerCase();
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return ok(Math.round(v * factor));
}

/** `host:port`, `[v6]:port`, or `host` (port `defaultPort`). */
export function parseHostPort(text: string, defaultPort: number): Result<{ address: string; port: number }> {
  const m = /^\s*(?:\[([^\]]+)\]|([^:\s]+))(?::(\d{1,5}))?\s*$/.exec(text);
  if (!m) return fail('LOAD_ERR_OPTION', `bad address "${text}" (use host:port)`);
  const port = m[3] ? Number(m[3]) : defaultPort;
  if (port > 65535) return fail('LOAD_ERR_OPTION', `bad port in "${text}"`);
  return ok({ address: (m[1] ?? m[2])!, port });
}

const ipv4ToInt = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const intToIpv4 = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

/**
 * `addr`, `addr:port`, `addr:port-port` (a range each worker picks a free port from), and IPv4
 * address ranges `127.0.0.1-127.0.0.8[:port[-port]]` (calls take the addresses in turn; at most 256).
 */
export function parseLocal(text: string): Result<{ address: string; addresses?: string[]; portMin?: number; portMax?: number }> {
  const v4 = /^\s*(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5})(?:-(\d{1,5}))?)?\s*$/.exec(text);
  let m: RegExpExecArray | null;
  let addresses: string[] | undefined;
  if (v4) {
    const a = ipv4ToInt(v4[1]!);
    const b = ipv4ToInt(v4[2]!);
    if (b < a || b - a >= 256) return fail('LOAD_ERR_OPTION', `bad local address range "${text}" (at most 256 addresses, low-high)`);
    addresses = [];
    for (let i = a; i <= b; i++) addresses.push(intToIpv4(i));
    m = ['', v4[1]!, undefined, v4[3], v4[4]] as unknown as RegExpExecArray;
  } else {
    m = /^\s*(?:\[([^\]]+)\]|([^:\s]+))(?::(\d{1,5})(?:-(\d{1,5}))?)?\s*$/.exec(text);
  }
  if (!m) return fail('LOAD_ERR_OPTION', `bad local address "${text}" (use addr[-addr][:port[-port]])`);
  const out: { address: string; addresses?: string[]; portMin?: number; portMax?: number } = { address: (m[1] ?? m[2])! };
  if (addresses && addresses.length > 1) out.addresses = addresses;
  if (m[3]) {
    out.portMin = Number(m[3]);
    out.portMax = m[4] ? Number(m[4]) : out.portMin;
    if (out.portMax < out.portMin || out.portMax > 65535) return fail('LOAD_ERR_OPTION', `bad port range in "${text}"`);
  }
  return ok(out);
}

/** `20000-30000`. */
export function parsePortRange(text: string): Result<{ min: number; max: number }> {
  const m = /^\s*(\d{1,5})-(\d{1,5})\s*$/.exec(text);
  if (!m) return fail('LOAD_ERR_OPTION', `bad port range "${text}" (use min-max)`);
  const min = Number(m[1]);
  const max = Number(m[2]);
  if (min < 1 || max > 65535 || max < min) return fail('LOAD_ERR_OPTION', `bad port range "${text}"`);
  return ok({ min, max });
}
