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

/** `addr`, `addr:port`, or `addr:port-port` (a range each worker picks a free port from). */
export function parseLocal(text: string): Result<{ address: string; portMin?: number; portMax?: number }> {
  const m = /^\s*(?:\[([^\]]+)\]|([^:\s]+))(?::(\d{1,5})(?:-(\d{1,5}))?)?\s*$/.exec(text);
  if (!m) return fail('LOAD_ERR_OPTION', `bad local address "${text}" (use addr[:port[-port]])`);
  const out: { address: string; portMin?: number; portMax?: number } = { address: (m[1] ?? m[2])! };
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
