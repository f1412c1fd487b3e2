/**
 * Helpers for tests of `tandem media --vip` clusters: spawn a node, read its cluster view over
 * the admin API, find the lease holder in Redis, set calls up on the VIP.
 */
import { expect } from 'vitest';
import { NgClient } from '../../../src/ng/ng-client.js';
import { respCommand } from '../state/redis-harness.js';
import { audioSdp, sdpMedia, spawnMediaNode, type SpawnedMediaNode } from './media-harness.js';
import type { RtpCalls } from './rtp-calls.js';

export interface ClusterNodeSpec {
  name: string;
  vip: string;
  ngPort: number;
  redisUrl: string;
  rtpPorts: string;
  leaseTtlMs?: number;
  leasePollMs?: number;
  extra?: string[];
}

export function spawnClusterNode(s: ClusterNodeSpec): Promise<SpawnedMediaNode> {
  return spawnMediaNode([
    '--node-id', s.name, '--vip', s.vip, '--takeover', 'lease', '--redis', s.redisUrl,
    '--ng', `${s.vip}:${s.ngPort}`, '--interface', s.vip, '--rtp-ports', s.rtpPorts, '--workers', '1',
    '--lease-ttl', String(s.leaseTtlMs ?? 600), '--lease-poll', String(s.leasePollMs ?? 50), '--admin', '127.0.0.1:0',
    ...(s.extra ?? []),
  ]);
}

export interface VipStatus {
  vip: string;
  held: boolean;
  epoch: number;
  own: number;
  foreign: number;
  takenOver: number;
  lastTakeover?: { tookMs: number; adopted: number; failed: number; ngMs: number; replayMs: number; adoptMs: number; catchUp: number };
}
export interface ClusterStatus {
  nodeId: string;
  redis: { commands: boolean; subscriber: boolean; outboxDepth: number; resyncs: number };
  replication: { messages: number; garbled: number; scans: number; scanFailures: number; written: number; stale: number };
  vips: VipStatus[];
}

/** The node's cluster view (GET /media/cluster), undefined when it does not answer. */
export async function clusterStatus(n: SpawnedMediaNode): Promise<ClusterStatus | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${n.adminPort}/media/cluster`, { signal: AbortSignal.timeout(2000) });
    return (await r.json()) as ClusterStatus;
  } catch {
    return undefined;
  }
}

/** Node id holding the media lease of `vip` (Redis read directly). */
export async function leaseHolder(redisPort: number, vip: string, cluster = 'tandem'): Promise<string | undefined> {
  const v = await respCommand(redisPort, ['GET', `tandem:${cluster}:lease:media-${vip}`]);
  return typeof v === 'string' ? v.split('|')[0] : undefined;
}

/** Offer + answer of call `callId` on the VIP for the `i`-th call of `rtp` (its sockets get the relay ports). */
export async function setUpCall(ng: NgClient, rtp: RtpCalls, i: number, callId: string): Promise<void> {
  const c = rtp.calls[i] ?? (await rtp.add());
  const o = await ng.offer({ callId, fromTag: `a-${callId}`, sdp: audioSdp(c.aPort, rtp.localAddress), flags: ['trust-address'] });
  expect(o.ok, o.ok ? '' : o.reason).toBe(true);
  const a = await ng.answer({ callId, fromTag: `a-${callId}`, toTag: `b-${callId}`, sdp: audioSdp(c.bPort, rtp.localAddress), flags: ['trust-address'] });
  expect(a.ok, a.ok ? '' : a.reason).toBe(true);
  if (o.ok && a.ok) rtp.connect(i, sdpMedia(a.value.sdp).port, sdpMedia(o.value.sdp).port);
}
