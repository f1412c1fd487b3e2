import { afterEach, describe, expect, it } from 'vitest';
import { startAdminServer } from '../../../src/admin/admin-server.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const route = (app: import('fastify').FastifyInstance) => {
  app.get('/secret', async () => ({ callIds: ['a@b'] }));
  app.post('/change', async () => ({ changed: true }));
};

describe('admin API access rules', () => {
  it('refuses to bind off loopback without a token', async () => {
    await expect(startAdminServer({ host: '0.0.0.0', port: 0 })).rejects.toThrow(/needs a token/);
  });

  it('off loopback: every read but /health needs the token', async () => {
    const s = await startAdminServer({ host: '0.0.0.0', port: 0, token: 'tok-0123456789abcdef', routes: [route] });
    closers.push(s.close);
    expect((await s.app.inject({ url: '/secret' })).statusCode).toBe(401);
    expect((await s.app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await s.app.inject({ url: '/health' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/secret', headers: { authorization: 'Bearer tok-0123456789abcdef' } })).statusCode).toBe(200);
  });

  it('on loopback: reads are open, writes need the token; without a configured token the API is read-only', async () => {
    const withToken = await startAdminServer({ host: '127.0.0.1', port: 0, token: 'tok-0123456789abcdef', routes: [route] });
    closers.push(withToken.close);
    expect((await withToken.app.inject({ url: '/secret' })).statusCode).toBe(200);
    expect((await withToken.app.inject({ method: 'POST', url: '/change' })).statusCode).toBe(401);
    expect((await withToken.app.inject({ method: 'POST', url: '/change', headers: { authorization: 'Bearer nope' } })).statusCode).toBe(401);
    expect((await withToken.app.inject({ method: 'POST', url: '/change', headers: { authorization: 'Bearer tok-0123456789abcdef' } })).json()).toEqual({ changed: true });
    const noToken = await startAdminServer({ host: '127.0.0.1', port: 0, routes: [route] });
    closers.push(noToken.close);
    expect((await noToken.app.inject({ method: 'POST', url: '/change' })).statusCode).toBe(401);
  });
});
