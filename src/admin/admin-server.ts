import Fastify, { type FastifyInstance } from 'fastify';
import { metricsRegistry } from '../util/metrics.js';

export interface AdminServerOptions {
  /** Address to listen on, e.g. 127.0.0.1. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Called before listening so each role can add its routes (status, dispatcher sets, sessions). */
  routes?: Array<(app: FastifyInstance) => void>;
}

/** HTTP admin API shared by every role: /health, /metrics (Prometheus) plus role routes. */
export async function startAdminServer(opts: AdminServerOptions): Promise<{ app: FastifyInstance; port: number; close: () => Promise<void> }> {
  const app = Fastify({ logger: false });
  app.get('/health', async () => ({ status: 'ok', pid: process.pid, uptimeSec: Math.round(process.uptime()) }));
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metricsRegistry.contentType);
    return metricsRegistry.metrics();
  });
  for (const add of opts.routes ?? []) add(app);
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return { app, port, close: () => app.close() };
}
