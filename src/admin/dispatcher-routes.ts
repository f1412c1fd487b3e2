import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ALGORITHMS, HASH_KEYS } from '../signalling/dispatcher/algorithms.js';
import type { Dispatcher } from '../signalling/dispatcher/dispatcher.js';
import type { Prober } from '../signalling/dispatcher/prober.js';

const addBody = z
  .object({
    uri: z.string().regex(/^sips?:[^\s]+$/i, 'a sip: or sips: URI'),
    weight: z.number().int().min(0).max(1_000_000).optional(),
    priority: z.number().int().optional(),
    maxCalls: z.number().int().min(1).optional(),
    attrs: z.record(z.string(), z.string()).optional(),
    state: z.enum(['enabled', 'disabled', 'draining']).optional(),
  })
  .strict();
const setBody = z.object({ algorithm: z.enum(ALGORITHMS), hashKey: z.enum(HASH_KEYS).optional() }).strict();

/**
 * Admin API of the dispatcher (installs on the admin server through its `routes` option):
 *
 * - `GET    /dispatcher/sets`                                 every set with destination state
 * - `GET    /dispatcher/sets/:set`
 * - `PUT    /dispatcher/sets/:set`                            `{ algorithm, hashKey? }` create/change
 * - `DELETE /dispatcher/sets/:set`
 * - `POST   /dispatcher/sets/:set/destinations`               `{ uri, weight?, priority?, maxCalls?, attrs?, state? }`
 * - `DELETE /dispatcher/sets/:set/destinations/:uri`          (uri URL-encoded)
 * - `POST   /dispatcher/sets/:set/destinations/:uri/:action`  action = enable | disable | drain | up | down
 * - `POST   /dispatcher/probe`                                probe every destination now
 */
export function dispatcherRoutes(dispatcher: Dispatcher, prober?: Prober): (app: FastifyInstance) => void {
  return (app) => {
    app.get('/dispatcher/sets', async () => ({ sets: dispatcher.view(), trackedCalls: dispatcher.trackedCalls }));

    app.get<{ Params: { set: string } }>('/dispatcher/sets/:set', async (req, reply) => {
      const s = dispatcher.sets.get(req.params.set);
      if (!s) return reply.code(404).send({ error: 'no such set' });
      dispatcher.refreshLoad(s);
      return s.toJSON();
    });

    app.put<{ Params: { set: string } }>('/dispatcher/sets/:set', async (req, reply) => {
      const body = setBody.safeParse(req.body ?? {});
      if (!body.success) return reply.code(400).send({ error: body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') });
      return dispatcher.defineSet(req.params.set, body.data.algorithm, body.data.hashKey ?? 'call-id').toJSON();
    });

    app.delete<{ Params: { set: string } }>('/dispatcher/sets/:set', async (req, reply) => {
      if (!dispatcher.removeSet(req.params.set)) return reply.code(404).send({ error: 'no such set' });
      return { removed: req.params.set };
    });

    app.post<{ Params: { set: string } }>('/dispatcher/sets/:set/destinations', async (req, reply) => {
      const body = addBody.safeParse(req.body ?? {});
      if (!body.success) return reply.code(400).send({ error: body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') });
      const { state, ...spec } = body.data;
      const d = dispatcher.addDestination(req.params.set, spec);
      if (state) dispatcher.setAdminState(req.params.set, d.uri, state);
      if (prober) void prober.probe(d.uri);
      return reply.code(201).send(d.toJSON());
    });

    app.delete<{ Params: { set: string; uri: string } }>('/dispatcher/sets/:set/destinations/:uri', async (req, reply) => {
      if (!dispatcher.removeDestination(req.params.set, req.params.uri)) return reply.code(404).send({ error: 'no such destination' });
      return { removed: req.params.uri };
    });

    app.post<{ Params: { set: string; uri: string; action: string } }>('/dispatcher/sets/:set/destinations/:uri/:action', async (req, reply) => {
      const { set, uri, action } = req.params;
      const s = dispatcher.sets.get(set);
      const d = s?.find(uri);
      if (!s || !d) return reply.code(404).send({ error: 'no such destination' });
      switch (action) {
        case 'enable':
          dispatcher.setAdminState(set, uri, 'enabled');
          break;
        case 'disable':
          dispatcher.setAdminState(set, uri, 'disabled');
          break;
        case 'drain':
          dispatcher.setAdminState(set, uri, 'draining');
          break;
        case 'up':
        case 'down':
          dispatcher.setHealth(uri, action);
          break;
        default:
          return reply.code(400).send({ error: 'action must be enable, disable, drain, up or down' });
      }
      dispatcher.refreshLoad(s);
      return d.toJSON();
    });

    app.post('/dispatcher/probe', async (_req, reply) => {
      if (!prober) return reply.code(409).send({ error: 'probing is disabled' });
      await prober.probeAll();
      return { sets: dispatcher.view() };
    });
  };
}
