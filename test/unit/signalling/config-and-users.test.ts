import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/cli/config.js';
import { parseUsersCsv, parseUsersYaml } from '../../../src/signalling/auth/user-file.js';

describe('config (signalling section)', () => {
  it('applies defaults and freezes', () => {
    const r = validateConfig({});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.signalling.listen).toEqual(['udp:127.0.0.1:5060']);
    expect(r.value.signalling.auth.nonceLifetimeSec).toBe(300);
    expect(Object.isFrozen(r.value.signalling.auth)).toBe(true);
  });

  it('reports every error with its path, and hints for renamed options', () => {
    const r = validateConfig({ signalling: { listen: ['sctp:1.2.3.4:5060'], sip: ['x'], registrar: { minExpiresSec: 100, maxExpiresSec: 50 } }, admin: 3 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = r.errors.join('\n');
    expect(text).toContain('signalling.listen.0');
    expect(text).toContain('signalling.sip: unknown option (use signalling.listen)');
    expect(text).toContain('admin');
  });

  it('requires a certificate for tls listening points', () => {
    const r = validateConfig({ signalling: { listen: ['tls:127.0.0.1:5061'] } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join('\n')).toContain('signalling.tls');
  });
});

describe('users files', () => {
  it('reads CSV with or without a header, passwords or HA1', () => {
    const a = parseUsersCsv('# comment\nalice,pw1\nbob,pw2\n');
    expect(a.ok && a.value.map((u) => u.username)).toEqual(['alice', 'bob']);
    const b = parseUsersCsv('user,ha1\ncarol,0123456789abcdef0123456789abcdef\n');
    expect(b.ok && b.value[0]).toEqual({ username: 'carol', ha1Md5: '0123456789abcdef0123456789abcdef' });
    expect(parseUsersCsv('user,ha1\ncarol,xyz\n').ok).toBe(false);
    expect(parseUsersCsv('alice\n').ok).toBe(false);
  });

  it('reads YAML lists and maps', () => {
    const a = parseUsersYaml('users:\n  - user: alice\n    password: pw\n  - user: bob\n    ha1: 0123456789abcdef0123456789abcdef\n');
    expect(a.ok && a.value.length).toBe(2);
    const b = parseUsersYaml('alice: pw\nbob: pw2\n');
    expect(b.ok && b.value[1]).toEqual({ username: 'bob', password: 'pw2' });
    expect(parseUsersYaml('- 3').ok).toBe(false);
    expect(parseUsersYaml(': : :').ok).toBe(false);
  });
});
