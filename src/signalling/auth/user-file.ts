/**
 * Users for digest authentication from a file:
 * - CSV: `user,password` per line; or with a header row naming the columns
 *   (`user,password` / `user,ha1` / `user,ha1,ha1_sha256`). `#` starts a comment line.
 * - YAML: `users: [{ user, password }]` or `[{ user, ha1, ha1Sha256 }]`, or a map `user: password`.
 * HA1 values must have been computed for the configured realm.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { DigestUserRecord, UserDirectory } from '../../sip/auth/digest-server.js';
import { fail, ok, type Result } from '../../util/result.js';

export class MapUserDirectory implements UserDirectory {
  readonly users = new Map<string, DigestUserRecord>();
  constructor(records: Iterable<DigestUserRecord> = []) {
    for (const r of records) this.users.set(r.username, r);
  }
  lookup(username: string): DigestUserRecord | undefined {
    return this.users.get(username);
  }
  get size(): number {
    return this.users.size;
  }
}

const HEX32 = /^[0-9a-fA-F]{32}$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;

export function parseUsersCsv(text: string): Result<DigestUserRecord[]> {
  const lines = text.split(/\r?\n/);
  const out: DigestUserRecord[] = [];
  let columns = ['user', 'password'];
  let first = true;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    const cells = line.split(',').map((c) => c.trim());
    if (first) {
      first = false;
      const lower = cells.map((c) => c.toLowerCase());
      if (lower[0] === 'user' || lower[0] === 'username') {
        columns = lower.map((c) => (c === 'username' ? 'user' : c === 'ha1sha256' || c === 'ha1_sha-256' ? 'ha1_sha256' : c));
        continue;
      }
    }
    const rec: DigestUserRecord = { username: '' };
    columns.forEach((col, idx) => {
      const v = cells[idx];
      if (v === undefined || v === '') return;
      if (col === 'user') rec.username = v;
      else if (col === 'password') rec.password = v;
      else if (col === 'ha1') rec.ha1Md5 = v;
      else if (col === 'ha1_sha256') rec.ha1Sha256 = v;
    });
    if (!rec.username) return fail('CONFIG_ERR_USERS', `line ${i + 1}: missing user name`);
    if (rec.password === undefined && !rec.ha1Md5 && !rec.ha1Sha256) return fail('CONFIG_ERR_USERS', `line ${i + 1}: user ${rec.username} has no password or HA1`);
    if (rec.ha1Md5 && !HEX32.test(rec.ha1Md5)) return fail('CONFIG_ERR_USERS', `line ${i + 1}: ha1 must be 32 hex digits (MD5)`);
    if (rec.ha1Sha256 && !HEX64.test(rec.ha1Sha256)) return fail('CONFIG_ERR_USERS', `line ${i + 1}: ha1_sha256 must be 64 hex digits`);
    out.push(rec);
  }
  return ok(out);
}

export function parseUsersYaml(text: string): Result<DigestUserRecord[]> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return fail('CONFIG_ERR_USERS', `YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const root = doc && typeof doc === 'object' && 'users' in (doc as object) ? (doc as { users: unknown }).users : doc;
  const out: DigestUserRecord[] = [];
  if (Array.isArray(root)) {
    for (const [i, e] of root.entries()) {
      if (!e || typeof e !== 'object') return fail('CONFIG_ERR_USERS', `users[${i}]: expected an object`);
      const o = e as Record<string, unknown>;
      const username = String(o['user'] ?? o['username'] ?? '');
      if (!username) return fail('CONFIG_ERR_USERS', `users[${i}]: missing user`);
      const rec: DigestUserRecord = { username };
      if (o['password'] !== undefined) rec.password = String(o['password']);
      if (o['ha1'] !== undefined) rec.ha1Md5 = String(o['ha1']);
      if (o['ha1Sha256'] !== undefined) rec.ha1Sha256 = String(o['ha1Sha256']);
      if (rec.password === undefined && !rec.ha1Md5 && !rec.ha1Sha256) return fail('CONFIG_ERR_USERS', `users[${i}]: no password or HA1`);
      out.push(rec);
    }
  } else if (root && typeof root === 'object') {
    for (const [username, pw] of Object.entries(root as Record<string, unknown>)) out.push({ username, password: String(pw) });
  } else {
    return fail('CONFIG_ERR_USERS', 'expected a list of users or a map user: password');
  }
  return ok(out);
}

/** Loads a users file (CSV, or YAML by extension .yaml/.yml). */
export function loadUsersFile(path: string): Result<MapUserDirectory> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return fail('CONFIG_ERR_USERS', `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const r = /\.ya?ml$/i.test(path) ? parseUsersYaml(text) : parseUsersCsv(text);
  if (!r.ok) return fail(r.code, `${path}: ${r.reason}`);
  return ok(new MapUserDirectory(r.value));
}
