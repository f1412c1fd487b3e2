import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../../../src/sip/message/parser.js';
import type { SipResponse } from '../../../../src/sip/message/sip-message.js';
import { responseDestination } from '../../../../src/sip/transport/response-routing.js';
import type { Source } from '../../../../src/sip/transport/types.js';

function via(v: string) {
  const raw = `SIP/2.0 200 OK\r\nVia: ${v}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
  const r = parseMessage(Buffer.from(raw));
  if (!r.ok) throw new Error(r.reason);
  return (r.value as SipResponse).topVia;
}
const src: Source = { transport: 'udp', address: '192.0.2.9', port: 40000, localAddress: '127.0.0.1', localPort: 5060 };

describe('responseDestination (RFC 3261 §18.2.2, RFC 3581 §4)', () => {
  it('sent-by host and port, default 5060', () => {
    expect(responseDestination(via('SIP/2.0/UDP host.example;branch=z9hG4bK1'))).toEqual({ transport: 'udp', address: 'host.example', port: 5060 });
    expect(responseDestination(via('SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bK1'))).toMatchObject({ address: '10.1.1.1', port: 5070 });
  });
  it('received overrides the host, keeps the sent-by port', () => {
    expect(responseDestination(via('SIP/2.0/UDP h:5070;branch=z9hG4bK1;received=192.0.2.9'))).toMatchObject({ address: '192.0.2.9', port: 5070 });
  });
  it('rport with a value: source IP and port', () => {
    expect(responseDestination(via('SIP/2.0/UDP h:5070;branch=z9hG4bK1;received=192.0.2.9;rport=40000'), src)).toMatchObject({ address: '192.0.2.9', port: 40000 });
  });
  it('maddr wins for unreliable transports', () => {
    expect(responseDestination(via('SIP/2.0/UDP h:5070;branch=z9hG4bK1;maddr=239.1.1.1;received=1.2.3.4'))).toMatchObject({ address: '239.1.1.1', port: 5070 });
  });
  it('reliable: the connection if open, else received/sent-by with the TLS default port', () => {
    const tcpSrc: Source = { ...src, transport: 'tls', connectionId: 7 };
    expect(responseDestination(via('SIP/2.0/TLS h;branch=z9hG4bK1;received=192.0.2.9'), tcpSrc)).toEqual({ transport: 'tls', address: '192.0.2.9', port: 5061, connectionId: 7 });
  });
  it('IPv6 references lose their brackets', () => {
    expect(responseDestination(via('SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK1'))).toMatchObject({ address: '2001:db8::1', port: 5062 });
  });
  it('unknown transports are unroutable', () => {
    expect(responseDestination(via('SIP/2.0/SCTP h;branch=z9hG4bK1'))).toBeUndefined();
  });
});
