import { describe, expect, it } from 'vitest';
import { formatNgMessage, parseNgMessage } from '../../../src/ng/ng-message.js';
import { canonicalName, parseNgRequest } from '../../../src/ng/ng-request.js';

const OFFER =
  'ck1 d7:call-id2:c17:command5:offer5:flagsl13:trust-addresse8:from-tag3:ft113:received-froml3:IP412:198.51.100.1e7:replacel6:origine3:sdp94:v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\ne';

describe('ng framing', () => {
  it('ping vector: 5323_1 d7:command4:pinge -> d6:result4:ponge', () => {
    const m = parseNgMessage(Buffer.from('5323_1 d7:command4:pinge'));
    expect(m.ok).toBe(true);
    if (!m.ok) return;
    expect(m.value.cookie.toString()).toBe('5323_1');
    expect(m.value.dict).toEqual({ command: 'ping' });
    expect(formatNgMessage(m.value.cookie, m.value.encoding, { result: 'pong' }).toString()).toBe('5323_1 d6:result4:ponge');
  });

  it('error reply vector', () => {
    expect(formatNgMessage('ck1', 'bencode', { result: 'error', 'error-reason': 'Unknown call-id' }).toString()).toBe(
      'ck1 d12:error-reason15:Unknown call-id6:result5:errore',
    );
  });

  it('offer vector parses with normalised keys', () => {
    const m = parseNgMessage(Buffer.from(OFFER, 'latin1'));
    expect(m.ok).toBe(true);
    if (!m.ok) return;
    const r = parseNgRequest(m.value.dict);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.command).toBe('offer');
    expect(r.value.callId).toBe('c1');
    expect(r.value.fromTag).toBe('ft1');
    expect([...r.value.flags]).toEqual(['trust-address']);
    expect([...r.value.replace]).toEqual(['origin']);
    expect(r.value.receivedFrom).toEqual({ family: 'IP4', address: '198.51.100.1' });
    expect(r.value.sdp?.length).toBe(94);
  });

  it('delete vector', () => {
    const m = parseNgMessage(Buffer.from('ck1 d7:call-id2:c17:command6:delete8:from-tag3:ft1e'));
    expect(m.ok && parseNgRequest(m.value.dict)).toMatchObject({ ok: true, value: { command: 'delete', callId: 'c1', fromTag: 'ft1' } });
  });

  it('JSON payloads reply in JSON', () => {
    const m = parseNgMessage(Buffer.from('abc {"command":"ping"}'));
    expect(m.ok && m.value.encoding).toBe('json');
    if (!m.ok) return;
    expect(formatNgMessage(m.value.cookie, 'json', { result: 'pong' }).toString()).toBe('abc {"result":"pong"}');
  });

  it('no cookie / garbage', () => {
    expect(parseNgMessage(Buffer.from('d7:command4:pinge'))).toMatchObject({ ok: false, code: 'NG_ERR_NO_COOKIE' });
    expect(parseNgMessage(Buffer.from(' d7:command4:pinge'))).toMatchObject({ ok: false, code: 'NG_ERR_NO_COOKIE' });
    const g = parseNgMessage(Buffer.from('ck d7:comma'));
    expect(g).toMatchObject({ ok: false, code: 'NG_ERR_DECODE' });
    expect(g.cookie?.toString()).toBe('ck');
    expect(parseNgMessage(Buffer.from('ck li1ee'))).toMatchObject({ ok: false, code: 'NG_ERR_DECODE' });
    expect(parseNgMessage(Buffer.from('ck {bad json'))).toMatchObject({ ok: false, code: 'NG_ERR_DECODE' });
  });
});

describe('key and flag normalisation', () => {
  it('canonical names', () => {
    expect(canonicalName('received from')).toBe('received-from');
    expect(canonicalName('SIP source address')).toBe('sip-source-address');
    expect(canonicalName('SIP-source-address')).toBe('sip-source-address');
    expect(canonicalName('rtpp_flags')).toBe('rtpp-flags');
    expect(canonicalName('ICE')).toBe('ice');
  });

  it('spaces, hyphens and underscores in keys and flags', () => {
    const r = parseNgRequest({
      command: 'offer',
      'call id': 'x',
      'from_tag': 'f',
      'received from': ['IP4', '10.0.0.1'],
      flags: ['SIP source address', 'strict_source', 'bogus-flag'],
      ICE: 'remove',
      'transport protocol': 'RTP/AVP',
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.callId).toBe('x');
    expect(r.value.fromTag).toBe('f');
    expect(r.value.receivedFrom?.address).toBe('10.0.0.1');
    expect(r.value.flags.has('sip-source-address')).toBe(true);
    expect(r.value.flags.has('strict-source')).toBe(true);
    expect(r.value.ice).toBe('remove');
    expect(r.value.transportProtocol).toBe('RTP/AVP');
    expect(r.value.unknown).toEqual(['bogus-flag']);
  });

  it('rtpp-flags string', () => {
    const r = parseNgRequest({
      command: 'offer',
      'rtpp-flags': 'trust-address replace-origin replace-session-connection ICE=remove symmetric transport-protocol=RTP/AVP direction=pub direction=priv',
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect([...r.value.flags].sort()).toEqual(['symmetric', 'trust-address']);
    expect([...r.value.replace].sort()).toEqual(['origin', 'session-connection']);
    expect(r.value.ice).toBe('remove');
    expect(r.value.transportProtocol).toBe('RTP/AVP');
    expect(r.value.direction).toEqual(['pub', 'priv']);
  });

  it('missing command fails', () => {
    expect(parseNgRequest({ 'call-id': 'x' })).toMatchObject({ ok: false, code: 'NG_ERR_NO_COMMAND' });
  });
});

describe('robustness', () => {
  it('empty tags count as absent', () => {
    const r = parseNgRequest({ command: 'delete', 'call-id': 'c', 'from-tag': '' });
    expect(r.ok && r.value.fromTag).toBeUndefined();
  });

  it('parseNgMessage and parseNgRequest never throw on random input', async () => {
    const fc = (await import('fast-check')).default;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const m = parseNgMessage(Buffer.concat([Buffer.from('ck '), Buffer.from(bytes)]));
        if (m.ok) parseNgRequest(m.value.dict);
      }),
      { numRuns: 2000 },
    );
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(fc.string(), tie('v'), { maxKeys: 3 })),
    })).v;
    const keys = fc.constantFrom('command', 'call-id', 'from-tag', 'flags', 'replace', 'received from', 'rtpp-flags', 'ICE', 'supports', 'delete delay', 'limit', 'direction', 'sdp');
    fc.assert(
      fc.property(fc.dictionary(keys, value, { maxKeys: 8 }), (dict) => {
        parseNgRequest(dict as never);
      }),
      { numRuns: 2000 },
    );
  });
});
