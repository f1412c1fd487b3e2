import { describe, expect, it } from 'vitest';
import { parseRedisUrl, redactRedisUrl } from '../../../../src/state/redis/redis-url.js';

describe('parseRedisUrl', () => {
  it('reads one server, with defaults', () => {
    expect(parseRedisUrl('redis://127.0.0.1')).toEqual({ ok: true, value: { kind: 'single', host: '127.0.0.1', port: 6379, db: 0 } });
    expect(parseRedisUrl('redis://redis.example:6380/2')).toEqual({ ok: true, value: { kind: 'single', host: 'redis.example', port: 6380, db: 2 } });
    expect(parseRedisUrl('redis://[::1]:7000')).toEqual({ ok: true, value: { kind: 'single', host: '::1', port: 7000, db: 0 } });
  });

  it('reads credentials', () => {
    const r = parseRedisUrl('redis://tandem:s%40cret@h:1/0');
    expect(r.ok && r.value).toMatchObject({ username: 'tandem', password: 's@cret' });
    const p = parseRedisUrl('redis://:pw@h');
    expect(p.ok && p.value).toMatchObject({ password: 'pw' });
    expect(p.ok && 'username' in p.value).toBe(false);
    expect(redactRedisUrl('redis://tandem:secret@h:1')).toBe('redis://tandem:***@h:1');
  });

  it('reads a Sentinel list and master name', () => {
    expect(parseRedisUrl('redis-sentinel://10.0.0.1:26379,10.0.0.2,10.0.0.3:26380/mymaster')).toEqual({
      ok: true,
      value: {
        kind: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: '10.0.0.2', port: 26379 },
          { host: '10.0.0.3', port: 26380 },
        ],
        masterName: 'mymaster',
        db: 0,
      },
    });
    const withDb = parseRedisUrl('redis-sentinel://h:1/m/3');
    expect(withDb.ok && withDb.value).toMatchObject({ masterName: 'm', db: 3 });
  });

  it('names the fault of a bad URL', () => {
    for (const [url, fault] of [
      ['127.0.0.1:6379', 'not a URL'],
      ['http://h:1', 'unknown scheme'],
      ['rediss://h:1', 'TLS'],
      ['redis://h:99999', 'bad port'],
      ['redis://h:1/x', 'bad database'],
      ['redis://h:1/0/1', 'unexpected path'],
      ['redis-sentinel://h:1', 'missing master name'],
      ['redis-sentinel://h:1,:2/m', 'bad host'],
    ] as const) {
      const r = parseRedisUrl(url);
      expect(r.ok, url).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe('STATE_ERR_BAD_REDIS_URL');
        expect(r.reason, url).toContain(fault);
      }
    }
  });
});
