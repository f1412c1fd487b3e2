/**
 * Redis URLs accepted by `--redis` / `state.redis`:
 *
 * - `redis://[user:password@]host[:port][/db]`: one server (port 6379, db 0 by default).
 * - `redis-sentinel://[user:password@]h1[:p1],h2[:p2],.../mastername[/db]`: the primary that the
 *   Sentinels name `mastername` (Sentinel port 26379 by default). The credentials are the data
 *   nodes'; the Sentinels are reached without authentication.
 *
 * IPv6 hosts go in brackets: `redis://[::1]:6379`.
 */
import { fail, ok, type Result } from '../../util/result.js';

export interface HostPort {
  host: string;
  port: number;
}

interface EndpointCommon {
  /** Database index (SELECT). */
  db: number;
  username?: string;
  password?: string;
}

export type RedisEndpoint =
  | (EndpointCommon & { kind: 'single'; host: string; port: number })
  | (EndpointCommon & { kind: 'sentinel'; sentinels: HostPort[]; masterName: string });

const BAD = 'STATE_ERR_BAD_REDIS_URL';

function parseHostPort(text: string, defaultPort: number): Result<HostPort> {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return fail(BAD, `unclosed '[' in host ${JSON.stringify(text)}`);
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return fail(BAD, `bad host ${JSON.stringify(text)}`);
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (host === '' || /[\s/@]/.test(host)) return fail(BAD, `bad host ${JSON.stringify(text)}`);
  if (portText === undefined) return ok({ host, port: defaultPort });
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return fail(BAD, `bad port in ${JSON.stringify(text)}`);
  return ok({ host, port: Number(portText) });
}

function parseDb(text: string | undefined): Result<number> {
  if (text === undefined || text === '') return ok(0);
  if (!/^\d{1,5}$/.test(text)) return fail(BAD, `bad database index ${JSON.stringify(text)}`);
  return ok(Number(text));
}

function parseCredentials(userinfo: string | undefined): { username?: string; password?: string } {
  if (userinfo === undefined) return {};
  const colon = userinfo.indexOf(':');
  // `redis://secret@host`: a password alone (AUTH secret), as older Redis URLs write it.
  if (colon < 0) return userinfo === '' ? {} : { password: decodeURIComponent(userinfo) };
  const username = decodeURIComponent(userinfo.slice(0, colon));
  const password = decodeURIComponent(userinfo.slice(colon + 1));
  return { ...(username !== '' ? { username } : {}), password };
}

/** Parses a Redis URL; errors name the fault (`STATE_ERR_BAD_REDIS_URL`). */
export function parseRedisUrl(url: string): Result<RedisEndpoint> {
  const m = /^([a-z][a-z0-9+-]*):\/\/(.*)$/i.exec(url.trim());
  if (!m) return fail(BAD, `not a URL: ${JSON.stringify(url)} (expected redis://host:port[/db] or redis-sentinel://h1:p1,h2:p2/mastername)`);
  const scheme = m[1]!.toLowerCase();
  let rest = m[2]!;
  let userinfo: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  let creds: { username?: string; password?: string };
  try {
    creds = parseCredentials(userinfo);
  } catch {
    return fail(BAD, 'bad percent-encoding in the credentials');
  }
  const slash = rest.indexOf('/');
  const hostPart = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? [] : rest.slice(slash + 1).split('/');
  if (scheme === 'redis') {
    const hp = parseHostPort(hostPart, 6379);
    if (!hp.ok) return hp;
    if (path.length > 1) return fail(BAD, `unexpected path in ${JSON.stringify(url)}: only /db may follow the host`);
    const db = parseDb(path[0]);
    if (!db.ok) return db;
    return ok({ kind: 'single', ...hp.value, db: db.value, ...creds });
  }
  if (scheme === 'redis-sentinel') {
    const sentinels: HostPort[] = [];
    for (const part of hostPart.split(',')) {
      const hp = parseHostPort(part, 26379);
      if (!hp.ok) return hp;
      sentinels.push(hp.value);
    }
    const masterName = path[0] ? decodeURIComponent(path[0]) : '';
    if (masterName === '') return fail(BAD, `missing master name in ${JSON.stringify(url)} (redis-sentinel://h1:p1,h2:p2/mastername)`);
    if (path.length > 2) return fail(BAD, `unexpected path in ${JSON.stringify(url)}: only /mastername[/db] may follow the Sentinels`);
    const db = parseDb(path[1]);
    if (!db.ok) return db;
    return ok({ kind: 'sentinel', sentinels, masterName, db: db.value, ...creds });
  }
  if (scheme === 'rediss') return fail(BAD, 'TLS (rediss://) is not supported yet; reach Redis over a trusted network or a TLS tunnel');
  return fail(BAD, `unknown scheme ${JSON.stringify(scheme)} (expected redis:// or redis-sentinel://)`);
}

/** The URL with any password replaced by `***`, for logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^@/]*):([^@/]*)@/, '//$1:***@');
}
