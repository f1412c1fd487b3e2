/**
 * A media cluster node (`tandem media --vip`) in the cluster view: it heartbeats as role `media`,
 * so a signalling node's /api/cluster (and so its dashboard and `tandem status`) lists it with
 * the VIP it holds and its sessions; the media node serves the same API itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterSnapshot } from '../../../src/admin/cluster-monitor.js';
import { NgClient } from '../../../src/ng/ng-client.js';
import { spawnClusterNode } from '../media/media-cluster-harness.js';
import { audioSdp, randomRtpRange, type SpawnedMediaNode } from '../media/media-harness.js';
import { startTandem, type TandemProcess } from '../signalling/helpers/tandem-process.js';
import { freePort, SingleRedis, waitFor } from '../state/redis-harness.js';

const MEDIA_VIP = '127.0.0.21';
let redis: SingleRedis;
let media: SpawnedMediaNode;
let sig: TandemProcess;
let sigAdmin = '';
let ngPort = 0;

beforeAll(async () => {
  redis = await SingleRedis.start();
  ngPort = await freePort();
  media = await spawnClusterNode({ name: 'm1', vip: MEDIA_VIP, ngPort, redisUrl: redis.url, rtpPorts: randomRtpRange(100) });
  sig = await startTandem(['--node-id', 's1', '--sip', 'udp:127.0.0.1:0', '--no-auth', '--no-media', '--redis', redis.url, '--admin', '127.0.0.1:0']);
  sigAdmin = /admin=(http:\/\/127\.0\.0\.1:\d+)/.exec(sig.stdout.join(''))![1]!;
}, 60_000);

afterAll(async () => {
  await sig?.stop('SIGKILL');
  await media?.stop();
  await redis?.stop();
});

describe('media nodes in the cluster view', () => {
  it('a signalling node lists the media node: role media, its VIP, its sessions', async () => {
    const ng = new NgClient({ host: MEDIA_VIP, port: ngPort, timeoutMs: 2000 });
    try {
      const r = await ng.command({ command: 'offer', 'call-id': 'ops-media-1', 'from-tag': 'a', sdp: audioSdp(41000) });
      expect(r.ok && r.value['result']).toBe('ok');
    } finally {
      ng.close();
    }
    const m1 = await waitFor('m1 with a session', async () => {
      const s = (await (await fetch(`${sigAdmin}/api/cluster`)).json()) as ClusterSnapshot;
      const n = s.nodes.find((x) => x.nodeId === 'm1');
      return n?.live && n.stats && n.stats.mediaSessions >= 1 ? n : undefined;
    }, 10_000, 200);
    expect(m1.meta?.['role']).toBe('media');
    expect(m1.vips).toEqual([MEDIA_VIP]);
    expect(m1.stats!.ng).toEqual([`${MEDIA_VIP}:${ngPort}`]);
    const own = (await (await fetch(`http://127.0.0.1:${media.adminPort}/api/cluster`)).json()) as ClusterSnapshot;
    expect(own.nodeId).toBe('m1');
    expect(own.vips).toEqual([{ vip: MEDIA_VIP, holder: 'm1', epoch: expect.any(Number) as number }]);
    expect(own.nodes.map((n) => n.nodeId).sort()).toEqual(['m1', 's1']);
    expect((await fetch(`http://127.0.0.1:${media.adminPort}/`)).status).toBe(200);
  });
});
