import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import dgram from 'node:dgram';
import { NgClient } from '../../../src/ng/ng-client.js';
import { audioSdp, randomRtpRange, rtpPacket, sdpMedia, sendTo, sleep, spawnMediaNode, udpPeer, waitFor, type SpawnedMediaNode } from '../../integration/media/media-harness.js';

const KAMAILIO = '/usr/sbin/kamailio';
const FIXTURE = resolve(import.meta.dirname, '../../fixtures/kamailio/rtpengine-proxy.cfg');
const H = '127.0.0.1';
/** Tandem's media sockets bind (and advertise) 127.0.0.3 so the rewritten SDP is easy to tell apart from the phones'. */
const MEDIA_ADDR = '127.0.0.3';

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, H, () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Sip {
  firstLine: string;
  headers: Array<[string, string]>;
  body: string;
}

function parseSip(raw: string): Sip {
  const sep = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, sep).split('\r\n');
  return {
    firstLine: head[0]!,
    headers: head.slice(1).map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
    }),
    body: raw.slice(sep + 4),
  };
}

function hdr(m: Sip, name: string): string[] {
  return m.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

function sipMessage(firstLine: string, headers: Array<[string, string]>, body = ''): Buffer {
  const lines = [firstLine, ...headers.map(([n, v]) => `${n}: ${v}`)];
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
  return Buffer.from(lines.join('\r\n'));
}

const skip = !existsSync(KAMAILIO);

interface RunningKamailio {
  sipPort: number;
  log: () => string;
  stop: () => Promise<void>;
}

/** Starts Kamailio with the fixture config and the given rtpengine_sock value; resolves once it forwards an OPTIONS. */
async function startKamailio(ngSocks: string): Promise<RunningKamailio> {
  const sipPort = await freeUdpPort();
  const dir = mkdtempSync(join(tmpdir(), 'tandem-kamailio-'));
  const cfg = readFileSync(FIXTURE, 'utf8').replaceAll('__SIP_PORT__', String(sipPort)).replaceAll('__NG_SOCKS__', ngSocks);
  writeFileSync(join(dir, 'kamailio.cfg'), cfg);
  const proc: ChildProcess = spawn(KAMAILIO, ['-f', join(dir, 'kamailio.cfg'), '-DD', '-E', '-Y', dir, '-m', '32', '-M', '8'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-50_000)));
  proc.stdout!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-50_000)));
  const stop = async (): Promise<void> => {
    if (proc.pid && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      const kill = (sig: NodeJS.Signals): void => {
        try {
          process.kill(-proc.pid!, sig);
        } catch {
          /* gone */
        }
      };
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const probe = await udpPeer();
  try {
    const ok = await waitFor(() => {
      if (probe.received.length > 0) return true;
      const msg = sipMessage(`OPTIONS sip:probe@${H}:${probe.port} SIP/2.0`, [
        ['Via', `SIP/2.0/UDP ${H}:${probe.port};branch=z9hG4bK-probe${Date.now()}`],
        ['Max-Forwards', '70'],
        ['From', `<sip:probe@${H}>;tag=p`],
        ['To', `<sip:probe@${H}>`],
        ['Call-ID', `probe-${Date.now()}`],
        ['CSeq', '1 OPTIONS'],
      ]);
      probe.sock.send(msg, sipPort, H);
      return false;
    }, 15_000);
    if (!ok) {
      await stop();
      throw new Error(`kamailio did not start:\n${log}`);
    }
  } finally {
    probe.close();
  }
  return { sipPort, log: () => log, stop };
}

describe.skipIf(skip)('Kamailio (rtpengine module) with tandem media as its relay', () => {
  let media: SpawnedMediaNode;
  let kam: RunningKamailio;
  let sipPort: number;

  beforeAll(async () => {
    media = await spawnMediaNode(['--ng', `${H}:0`, '--interface', MEDIA_ADDR, '--rtp-ports', randomRtpRange(), '--workers', '1']);
    kam = await startKamailio(`udp:${H}:${media.ngPort}`);
    sipPort = kam.sipPort;
  }, 30_000);

  afterAll(async () => {
    if (process.env.KAMAILIO_LOG) writeFileSync(process.env.KAMAILIO_LOG, kam?.log() ?? '');
    await kam?.stop();
    expect(await media?.stop()).toBe(0);
  });

  it('uac-uas-call-media-anchored-on-tandem: SDP rewritten by Tandem, RTP flows through it, BYE deletes the session', async () => {
    const uaA = await udpPeer();
    const uaB = await udpPeer();
    const rtpA = await udpPeer();
    const rtpB = await udpPeer();
    const ng = new NgClient({ host: H, port: media.ngPort, retransmitIntervalMs: 500, retransmits: 2 });
    const callId = `kam-${Date.now()}@test`;
    try {
      const invite = sipMessage(`INVITE sip:bob@${H}:${uaB.port} SIP/2.0`, [
        ['Via', `SIP/2.0/UDP ${H}:${uaA.port};branch=z9hG4bK-inv1;rport`],
        ['Max-Forwards', '70'],
        ['From', `<sip:alice@${H}>;tag=alice1`],
        ['To', `<sip:bob@${H}>`],
        ['Call-ID', callId],
        ['CSeq', '1 INVITE'],
        ['Contact', `<sip:alice@${H}:${uaA.port}>`],
      ], audioSdp(rtpA.port, H, ['a=ice-ufrag:abcd', 'a=ice-pwd:0123456789abcdef012345']));
      await sendTo(uaA.sock, invite, sipPort);

      // Callee gets the INVITE with Tandem's address and port in the SDP.
      expect(await waitFor(() => uaB.received.some((r) => r.msg.toString().startsWith('INVITE')), 5000), kam.log()).toBe(true);
      const inv = parseSip(uaB.received.find((r) => r.msg.toString().startsWith('INVITE'))!.msg.toString());
      const offered = sdpMedia(inv.body);
      expect(offered.address).toBe(MEDIA_ADDR);
      expect(offered.port).not.toBe(rtpA.port);
      expect(inv.body).toContain(`o=- 1 1 IN IP4 ${MEDIA_ADDR}`);
      expect(inv.body).not.toContain('ice-ufrag');
      expect(inv.body).toContain('a=rtpmap:101 telephone-event/8000');

      const ok200 = sipMessage('SIP/2.0 200 OK', [
        ...hdr(inv, 'Via').map((v) => ['Via', v] as [string, string]),
        ...hdr(inv, 'Record-Route').map((v) => ['Record-Route', v] as [string, string]),
        ['From', hdr(inv, 'From')[0]!],
        ['To', `${hdr(inv, 'To')[0]!};tag=bob1`],
        ['Call-ID', callId],
        ['CSeq', '1 INVITE'],
        ['Contact', `<sip:bob@${H}:${uaB.port}>`],
      ], audioSdp(rtpB.port));
      await sendTo(uaB.sock, ok200, sipPort);

      expect(await waitFor(() => uaA.received.some((r) => r.msg.toString().startsWith('SIP/2.0 200')), 5000), kam.log()).toBe(true);
      const resp = parseSip(uaA.received.find((r) => r.msg.toString().startsWith('SIP/2.0 200'))!.msg.toString());
      const answered = sdpMedia(resp.body);
      expect(answered.address).toBe(MEDIA_ADDR);
      expect(answered.port).not.toBe(rtpB.port);
      expect(answered.port).not.toBe(offered.port);
      const route = hdr(resp, 'Record-Route').reverse();
      await sendTo(uaA.sock, sipMessage(`ACK sip:bob@${H}:${uaB.port} SIP/2.0`, [
        ['Via', `SIP/2.0/UDP ${H}:${uaA.port};branch=z9hG4bK-ack1;rport`],
        ...route.map((r) => ['Route', r] as [string, string]),
        ['Max-Forwards', '70'],
        ['From', `<sip:alice@${H}>;tag=alice1`],
        ['To', `${hdr(resp, 'To')[0]!}`],
        ['Call-ID', callId],
        ['CSeq', '1 ACK'],
      ]), sipPort);

      // RTP both ways through Tandem.
      for (let i = 0; i < 25; i++) {
        await sendTo(rtpA.sock, rtpPacket(i, 0xa1a1), answered.port, MEDIA_ADDR);
        await sendTo(rtpB.sock, rtpPacket(i, 0xb2b2), offered.port, MEDIA_ADDR);
        if (i % 5 === 4) await sleep(5);
      }
      expect(await waitFor(() => rtpA.received.length >= 25 && rtpB.received.length >= 25)).toBe(true);
      expect(rtpB.received[0]!.from).toBe(`${MEDIA_ADDR}:${offered.port}`);
      expect(rtpA.received[0]!.from).toBe(`${MEDIA_ADDR}:${answered.port}`);

      const q = await ng.query({ callId });
      expect(q.ok).toBe(true);
      if (q.ok) {
        expect((q.value['totals'] as { RTP: { packets: number } }).RTP.packets).toBe(50);
        expect(Object.keys(q.value['tags'] as object).sort()).toEqual(['alice1', 'bob1']);
      }

      // BYE through the proxy: Kamailio sends delete.
      await sendTo(uaA.sock, sipMessage(`BYE sip:bob@${H}:${uaB.port} SIP/2.0`, [
        ['Via', `SIP/2.0/UDP ${H}:${uaA.port};branch=z9hG4bK-bye1;rport`],
        ...route.map((r) => ['Route', r] as [string, string]),
        ['Max-Forwards', '70'],
        ['From', `<sip:alice@${H}>;tag=alice1`],
        ['To', `${hdr(resp, 'To')[0]!}`],
        ['Call-ID', callId],
        ['CSeq', '2 BYE'],
      ]), sipPort);
      expect(await waitFor(() => uaB.received.some((r) => r.msg.toString().startsWith('BYE')), 5000), kam.log()).toBe(true);
      // Kamailio read Tandem's query/delete statistics: $rtpstat (totals) and the MOS pvs (SSRC dict, label lookup).
      const bye = parseSip(uaB.received.find((r) => r.msg.toString().startsWith('BYE'))!.msg.toString());
      expect(hdr(bye, 'X-RTP-Stat')[0]).toBe('RTP: 8600 bytes, 50 packets, 0 errors; RTCP: 0 bytes, 0 packets, 0 errors');
      expect(hdr(bye, 'X-MOS')[0]).toBe('avg=4.4 min=4.4 samples=1 caller=4.4');
      const gone = await ng.query({ callId });
      expect(gone).toMatchObject({ ok: false, code: 'NG_ERR_REMOTE', reason: 'Unknown call-id' });
    } finally {
      ng.close();
      for (const p of [uaA, uaB, rtpA, rtpB]) p.close();
    }
  });

  it('uac-behind-nat-media-to-sip-source: without trust-address the SIP source address replaces the SDP address', async () => {
    const uaA = await udpPeer();
    const uaB = await udpPeer();
    const rtpA = await udpPeer();
    const rtpB = await udpPeer();
    const ng = new NgClient({ host: H, port: media.ngPort, retransmitIntervalMs: 500, retransmits: 2 });
    const callId = `kam-nat-${Date.now()}@test`;
    const flags = 'replace-origin ICE=remove';
    try {
      // Both phones put unreachable private addresses in their SDP (as behind NAT).
      await sendTo(uaA.sock, sipMessage(`INVITE sip:bob@${H}:${uaB.port} SIP/2.0`, [
        ['Via', `SIP/2.0/UDP ${H}:${uaA.port};branch=z9hG4bK-nat1;rport`],
        ['Max-Forwards', '70'],
        ['From', `<sip:alice@${H}>;tag=alice3`],
        ['To', `<sip:bob@${H}>`],
        ['Call-ID', callId],
        ['CSeq', '1 INVITE'],
        ['Contact', `<sip:alice@${H}:${uaA.port}>`],
        ['X-Rtpe-Flags', flags],
      ], audioSdp(rtpA.port, '10.99.99.1')), sipPort);
      expect(await waitFor(() => uaB.received.some((r) => r.msg.toString().startsWith('INVITE')), 5000), kam.log()).toBe(true);
      const inv = parseSip(uaB.received.find((r) => r.msg.toString().startsWith('INVITE'))!.msg.toString());
      const offered = sdpMedia(inv.body);
      expect(offered.address).toBe(MEDIA_ADDR);
      await sendTo(uaB.sock, sipMessage('SIP/2.0 200 OK', [
        ...hdr(inv, 'Via').map((v) => ['Via', v] as [string, string]),
        ...hdr(inv, 'Record-Route').map((v) => ['Record-Route', v] as [string, string]),
        ['From', hdr(inv, 'From')[0]!],
        ['To', `${hdr(inv, 'To')[0]!};tag=bob3`],
        ['Call-ID', callId],
        ['CSeq', '1 INVITE'],
        ['Contact', `<sip:bob@${H}:${uaB.port}>`],
        ['X-Rtpe-Flags', flags],
      ], audioSdp(rtpB.port, '10.99.99.2')), sipPort);
      expect(await waitFor(() => uaA.received.some((r) => r.msg.toString().startsWith('SIP/2.0 200')), 5000), kam.log()).toBe(true);
      const resp = parseSip(uaA.received.find((r) => r.msg.toString().startsWith('SIP/2.0 200'))!.msg.toString());
      const answered = sdpMedia(resp.body);
      expect(answered.address).toBe(MEDIA_ADDR);
      // The callee speaks first: Tandem must send to the caller's SIP source address (127.0.0.1), not 10.99.99.1.
      await sendTo(rtpB.sock, rtpPacket(1, 0xb3), offered.port, MEDIA_ADDR);
      expect(await waitFor(() => rtpA.received.length === 1)).toBe(true);
      await sendTo(rtpA.sock, rtpPacket(1, 0xa3), answered.port, MEDIA_ADDR);
      expect(await waitFor(() => rtpB.received.length === 1)).toBe(true);
      const q = await ng.query({ callId });
      const tags = q.ok ? (q.value['tags'] as Record<string, { medias: Array<{ streams: Array<{ 'advertised endpoint': { address: string } }> }> }>) : {};
      expect(tags['alice3']?.medias[0]?.streams[0]?.['advertised endpoint'].address).toBe(H);
      expect((await ng.delete({ callId, fromTag: 'alice3' })).ok).toBe(true);
    } finally {
      ng.close();
      for (const p of [uaA, uaB, rtpA, rtpB]) p.close();
    }
  });
});

describe.skipIf(skip)('Kamailio with two media nodes, the first at its session limit', () => {
  let full: SpawnedMediaNode;
  let spare: SpawnedMediaNode;
  let kam: RunningKamailio;

  beforeAll(async () => {
    full = await spawnMediaNode(['--ng', `${H}:0`, '--rtp-ports', randomRtpRange(40), '--workers', '1', '--max-sessions', '1']);
    spare = await spawnMediaNode(['--ng', `${H}:0`, '--interface', MEDIA_ADDR, '--rtp-ports', randomRtpRange(40), '--workers', '1']);
    // The first node gets (almost) every call by weight.
    kam = await startKamailio(`udp:${H}:${full.ngPort}=1000 udp:${H}:${spare.ngPort}=1`);
  }, 30_000);

  afterAll(async () => {
    await kam?.stop();
    expect(await full?.stop()).toBe(0);
    expect(await spare?.stop()).toBe(0);
  });

  it('proxy-fails-over-on-load-limit: the call is anchored on the second node', async () => {
    const ngFull = new NgClient({ host: H, port: full.ngPort, retransmitIntervalMs: 500, retransmits: 2 });
    const ngSpare = new NgClient({ host: H, port: spare.ngPort, retransmitIntervalMs: 500, retransmits: 2 });
    const uaA = await udpPeer();
    const uaB = await udpPeer();
    const callId = `kam-ll-${Date.now()}@test`;
    try {
      expect((await ngFull.offer({ callId: 'filler', fromTag: 'f', sdp: audioSdp(4000) })).ok).toBe(true);
      await sendTo(uaA.sock, sipMessage(`INVITE sip:bob@${H}:${uaB.port} SIP/2.0`, [
        ['Via', `SIP/2.0/UDP ${H}:${uaA.port};branch=z9hG4bK-ll1;rport`],
        ['Max-Forwards', '70'],
        ['From', `<sip:alice@${H}>;tag=alice2`],
        ['To', `<sip:bob@${H}>`],
        ['Call-ID', callId],
        ['CSeq', '1 INVITE'],
        ['Contact', `<sip:alice@${H}:${uaA.port}>`],
      ], audioSdp(4100)), kam.sipPort);
      expect(await waitFor(() => uaB.received.some((r) => r.msg.toString().startsWith('INVITE')), 5000), kam.log()).toBe(true);
      const inv = parseSip(uaB.received.find((r) => r.msg.toString().startsWith('INVITE'))!.msg.toString());
      expect(sdpMedia(inv.body).address).toBe(MEDIA_ADDR);
      const onSpare = await ngSpare.list();
      expect(onSpare.ok && onSpare.value['calls']).toEqual([callId]);
      const onFull = await ngFull.list();
      expect(onFull.ok && onFull.value['calls']).toEqual(['filler']);
      expect(kam.log()).toMatch(/load limit/);
    } finally {
      ngFull.close();
      ngSpare.close();
      uaA.close();
      uaB.close();
    }
  });
});
