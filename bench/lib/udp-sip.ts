// Tiny one-shot SIP requests over UDP for benchmark set-up (registering a back-end, pinging a
// server). The measured traffic comes from the load generator, not from here.
import dgram from 'node:dgram';

/** Sends one SIP request over UDP and waits for a final response; returns its status, 0 on timeout. */
export async function sipRequest(port: number, text: (localPort: number) => string, timeoutMs = 2000): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const lp = s.address().port;
  return new Promise<number>((resolveStatus) => {
    const timer = setTimeout(() => {
      s.close();
      resolveStatus(0);
    }, timeoutMs);
    s.on('message', (m) => {
      const st = Number(/^SIP\/2\.0 (\d{3})/.exec(m.toString('latin1'))?.[1]);
      if (st >= 200) {
        clearTimeout(timer);
        s.close();
        resolveStatus(st);
      }
    });
    s.send(Buffer.from(text(lp), 'latin1'), port, '127.0.0.1');
  });
}

/** REGISTERs `user@domain` at the proxy with a contact on 127.0.0.1:contactPort (no auth). */
export function registerContact(proxyPort: number, domain: string, user: string, contactPort: number, timeoutMs = 2000): Promise<number> {
  return sipRequest(
    proxyPort,
    (lp) =>
      [
        `REGISTER sip:${domain} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
        'Max-Forwards: 70',
        `From: <sip:${user}@${domain}>;tag=b1`,
        `To: <sip:${user}@${domain}>`,
        `Call-ID: reg-${user}-${Date.now()}@bench`,
        'CSeq: 1 REGISTER',
        `Contact: <sip:${user}@127.0.0.1:${contactPort}>`,
        'Expires: 3600',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    timeoutMs,
  );
}
