import { describe, expect, it } from 'vitest';
import { HeaderList } from '../../../../src/sip/message/header-list.js';
import { splitList } from '../../../../src/sip/message/header-values.js';

describe('HeaderList.removeFirst on a combined list line', () => {
  const cases = [
    'SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2',
    'SIP/2.0/UDP a;branch=z9hG4bK1 ,SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/UDP c',
    'SIP/2.0/UDP a;x="q,r", SIP/2.0/UDP b',
    'SIP/2.0/UDP a, , SIP/2.0/UDP b',
    'SIP/2.0/UDP a,',
    ', SIP/2.0/UDP a, SIP/2.0/UDP b',
  ];
  it('takes the first element and keeps the same remaining elements as splitting the whole line', () => {
    for (const v of cases) {
      const h = new HeaderList();
      h.append('Via', v);
      const parts = splitList(v);
      // A line of one element goes whole (as written, trimmed).
      const [first, rest] = parts.length > 1 ? [parts[0], parts.slice(1)] : [v.trim(), []];
      expect(h.removeFirst('Via'), v).toBe(first);
      expect(h.getAll('Via'), v).toEqual(rest);
    }
  });
});
