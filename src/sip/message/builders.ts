import { randomBytes } from 'node:crypto';
import { formatUri, type SipUri } from '../uri/sip-uri.js';
import { HeaderEntry, HeaderList } from './header-list.js';
import { SipRequest, SipResponse } from './sip-message.js';

/** RFC 3261 §21 (and later RFCs) default reason phrases. */
const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  199: 'Early Dialog Terminated',
  200: 'OK', 202: 'Accepted', 204: 'No Notification',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily', 305: 'Use Proxy', 380: 'Alternative Service',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  410: 'Gone', 412: 'Conditional Request Failed', 413: 'Request Entity Too Large', 414: 'Request-URI Too Long',
  415: 'Unsupported Media Type', 416: 'Unsupported URI Scheme', 417: 'Unknown Resource-Priority',
  420: 'Bad Extension', 421: 'Extension Required', 422: 'Session Interval Too Small', 423: 'Interval Too Brief',
  428: 'Use Identity Header', 429: 'Provide Referrer Identity', 433: 'Anonymity Disallowed',
  436: 'Bad Identity-Info', 437: 'Unsupported Certificate', 438: 'Invalid Identity Header',
  439: 'First Hop Lacks Outbound Support', 440: 'Max-Breadth Exceeded', 469: 'Bad Info Package',
  470: 'Consent Needed', 480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected', 483: 'Too Many Hops', 484: 'Address Incomplete', 485: 'Ambiguous', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 489: 'Bad Event', 491: 'Request Pending',
  493: 'Undecipherable', 494: 'Security Agreement Required',
  500: 'Server Internal Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Server Time-out', 505: 'Version Not Supported', 513: 'Message Too Large', 555: 'Push Notification Service Not Supported',
  580: 'Precondition Failure',
  600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere', 606: 'Not Acceptable', 607: 'Unwanted',
  608: 'Rejected',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? (status >= 100 && status < 700 ? REASONS[Math.floor(status / 100) * 100] ?? 'Unknown' : 'Unknown');
}

// Pooled randomness: one randomBytes call per 4 KiB of identifiers.
let pool = Buffer.alloc(0);
let poolPos = 0;
function randomHex(bytes: number): string {
  if (poolPos + bytes > pool.length) {
    pool = randomBytes(4096);
    poolPos = 0;
  }
  const s = pool.toString('hex', poolPos, poolPos + bytes);
  poolPos += bytes;
  return s;
}

/** Magic cookie `z9hG4bK` (RFC 3261 §8.1.1.7) + 96 random bits. */
export function newBranch(): string {
  return 'z9hG4bK' + randomHex(12);
}

/** From/To tag with 64 random bits (§19.3 asks for at least 32). */
export function newTag(): string {
  return randomHex(8);
}

/** Call-ID with 128 random bits, `@host` when given. */
export function newCallId(host?: string): string {
  const id = randomHex(16);
  return host ? `${id}@${host}` : id;
}

export interface CreateResponseOptions {
  /** To tag to add when the request's To has none (default: a new tag; none for 100). */
  toTag?: string;
  headers?: [string, string][];
  body?: Buffer;
  contentType?: string;
}

/**
 * Builds a response to `req` per RFC 3261 §8.2.6: Via (all, in order), From, Call-ID, CSeq
 * and To are copied; To gets a tag unless it has one or the status is 100; a 100 copies
 * Timestamp (§8.2.6.1). Works on a `partial` request (copies whatever lines exist).
 */
/** Appends the first `key` header of `req` under `name` (a module function: no closure per response). */
function copyFirst(req: SipRequest, list: HeaderEntry[], key: string, name: string): void {
  const e = req.headers.first(key);
  if (e !== undefined) list.push(HeaderEntry.create(name, e.value));
}

export function createResponse(req: SipRequest, status: number, reason?: string, opts?: CreateResponseOptions): SipResponse {
  const list: HeaderEntry[] = [];
  const entries = req.headers.entries;
  for (const e of entries) if (e.key === 'via') list.push(HeaderEntry.create('Via', e.value));
  copyFirst(req, list, 'from', 'From');
  const to = req.headers.first('to');
  if (to !== undefined) {
    let value = to.value;
    // (cheap tests first: the To tag is read off the text; the full parse only checks a To to tag is valid)
    if ((status !== 100 || opts?.toTag !== undefined) && req.toTag === undefined && req.toOrUndefined !== undefined) {
      value += ';tag=' + (opts?.toTag ?? newTag());
    }
    list.push(HeaderEntry.create('To', value));
  }
  copyFirst(req, list, 'call-id', 'Call-ID');
  copyFirst(req, list, 'cseq', 'CSeq');
  if (status === 100) copyFirst(req, list, 'timestamp', 'Timestamp');
  const headers = new HeaderList(list);
  if (opts?.headers) for (const [k, v] of opts.headers) headers.append(k, v);
  const body = opts?.body ?? Buffer.alloc(0);
  if (opts?.contentType !== undefined) headers.append('Content-Type', opts.contentType);
  headers.append('Content-Length', String(body.length));
  const res = new SipResponse(status, reason ?? reasonPhrase(status), headers, body);
  // The response goes where the request's top Via says: the typed value is shared, not parsed again.
  res.shareTopViaOf(req);
  return res;
}

export interface CreateRequestOptions {
  method: string;
  uri: string | SipUri;
  /** From value; a tag is added when it has none. */
  from: string;
  to: string;
  callId?: string;
  /** CSeq number. @default 1 */
  cseq?: number;
  /** Via value; when absent the transaction layer adds one. */
  via?: string;
  contact?: string;
  /** @default 70 */
  maxForwards?: number;
  headers?: [string, string][];
  body?: Buffer;
  contentType?: string;
}

/** Builds a new request (RFC 3261 §8.1.1). */
export function createRequest(opts: CreateRequestOptions): SipRequest {
  const uri = typeof opts.uri === 'string' ? opts.uri : formatUri(opts.uri);
  const headers = new HeaderList();
  if (opts.via !== undefined) headers.append('Via', opts.via);
  headers.append('Max-Forwards', String(opts.maxForwards ?? 70));
  headers.append('To', opts.to);
  headers.append('From', /;\s*tag=/i.test(afterUri(opts.from)) ? opts.from : `${opts.from};tag=${newTag()}`);
  headers.append('Call-ID', opts.callId ?? newCallId());
  headers.append('CSeq', `${opts.cseq ?? 1} ${opts.method}`);
  if (opts.contact !== undefined) headers.append('Contact', opts.contact);
  if (opts.headers) for (const [k, v] of opts.headers) headers.append(k, v);
  const body = opts.body ?? Buffer.alloc(0);
  if (opts.contentType !== undefined) headers.append('Content-Type', opts.contentType);
  headers.append('Content-Length', String(body.length));
  return new SipRequest(opts.method, uri, headers, body);
}

/** The part of a From/To value after the URI (where header params live). */
function afterUri(v: string): string {
  const gt = v.lastIndexOf('>');
  if (gt !== -1) return v.slice(gt + 1);
  const semi = v.indexOf(';');
  return semi === -1 ? '' : v.slice(semi);
}
