/**
 * The operations dashboard, served by every node's admin server at `/`: one page with the cluster
 * map, live charts (uPlot, served from the node's own node_modules: no CDN, works offline), the
 * back-end PBXs and the event timeline, fed by the `/api/live` WebSocket.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from './dashboard-page.js';

interface Asset {
  type: string;
  body: string | Buffer;
}

let uplot: { js: Buffer; css: Buffer } | undefined | null;

/** uPlot's browser build, read once from the installed package; null when it is not installed. */
function uplotAssets(): { js: Buffer; css: Buffer } | null {
  if (uplot !== undefined) return uplot;
  try {
    const dist = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
    uplot = { js: readFileSync(join(dist, 'uPlot.iife.min.js')), css: readFileSync(join(dist, 'uPlot.min.css')) };
  } catch {
    uplot = null;
  }
  return uplot;
}

export function dashboardRoutes(): (app: FastifyInstance) => void {
  return (app) => {
    const assets: Record<string, () => Asset | undefined> = {
      'app.js': () => ({ type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS }),
      'app.css': () => ({ type: 'text/css; charset=utf-8', body: DASHBOARD_CSS }),
      'uPlot.iife.min.js': () => {
        const u = uplotAssets();
        return u ? { type: 'text/javascript; charset=utf-8', body: u.js } : undefined;
      },
      'uPlot.min.css': () => {
        const u = uplotAssets();
        return u ? { type: 'text/css; charset=utf-8', body: u.css } : undefined;
      },
    };
    app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(DASHBOARD_HTML));
    app.get<{ Params: { file: string } }>('/dashboard/:file', async (req, reply) => {
      const a = Object.hasOwn(assets, req.params.file) ? assets[req.params.file]!() : undefined;
      if (!a) return reply.code(404).send({ error: 'no such asset' });
      return reply.type(a.type).header('cache-control', 'max-age=300').send(a.body);
    });
  };
}
