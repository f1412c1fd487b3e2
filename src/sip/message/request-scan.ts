/**
 * A light view of a request datagram, for a fast path that answers common requests without
 * building a `SipRequest`: the request line and every header line's lookup key and value, in one
 * pass over the text. It accepts only the plain form of a message and says undefined for anything
 * else (non-ASCII bytes, folded lines, bare LF, a body, an odd request line), so that the caller
 * hands such a message to `parseMessage`, which validates and answers everything. It does not
 * validate header values: the caller checks the ones it reads with the parser's own functions.
 */
import { isAscii } from 'node:buffer';
import { latin1 } from '../../util/string-calls.js';
import { isTokenChar } from '../uri/sip-uri.js';
import { headerKey, matchKnownName } from './header-names.js';

export interface RequestScan {
  method: string;
  uri: string;
  /** Header lookup keys in message order (lower-case, compact forms expanded, see `headerKey`). */
  keys: string[];
  /** Header values, blanks around them trimmed, in the order of `keys`. */
  values: string[];
}


/**
 * Scans `buf` when it starts with `method` and a space. The message must end with the blank line
 * (no body), every line with CRLF.
 */
export function scanRequest(buf: Buffer, method: string): RequestScan | undefined {
  const n = buf.length;
  if (n < method.length + 16 || n > 65535 || latin1(buf, 0, method.length + 1) !== method + ' ' || !isAscii(buf)) return undefined;
  const s = latin1(buf, 0, n);
  if (!s.endsWith('\r\n\r\n')) return undefined;
  const headEnd = n - 2;
  // Request-Line = Method SP Request-URI SP SIP-Version CRLF
  let le = s.indexOf('\r\n');
  const uriStart = method.length + 1;
  const sp2 = s.indexOf(' ', uriStart);
  if (sp2 <= uriStart || le !== sp2 + 8 || !s.startsWith('SIP/2.0', sp2 + 1)) return undefined;
  const uri = s.slice(uriStart, sp2);
  const keys: string[] = [];
  const values: string[] = [];
  let pos = le + 2;
  while (pos < headEnd) {
    le = s.indexOf('\r\n', pos);
    const c = s.charCodeAt(pos);
    // folding, an empty name or a stray CR/LF inside the line: the generic parser decides
    if (c === 32 || c === 9 || c === 58) return undefined;
    const colon = s.indexOf(':', pos);
    if (colon === -1 || colon > le) return undefined;
    let ne = colon;
    while (ne > pos && (s.charCodeAt(ne - 1) === 32 || s.charCodeAt(ne - 1) === 9)) ne--;
    const known = matchKnownName(s, pos, ne);
    let key: string;
    if (known !== undefined) key = known.key;
    else {
      for (let i = pos; i < ne; i++) if (!isTokenChar(s.charCodeAt(i))) return undefined;
      key = headerKey(s.slice(pos, ne));
    }
    let vs = colon + 1;
    let ve = le;
    while (vs < ve && (s.charCodeAt(vs) === 32 || s.charCodeAt(vs) === 9)) vs++;
    while (ve > vs && (s.charCodeAt(ve - 1) === 32 || s.charCodeAt(ve - 1) === 9)) ve--;
    const value = s.slice(vs, ve);
    if (value.indexOf('\n') !== -1 || value.indexOf('\r') !== -1) return undefined;
    keys.push(key);
    values.push(value);
    pos = le + 2;
  }
  return { method, uri, keys, values };
}
