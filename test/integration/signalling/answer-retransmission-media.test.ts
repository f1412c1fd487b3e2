/**
 * `tandem start` with its media node: a 200 the callee sends again after the answer (it heard no
 * ACK yet, §13.3.1.4) reaches the caller again with the media node's SDP, the same relay address
 * and port as the first 200, never the callee's own. After the answer the proxy keeps only a
 * small record for such retransmissions (`AnsweredBranch`), so this is its path end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTandem, tempFile, type TandemProcess } from './helpers/tandem-process.js';
import { SAMPLE_SDP, TestCall, TestUa } from './helpers/test-ua.js';

const DOMAIN = 'example.test';
let tandem: TandemProcess;
const uas: TestUa[] = [];

beforeAll(async () => {
  const users = tempFile('users.csv', 'alice,alice-secret\nbob,bob-secret\n');
  // A private media port range: other suites run media nodes at the same time.
  const base = 50000 + Math.floor(Math.random() * 30) * 100;
  const cfg = tempFile('tandem.yaml', `media:\n  rtpPorts: ${base}-${base + 99}\n`);
  tandem = await startTandem(['--config', cfg, '--sip', 'udp:127.0.0.1:0', '--domain', DOMAIN, '--users', users]);
});

afterAll(async () => {
  for (const u of uas) u.close();
  await tandem?.stop();
});

async function ua(user: string): Promise<TestUa> {
  const u = await TestUa.create({ transport: 'udp', proxy: { host: '127.0.0.1', port: tandem.ports['udp']! }, user, password: `${user}-secret`, domain: DOMAIN });
  uas.push(u);
  expect((await u.register()).status).toBe(200);
  return u;
}

const audioPort = (sdp: string): number => Number(/m=audio (\d+)/.exec(sdp)?.[1]);

describe('tandem start with media: the callee\'s 2xx again', () => {
  it('reaches the caller again with the relay\'s SDP, as the first one did', async () => {
    const alice = await ua('alice');
    const bob = await ua('bob');
    const call = new TestCall(alice, 'bob');
    const calleeP = bob.waitRequest('INVITE', 10_000).then((inv) => {
      bob.send(bob.response(inv, 200, 'OK', { toTag: 'b1', body: SAMPLE_SDP(41000) }));
      return inv;
    });
    let first = await call.invite({ sdp: SAMPLE_SDP(40000) });
    const inv = await calleeP;
    if (first.status < 200) first = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200, 10_000);
    expect(first.status).toBe(200);
    const relayPort = audioPort(first.body.toString());
    expect(relayPort).toBeGreaterThan(0);
    expect(relayPort).not.toBe(41000);
    call.learn(first);

    bob.send(bob.response(inv, 200, 'OK', { toTag: 'b1', body: SAMPLE_SDP(41000) }));
    const again = await alice.waitResponse(call.callId, 'INVITE', (s) => s === 200, 5000);
    expect(again.getAll('Via').length).toBe(1);
    expect(audioPort(again.body.toString())).toBe(relayPort);

    call.ack2xx();
    await bob.waitRequest('ACK', 5000, call.callId);
    const byeP = bob.waitRequest('BYE', 5000, call.callId).then((bye) => bob.send(bob.response(bye, 200, 'OK')));
    expect((await call.bye()).status).toBe(200);
    await byeP;
  }, 30_000);
});
