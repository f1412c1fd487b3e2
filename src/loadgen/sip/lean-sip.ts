import { randomBytes } from 'node:crypto';
import { fail, ok, type Result } from '../../util/result.js';

/**
 * The load generator's own lean SIP codec: it reads only what a scenario needs (start line,
 * Via, CSeq, Call-ID, From/To tags, Contact, Record-Route, auth challenges, SDP) and builds
 * requests and responses from templates. Kept apart from the general message layer so the
 * generator's hot path stays small and its schedule independent; RFC 3261 rules it relies on
 * are cited where used.
 */
export interface LeanMessage {
  isRequest: boolean;
  method: string;
  uri: string;
  status: number;
  reason: string;
  /** Lower-case long header names -> values, one per header line, in order. */
  headers: Map<string, string[]>;
  body: Buffer;
}

/** RFC 3261 §7.3.3 compact forms. */
const COMPACT: Record<string, string> = {
  v: 'via', i: 'call-id', f: 'from', t: 'to', m: 'contact', l: 'content-length', c: 'content-type',
  k: 'supported', s: 'subject', e: 'content-encoding', o: 'event', u: 'allow-events', r: 'refer-to',
};

const MAX_BYTES = 65536;

export function parseSip(buf: Buffer): Result<LeanMessage> {
  if (buf.length > MAX_BYTES) return fail('SIP_ERR_TOO_LARGE', 'message too large');
  const text = buf.toString('latin1');
  let headEnd = text.indexOf('\r\n\r\n');
  let sepLen = 4;
  if (headEnd < 0) {
    headEnd = text.indexOf('\n\n');
    sepLen = 2;
  }
  if (headEnd < 0) {
    headEnd = text.length;
    sepLen = 0;
  }
  const lines = text.slice(0, headEnd).split(/\r?\n/);
  const start = lines[0] ?? '';
  const msg: LeanMessage = { isRequest: false, method: '', uri: '', status: 0, reason: '', headers: new Map(), body: Buffer.alloc(0) };
  if (start.startsWith('SIP/2.0 ')) {
    const m = /^SIP\/2\.0 (\d{3})(?: (.*))?$/.exec(start);
    if (!m) return fail('SIP_ERR_BAD_START_LINE', 'bad status line');
    msg.status = Number(m[1]);
    msg.reason = m[2] ?? '';
    if (msg.status < 100 || msg.status > 699) return fail('SIP_ERR_BAD_START_LINE', 'status code out of range');
  } else {
    const m = /^([A-Za-z!%*_+`'~.-]+) (\S+) SIP\/2\.0$/.exec(start);
    if (!m) return fail('SIP_ERR_BAD_START_LINE', 'bad start line');
    msg.isRequest = true;
    msg.method = m[1]!.toUpperCase();
    msg.uri = m[2]!;
  }
  let last: string[] | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      // RFC 3261 §7.3.1 line folding
      last[last.length - 1] += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) return fail('SIP_ERR_BAD_HEADER', 'header line without colon');
    let name = line.slice(0, colon).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    const value = line.slice(colon + 1).trim();
    let list = msg.headers.get(name);
    if (!list) msg.headers.set(name, (list = []));
    list.push(value);
    last = list;
  }
  for (const h of ['via', 'call-id', 'cseq', 'from', 'to']) {
    if (!msg.headers.has(h)) return fail('SIP_ERR_MISSING_HEADER', `missing ${h}`);
  }
  const bodyStart = headEnd + sepLen;
  const clText = msg.headers.get('content-length')?.[0];
  let body = buf.subarray(Math.min(bodyStart, buf.length));
  if (clText !== undefined) {
    const cl = Number(clText);
    if (!Number.isInteger(cl) || cl < 0) return fail('SIP_ERR_BAD_CONTENT_LENGTH', 'bad Content-Length');
    if (cl > body.length) return fail('SIP_ERR_BAD_CONTENT_LENGTH', 'body shorter than Content-Length');
    body = body.subarray(0, cl);
  }
  msg.body = body;
  return ok(msg);
}

export function header(msg: LeanMessage, name: string): string | undefined {
  return msg.headers.get(name)?.[0];
}

/** Splits a comma-separated header value, respecting quotes and <...>. */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let startIdx = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<') depth++;
    else if (c === '>') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      out.push(value.slice(startIdx, i).trim());
      startIdx = i + 1;
    }
  }
  const tail = value.slice(startIdx).trim();
  if (tail) out.push(tail);
  return out;
}

/** All values of a list header (Via, Route, Record-Route, Contact) in order. */
export function headerList(msg: LeanMessage, name: string): string[] {
  const out: string[] = [];
  for (const v of msg.headers.get(name) ?? []) out.push(...splitList(v));
  return out;
}

export interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(value: string | undefined): CSeq | undefined {
  if (!value) return undefined;
  const m = /^(\d{1,10})\s+([A-Za-z]+)$/.exec(value.trim());
  if (!m) return undefined;
  return { seq: Number(m[1]), method: m[2]!.toUpperCase() };
}

/** A parameter of a name-addr header (tag of From/To), looked up after the URI. */
export function nameAddrParam(value: string | undefined, name: string): string | undefined {
  if (!value) return undefined;
  const gt = value.lastIndexOf('>');
  const params = gt >= 0 ? value.slice(gt + 1) : value.slice(Math.max(0, value.indexOf(';')));
  for (const p of params.split(';')) {
    const eq = p.indexOf('=');
    const k = (eq >= 0 ? p.slice(0, eq) : p).trim().toLowerCase();
    if (k === name) return eq >= 0 ? p.slice(eq + 1).trim() : '';
  }
  return undefined;
}

/** The URI inside a name-addr (`"A" <sip:a@h>;tag=1`) or addr-spec (`sip:a@h;tag=1`). */
export function nameAddrUri(value: string): string {
  const lt = value.indexOf('<');
  if (lt >= 0) {
    const gt = value.indexOf('>', lt);
    return value.slice(lt + 1, gt < 0 ? undefined : gt).trim();
  }
  const semi = value.indexOf(';');
  return (semi >= 0 ? value.slice(0, semi) : value).trim();
}

export interface UriTarget {
  host: string;
  port: number | undefined;
  transport: string | undefined;
  lr: boolean;
}

/** Host, port and transport/lr parameters of a sip: URI. */
export function uriTarget(uri: string): UriTarget | undefined {
  const m = /^sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;?>]+)(?::(\d+))?([^?]*)/i.exec(uri.trim());
  if (!m) return undefined;
  const params = (m[3] ?? '').toLowerCase();
  const t = /;transport=([a-z]+)/.exec(params);
  return {
    host: m[1]!.replace(/^\[|\]$/g, ''),
    port: m[2] ? Number(m[2]) : undefined,
    transport: t?.[1],
    lr: /;lr(?:[;=]|$)/.test(params),
  };
}

export interface ViaInfo {
  transport: string;
  host: string;
  port: number | undefined;
  branch: string | undefined;
  rport: boolean;
  received: string | undefined;
}

export function parseVia(value: string | undefined): ViaInfo | undefined {
  if (!value) return undefined;
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[^\]]+\]|[^\s:;]+)(?:\s*:\s*(\d+))?(.*)$/i.exec(value.trim());
  if (!m) return undefined;
  const params = m[4] ?? '';
  const get = (n: string): string | undefined => {
    const r = new RegExp(`;\\s*${n}(?:\\s*=\\s*([^;\\s]+))?`, 'i').exec(params);
    return r ? (r[1] ?? '') : undefined;
  };
  return {
    transport: m[1]!.toUpperCase(),
    host: m[2]!.replace(/^\[|\]$/g, ''),
    port: m[3] ? Number(m[3]) : undefined,
    branch: get('branch') || undefined,
    rport: get('rport') !== undefined,
    received: get('received') || undefined,
  };
}

/** Remote RTP address from an SDP body: first c= line and first m=audio port. */
export function sdpAudioTarget(body: Buffer): { address: string; port: number } | undefined {
  if (body.length === 0) return undefined;
  const text = body.toString('latin1');
  const c = /^c=IN IP[46] (\S+)/m.exec(text);
  const m = /^m=audio (\d+) /m.exec(text);
  if (!c || !m) return undefined;
  return { address: c[1]!, port: Number(m[1]) };
}

export function buildSdp(address: string, port: number, payloadType: number, sessionId: number): string {
  const ip = address.includes(':') ? 'IP6' : 'IP4';
  const codec = payloadType === 8 ? 'PCMA/8000' : 'PCMU/8000';
  return (
    `v=0\r\no=tandem ${sessionId} ${sessionId} IN ${ip} ${address}\r\ns=tandem-load\r\nc=IN ${ip} ${address}\r\nt=0 0\r\n` +
    `m=audio ${port} RTP/AVP ${payloadType}\r\na=rtpmap:${payloadType} ${codec}\r\na=ptime:20\r\na=sendrecv\r\n`
  );
}

let counter = 0;
const prefix = randomBytes(4).toString('hex');
function unique(): string {
  counter = (counter + 1) >>> 0;
  return `${prefix}${counter.toString(36)}${randomBytes(3).toString('hex')}`;
}
/** RFC 3261 §8.1.1.7: branch starts with the magic cookie. */
export function newBranch(): string {
  return `z9hG4bK${unique()}`;
}
export function newTag(): string {
  return unique();
}
export function newCallId(host: string): string {
  return `${unique()}@${host}`;
}

/** Serializes a message from a start line, ordered headers and a body (Content-Length always set). */
export function buildMessage(startLine: string, headers: [string, string][], body = ''): Buffer {
  let out = startLine + '\r\n';
  for (const [n, v] of headers) out += `${n}: ${v}\r\n`;
  out += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  return Buffer.from(out, 'latin1');
}

export const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 183: 'Session Progress', 200: 'OK', 202: 'Accepted', 400: 'Bad Request',
  401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 407: 'Proxy Authentication Required',
  408: 'Request Timeout', 480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist', 486: 'Busy Here',
  487: 'Request Terminated', 500: 'Server Internal Error', 501: 'Not Implemented', 503: 'Service Unavailable',
  600: 'Busy Everywhere', 603: 'Decline',
};

/**
 * RFC 3261 §8.2.6.2: a response copies Via, From, Call-ID, CSeq and To, adding a To tag if
 * the request had none. `extra` adds headers (Contact, Record-Route copies, auth challenges).
 */
export function buildResponse(req: LeanMessage, status: number, toTag: string | undefined, extra: [string, string][] = [], body = '', reason?: string): Buffer {
  const headers: [string, string][] = [];
  for (const v of req.headers.get('via') ?? []) headers.push(['Via', v]);
  headers.push(['From', header(req, 'from') ?? '']);
  let to = header(req, 'to') ?? '';
  if (toTag && status > 100 && nameAddrParam(to, 'tag') === undefined) to += `;tag=${toTag}`;
  headers.push(['To', to]);
  headers.push(['Call-ID', header(req, 'call-id') ?? '']);
  headers.push(['CSeq', header(req, 'cseq') ?? '']);
  headers.push(...extra);
  headers.push(['Server', 'tandem-load']);
  return buildMessage(`SIP/2.0 ${status} ${reason ?? REASONS[status] ?? 'Unknown'}`, headers, body);
}

/** Finds a header value in bytes that did not parse, to attribute garbage to a call. */
export function sniffHeader(buf: Buffer, name: string, compact: string): string | undefined {
  const text = buf.subarray(0, 4096).toString('latin1');
  const m = new RegExp(`^(?:${name}|${compact})\\s*:\\s*(.+?)\\s*$`, 'im').exec(text);
  return m?.[1];
}
