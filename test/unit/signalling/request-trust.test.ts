import { describe, expect, it } from 'vitest';
import { decideTrust, type RequestFacts } from '../../../src/signalling/request-trust.js';

const base: RequestFacts = { method: 'INVITE', hasToTag: false, routeAuthentic: false, forOurRegistrar: false, fromLocalUser: false, authEnabled: true };
const f = (o: Partial<RequestFacts>): RequestFacts => ({ ...base, ...o });

describe('decideTrust: which proof a request must bring', () => {
  it('a To-tag alone proves nothing: without our authentic Route the request is out-of-dialog', () => {
    // The open relay of old: a made-up To-tag made a request "in-dialog", skipping auth.
    expect(decideTrust(f({ hasToTag: true, fromLocalUser: true }))).toEqual({ step: 'authenticate' });
    expect(decideTrust(f({ method: 'BYE', hasToTag: true }))).toEqual({ step: 'out-of-dialog' });
  });

  it('a To-tag with our authentic Route is in-dialog, not challenged', () => {
    expect(decideTrust(f({ method: 'BYE', hasToTag: true, routeAuthentic: true, fromLocalUser: true }))).toEqual({ step: 'in-dialog' });
  });

  it('our Route on an initial request (outbound proxy) is not in-dialog', () => {
    expect(decideTrust(f({ routeAuthentic: true, fromLocalUser: true }))).toEqual({ step: 'authenticate' });
  });

  it('an ACK without proof is absorbed', () => {
    expect(decideTrust(f({ method: 'ACK', hasToTag: true }))).toEqual({ step: 'absorb' });
    expect(decideTrust(f({ method: 'ACK', hasToTag: true, routeAuthentic: true }))).toEqual({ step: 'in-dialog' });
  });

  it('REGISTER for our domain goes to the registrar, challenged when auth is on', () => {
    expect(decideTrust(f({ method: 'REGISTER', forOurRegistrar: true, fromLocalUser: true }))).toEqual({ step: 'registrar', authenticate: true });
    expect(decideTrust(f({ method: 'REGISTER', forOurRegistrar: true, authEnabled: false }))).toEqual({ step: 'registrar', authenticate: false });
  });

  it('with auth off nothing is challenged', () => {
    expect(decideTrust(f({ fromLocalUser: true, authEnabled: false }))).toEqual({ step: 'out-of-dialog' });
  });
});
