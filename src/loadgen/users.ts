import { readFileSync } from 'node:fs';
import { fail, ok, type Result } from '../util/result.js';

export interface LoadUser {
  user: string;
  password: string;
}

/**
 * Injection file of users, SIPp style: an optional first line `SEQUENTIAL` (or `RANDOM`, read
 * the same way here), then one `user;password` or `user,password` row per line. Blank lines
 * and lines starting with `#` are skipped.
 */
export function parseUsersCsv(text: string): Result<LoadUser[]> {
  const users: LoadUser[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    if (users.length === 0 && /^(SEQUENTIAL|RANDOM|USER)\b/i.test(line) && !/[;,]/.test(line)) continue;
    const parts = line.split(/[;,]/).map((p) => p.trim());
    if (!parts[0]) return fail('LOAD_ERR_USERS', `line ${i + 1}: empty user`);
    users.push({ user: parts[0], password: parts[1] ?? '' });
  }
  if (users.length === 0) return fail('LOAD_ERR_USERS', 'no users in file');
  return ok(users);
}

export function readUsersFile(path: string): Result<LoadUser[]> {
  try {
    return parseUsersCsv(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail('LOAD_ERR_USERS', `cannot read ${path}: ${(err as Error).message}`);
  }
}
