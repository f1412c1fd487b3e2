import { describe, expect, it } from 'vitest';
import { uriToEndpoint } from '../../../../src/sip/ua/target.js';

describe('uriToEndpoint', () => {
  it('host, port, transport parameter, sips, maddr, IPv6, name-addr', () => {
    expect(uriToEndpoint('sip:bob@10.0.0.2')).toEqual({ transport: 'udp', address: '10.0.0.2', port: 5060 });
    expect(uriToEndpoint('sip:bob@10.0.0.2:5070;transport=TCP')).toEqual({ transport: 'tcp', address: '10.0.0.2', port: 5070 });
    expect(uriToEndpoint('sips:bob@example.com')).toEqual({ transport: 'tls', address: 'example.com', port: 5061 });
    expect(uriToEndpoint('sip:p@example.com;maddr=192.0.2.7;lr')).toMatchObject({ address: '192.0.2.7' });
    expect(uriToEndpoint('sip:[::1]:5062')).toEqual({ transport: 'udp', address: '::1', port: 5062 });
    expect(uriToEndpoint('<sip:proxy.example.com;lr>', 'tcp')).toEqual({ transport: 'tcp', address: 'proxy.example.com', port: 5060 });
    expect(uriToEndpoint('tel:+15551234')).toBeUndefined();
    expect(uriToEndpoint('not a uri')).toBeUndefined();
  });
});
