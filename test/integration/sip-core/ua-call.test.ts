import { afterEach, describe, expect, it } from 'vitest';
import { DigestAuthenticator } from '../../../src/sip/auth/digest-server.js';
import { createResponse } from '../../../src/sip/message/builders.js';
import { UserAgent, type IncomingCall } from '../../../src/sip/ua/user-agent.js';
import type { TransportName } from '../../../src/sip/transport/types.js';
import { makeTestCert, waitFor } from './helpers.js';

const cert = makeTestCert();
const uas: UserAgent[] = [];
afterEach(async () => {
  await Promise.all(uas.splice(0).map((u) => u.close()));
});

async function agent(transport: TransportName, opts: ConstructorParameters<typeof UserAgent>[1] = {}) {
  const ua = await UserAgent.create([{ transport, address: '127.0.0.1', port: 0, ...(transport === 'tls' ? { tls: cert } : {}) }], {
    ...opts,
    transport,
    transportOptions: { tlsClient: { ca: cert.cert } },
    // Short timers so every transaction ends within the test; the state machines are the real ones.
    transactionOptions: { t1Ms: 50, t4Ms: 100 },
  });
  uas.push(ua);
  return ua;
}

describe.each(['udp', 'tcp', 'tls'] as const)('user agents over %s on loopback', (transport) => {
  it('REGISTER with digest, call set-up, in-dialog request, BYE both ways, CANCEL; no transaction left', async () => {
    const alice = await agent(transport, { aor: 'sip:alice@127.0.0.1', credentials: { username: 'alice', password: 'pw' } });
    const bob = await agent(transport, { aor: 'sip:bob@127.0.0.1' });
    const port = bob.transportLayer!.listeningPoints[0]!.port;
    const bobUri = `sip:bob@127.0.0.1:${port}${transport === 'udp' ? '' : `;transport=${transport}`}`;
    const auth = new DigestAuthenticator({ realm: 'tandem.test', secret: 's', users: { lookup: (u) => (u === 'alice' ? { username: u, password: 'pw' } : undefined) } });
    bob.setRequestHandler((req, tx) => {
      if (req.method !== 'REGISTER') return tx.respond(createResponse(req, req.method === 'OPTIONS' ? 200 : 405));
      const v = auth.verify(req.getAll('Authorization'), req.method);
      if (v.ok) tx.respond(createResponse(req, 200, 'OK', { headers: [['Contact', `${req.get('Contact')!};expires=60`]] }));
      else tx.respond(createResponse(req, 401, undefined, { headers: auth.challenges().map((c) => ['WWW-Authenticate', c] as [string, string]) }));
    });

    const reg = await alice.register({ registrar: bobUri, expiresSec: 60 });
    expect(reg.status).toBe(200);
    expect((await alice.request({ method: 'OPTIONS', uri: bobUri })).status).toBe(200);

    // Call 1: answered, Alice hangs up.
    let incoming: IncomingCall | undefined;
    bob.onInvite((call) => {
      incoming = call;
      call.ring();
      setTimeout(() => void call.answer('v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n'), 10);
    });
    const call = alice.invite({ uri: bobUri, sdp: 'v=0\r\n' });
    const final = await call.final;
    expect(final.status).toBe(200);
    expect(call.provisionals.some((r) => r.status === 180)).toBe(true);
    expect(final.body.toString()).toContain('o=- 1 1');
    const bobDialog = await waitFor(() => (incoming?.state === 'confirmed' ? incoming.dialog : undefined));
    expect((await call.dialog!.request('INFO')).status).toBe(200);
    expect((await call.bye()).status).toBe(200);
    await bobDialog.ended;

    // Call 2: Bob hangs up (request in the other direction, to Alice's Contact).
    const call2 = alice.invite({ uri: bobUri });
    expect((await call2.final).status).toBe(200);
    const bobDialog2 = await waitFor(() => (incoming?.state === 'confirmed' && incoming.dialog !== bobDialog ? incoming.dialog : undefined));
    expect((await bobDialog2.bye()).status).toBe(200);
    await call2.dialog!.ended;

    // Call 3: cancelled while ringing.
    bob.onInvite((c) => c.ring());
    const call3 = alice.invite({ uri: bobUri, onProvisional: () => call3.cancel() });
    expect((await call3.final).status).toBe(487);

    expect(alice.dialogCount + bob.dialogCount).toBe(0);
    await waitFor(() => (alice.layer.size + bob.layer.size === 0 ? true : undefined), 15_000);
    if (transport !== 'udp') expect(alice.transportLayer!.connectionCount).toBe(1); // one connection reused for everything
  });
});
