/**
 * Interop: Debian's baresip (an independent SIP UA) registers to `tandem start` with digest auth,
 * places a call to a Tandem test UA and answers a call from it. Media is relayed by Tandem's
 * in-process media node (the default).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTandem, tempFile, type TandemProcess } from '../../integration/signalling/helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from '../../integration/signalling/helpers/test-ua.js';
import type { SipResponse } from '../../../src/sip/message/sip-message.js';

const DOMAIN = 'example.test';
const HAVE_BARESIP = existsSync('/usr/bin/baresip');
let tandem: TandemProcess;
let baresip: ChildProcess | undefined;
let alice: TestUa;
const baresipOut: string[] = [];

/**
 * A port free for UDP and TCP at once (baresip's `sip_listen` binds both), below the ephemeral
 * range that other suites' outgoing TCP connections take their ports from.
 */
async function freeSipPort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const udp = dgram.createSocket('udp4');
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, '127.0.0.1', () => {
        tcp.once('error', () => r(false));
        tcp.listen(port, '127.0.0.1', () => r(true));
      });
    });
    await new Promise<void>((r) => udp.close(() => r()));
    await new Promise<void>((r) => (tcp.listening ? tcp.close(() => r()) : r()));
    if (ok) return port;
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; baresip said: ${baresipOut.join('').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!HAVE_BARESIP)('interop: baresip <-> tandem start', () => {
  beforeAll(async () => {
    const users = tempFile('users.csv', 'alice,alice-secret\ncarol,carol-secret\n');
    // libre-based baresip 1.0 fails on any SHA-256 challenge: offer MD5 only.
    // A private media port range: other suites run media nodes at the same time.
    const base = 47000 + Math.floor(Math.random() * 30) * 100;
    const cfg = tempFile('tandem.yaml', `signalling:\n  auth:\n    algorithms: [MD5]\nmedia:\n  rtpPorts: ${base}-${base + 99}\n`);
    tandem = await startTandem(['--config', cfg, '--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users]);
    alice = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: tandem.ports['udp']! }, user: 'alice', password: 'alice-secret', domain: DOMAIN });
    expect((await alice.register()).status).toBe(200);

    // The port can still be taken between the check and baresip's bind: then it says so at
    // once and is started again on another one.
    for (let attempt = 1; ; attempt++) {
      baresip = await startBaresip();
      await new Promise((r) => setTimeout(r, 1500));
      if (!/Address already in use/.test(baresipOut.join('')) || attempt === 3) break;
      baresip.kill('SIGKILL');
      baresipOut.length = 0;
    }
  }, 30000);

  /** baresip with its SIP port chosen here; it places its call at start-up (-e), then stays registered and auto-answers. */
  async function startBaresip(): Promise<ChildProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'baresip-'));
    const sipPort = await freeSipPort();
    writeFileSync(
      join(dir, 'config'),
      [
        'poll_method epoll',
        `sip_listen 127.0.0.1:${sipPort}`,
        'module_path /usr/lib/baresip/modules',
        'module g711.so',
        'module ausine.so',
        'module aufile.so',
        'module account.so',
        'module menu.so',
        'audio_player aufile,/dev/null',
        'audio_source ausine,440',
        'audio_alert aufile,/dev/null',
        'rtp_ports 42000-42999',
        'ausrc_srate 48000',
        'ausrc_channels 2',
        'auplay_channels 2',
        'auplay_srate 48000',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'accounts'),
      `<sip:carol@${DOMAIN};transport=udp>;auth_pass=carol-secret;outbound="sip:127.0.0.1:${tandem.ports['udp']}";answermode=auto;regint=600\n`,
    );
    const child = spawn('baresip', ['-f', dir, '-e', `/dial sip:alice@${DOMAIN}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => baresipOut.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => baresipOut.push(d));
    return child;
  }

  afterAll(async () => {
    if (process.env.SHOW_BARESIP) console.log(baresipOut.join(''), tandem?.stderr.join(''));
    alice?.close();
    if (baresip && baresip.exitCode === null) {
      baresip.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      if (baresip.exitCode === null) baresip.kill('SIGKILL');
    }
    await tandem?.stop();
  });

  it('uac-baresip-to-tandem-ua: baresip authenticates (407), call is answered, media relayed, BYE from Tandem UA', async () => {
    const inv = await alice.waitRequest('INVITE', 10000);
    // SDP rewritten by Tandem's media node: not baresip's own RTP port range.
    const port = Number(/m=audio (\d+)/.exec(inv.body.toString())?.[1]);
    expect(port).toBeGreaterThan(0);
    expect(port < 42000 || port > 42999).toBe(true);
    expect(inv.getAll('Record-Route').length).toBe(1);
    alice.send(alice.response(inv, 180, 'Ringing', { toTag: 'a1' }));
    alice.send(alice.response(inv, 200, 'OK', { toTag: 'a1', body: SAMPLE_SDP(43000) }));
    await alice.waitRequest('ACK', 5000, inv.callId);
    // BYE from the callee side towards baresip, through the Record-Route.
    const rr = inv.getAll('Record-Route');
    const contact = /<([^>]+)>/.exec(inv.get('Contact') ?? '')?.[1] ?? '';
    const bye = [
      `BYE ${contact} SIP/2.0`,
      `Via: ${alice.via()}`,
      'Max-Forwards: 70',
      ...rr.map((r) => `Route: ${r}`),
      `From: ${inv.get('To')};tag=a1`,
      `To: ${inv.get('From')}`,
      `Call-ID: ${inv.callId}`,
      'CSeq: 1 BYE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    alice.send(bye);
    const res = await alice.waitResponse(inv.callId, 'BYE', (s) => s >= 200, 5000);
    expect(res.status).toBe(200);
  }, 20000);

  it('uas-baresip-answers-tandem-ua: Tandem UA calls baresip (registered with digest), auto-answer, ACK, BYE', async () => {
    await waitFor(() => baresipOut.join('').includes('200 OK') && baresipOut.join('').includes('binding'), 10000, 'baresip registration');
    const call = new TestCall(alice, 'carol');
    let res = await call.invite({ sdp: SAMPLE_SDP(44000) });
    if (res.status < 200) res = await alice.waitResponse(call.callId, 'INVITE', (s) => s >= 200, 10000);
    expect(res.status).toBe(200);
    const port = Number(/m=audio (\d+)/.exec(res.body.toString())?.[1]);
    expect(port < 42000 || port > 42999).toBe(true);
    call.learn(res as SipResponse);
    call.ack2xx();
    await new Promise((r) => setTimeout(r, 300));
    const bye = await call.bye();
    expect(bye.status).toBe(200);
  }, 20000);
});
