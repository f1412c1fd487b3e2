/**
 * The media session record kept in Redis (state/redis/media-session-store.ts): a call's
 * {@link CallExport} as JSON with a schema number. Records come from other nodes, so they are
 * peer input: {@link decodeSessionRecord} checks every field and returns a failure (counted by the
 * caller) for a wrong schema, a missing field or garbage; it never throws.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { CallExport } from '../sessions/session-export.js';
import type { Result } from '../../util/result.js';

/** Schema of the records this code writes; others are skipped (and counted) as `schema`. */
export const SESSION_RECORD_SCHEMA = 1;

const port = z.number().int().min(1).max(65535);
const endpoint = z.object({ address: z.string().refine((s) => isIP(s) !== 0), port });
const legPorts = z.object({ rtpPort: port, rtcpPort: port });
const count = z.number().finite();
const channel = z.object({ packets: count, bytes: count, errors: count, lastPacketMs: count });
const leg = z.object({
  rtp: channel,
  rtcp: channel,
  ssrcs: z.array(z.object({ ssrc: count, packets: count, bytes: count, lost: count, lastSeq: count, lastTimestamp: count, jitterMs: count, lastPacketMs: count })).max(64),
});
const peer = z.object({
  rtp: endpoint.optional(),
  rtcp: endpoint.optional(),
  latch: z.boolean(),
  strict: z.boolean(),
  latchedRtp: endpoint.optional(),
  latchedRtcp: endpoint.optional(),
});
const party = z.object({ tag: z.string().min(1), label: z.string().optional(), createdMs: count });
const recordSchema = z.object({
  schema: z.literal(SESSION_RECORD_SCHEMA),
  callId: z.string().min(1),
  createdMs: count,
  lastSignalMs: count,
  dialogues: z
    .array(
      z.object({
        a: party,
        b: party.optional(),
        answered: z.boolean(),
        createdMs: count,
        lastSignalMs: count,
        media: z
          .array(
            z.object({
              index: z.number().int().min(0).max(63),
              type: z.string(),
              protocol: z.string(),
              rtcpMux: z.boolean(),
              ports: z.object({ a: legPorts, b: legPorts }),
              advertised: z.object({ a: endpoint.optional(), b: endpoint.optional() }),
              peer: z.object({ a: peer.optional(), b: peer.optional() }),
              counters: z.object({ a: leg, b: leg }).optional(),
            }),
          )
          .max(64),
      }),
    )
    .min(1)
    .max(64),
});

export function encodeSessionRecord(call: CallExport): string {
  return JSON.stringify({ schema: SESSION_RECORD_SCHEMA, ...call });
}

/** Why a record was skipped: `json` (not JSON), `schema` (another schema number), `fields` (missing or wrong fields), `call-id` (names another call). */
export type RecordFault = 'json' | 'schema' | 'fields' | 'call-id';

export function decodeSessionRecord(text: string, expectedCallId?: string): Result<CallExport, RecordFault> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: 'MEDIA_ERR_RECORD', reason: 'json' };
  }
  if (!raw || typeof raw !== 'object' || (raw as { schema?: unknown }).schema !== SESSION_RECORD_SCHEMA) return { ok: false, code: 'MEDIA_ERR_RECORD', reason: 'schema' };
  const r = recordSchema.safeParse(raw);
  if (!r.success) return { ok: false, code: 'MEDIA_ERR_RECORD', reason: 'fields' };
  const { schema: _schema, ...call } = r.data;
  if (expectedCallId !== undefined && call.callId !== expectedCallId) return { ok: false, code: 'MEDIA_ERR_RECORD', reason: 'call-id' };
  return { ok: true, value: call as CallExport };
}
