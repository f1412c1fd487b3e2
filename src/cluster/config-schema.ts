/**
 * The `cluster` and `state` sections of the Tandem config: who this node is, which shared
 * addresses it may serve and how they move, and where shared state lives.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseRedisUrl } from '../state/redis/redis-url.js';

export const clusterConfigSchema = z
  .object({
    /** This node's name, unique in the cluster (records and leases carry it). @default the host name and pid */
    nodeId: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)').optional(),
    /** Cluster name: namespaces every Redis key, so several clusters can share one Redis. @default 'tandem' */
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)').default('tandem'),
    /**
     * Shared addresses (VIPs). The node serves each of its SIP transports' ports on each VIP it
     * holds, and writes the first VIP into Via and Record-Route. @default []
     */
    vips: z.array(z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IP address' })).default([]),
    /**
     * How a VIP moves: `keepalived` (an outside manager moves the address; sockets are bound in
     * advance, which needs net.ipv4.ip_nonlocal_bind=1) or `lease` (the nodes elect the holder
     * through a lease in Redis; what runs on one machine and where VRRP cannot).
     * @default 'keepalived'
     */
    takeover: z.enum(['keepalived', 'lease']).default('keepalived'),
    /** Lease lifetime: a dead holder's VIP moves after at most this plus leasePollMs. @default 600 */
    leaseTtlMs: z.number().int().min(100).max(60_000).default(600),
    /** How often a node without a VIP tries to take it, ms. @default 100 */
    leasePollMs: z.number().int().min(10).max(10_000).default(100),
    /**
     * Calls still ringing survive their node: each INVITE's forwarded branches are written to
     * Redis once (one write per INVITE), so a peer can complete, CANCEL or fail them. @default true
     */
    keepRingingCalls: z.boolean().default(true),
  })
  .strict();

export const stateConfigSchema = z
  .object({
    /**
     * Shared state: `redis://host:port[/db]` for one server, `redis-sentinel://h1:p1,h2:p2/mastername`
     * for Sentinel. In memory (one process) when absent.
     */
    redis: z
      .string()
      .refine((s) => parseRedisUrl(s).ok, { message: 'expected redis://host:port[/db] or redis-sentinel://h1:p1,h2:p2/mastername' })
      .optional(),
  })
  .strict();

export type ClusterConfig = z.infer<typeof clusterConfigSchema>;
export type StateConfig = z.infer<typeof stateConfigSchema>;
