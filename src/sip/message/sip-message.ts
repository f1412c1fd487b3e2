import { formatUri as formatUriText, parseNameAddr, parseUri, type NameAddr, type SipUri } from '../uri/sip-uri.js';
import { HeaderEntry, HeaderList } from './header-list.js';
import {
  parseCredentials,
  parseFirstVia,
  parseCSeq,
  parseDigits,
  formatVia,
  parseNameAddrList,
  parseViaList,
  stampedVia,
  stampViaText,
  validCallId,
  validateViaList,
  viaFromParts,
  type Contact,
  type Credentials,
  type CSeq,
  type Via,
} from './header-values.js';

export type { Contact, Credentials, CSeq, Via } from './header-values.js';

/**
 * Typed getters never throw. A message returned by `parseMessage` with `ok: true` has valid
 * Via, From, To, Call-ID, CSeq, Max-Forwards and Content-Length (checked while parsing, built
 * on first access). When a header is missing or invalid — on a `partial` request, or after
 * local code set a bad value — the getters return these placeholders / `undefined` / `[]`.
 */
export const PLACEHOLDER_HOST = 'invalid';
const placeholderUri = (): SipUri => ({ scheme: 'sip', host: PLACEHOLDER_HOST, params: new Map(), headers: new Map() });
const placeholderNameAddr = (): NameAddr => ({ uri: placeholderUri(), params: new Map() });
const placeholderVia = (): Via => ({ protocol: 'SIP/2.0', transport: 'UDP', host: PLACEHOLDER_HOST, params: new Map() });

/** Original wire form of a parsed message, used to write it back byte for byte. */
export interface RawSource {
  /** The message bytes (leading CRLFs skipped). */
  buf: Buffer;
  /** latin1 text of the start line + headers (+ possibly more). */
  src: string;
  /** End of the start line including its terminator, inside src. */
  startLineEnd: number;
  /** Offset of the body in buf. */
  bodyStart: number;
  /** Body as parsed (identity used to detect replacement). */
  body: Buffer;
}

interface TypedCache {
  vias?: Via[] | undefined;
  topVia?: Via | null | undefined;
  callId?: string | undefined;
  viaError?: string | undefined;
  from?: NameAddr | null | undefined;
  to?: NameAddr | null | undefined;
  /** The tag parameter of From / To (null: none), read without parsing the whole name-addr. */
  fromTag?: string | null | undefined;
  toTag?: string | null | undefined;
  cseq?: CSeq | null | undefined;
  contacts?: Contact[] | null | undefined;
  routes?: NameAddr[] | undefined;
  recordRoutes?: NameAddr[] | undefined;
}

/** Headers with typed cache entries (indexes K_*). */
/** A bare `rport` parameter (no value) in a Via line. */

const CACHED_KEYS = ['via', 'call-id', 'from', 'to', 'cseq', 'contact', 'route', 'record-route'] as const;
const K_VIA = 0;
const K_CALL_ID = 1;
const K_FROM = 2;
const K_TO = 3;
const K_CSEQ = 4;
const K_CONTACT = 5;
const K_ROUTE = 6;

export abstract class SipMessage {
  headers: HeaderList;
  body: Buffer;
  #raw: RawSource | undefined;
  #cache: TypedCache = {};
  #cacheList: HeaderList | undefined;
  #cacheVersion = -1;
  /** keyVersion of each CACHED_KEYS header when its cache entries were last known valid. */
  #seen: number[] | undefined;

  constructor(headers: HeaderList, body: Buffer, raw?: RawSource) {
    this.headers = headers;
    this.body = body;
    this.#raw = raw;
  }

  abstract isRequest(): this is SipRequest;
  /** Start line without CRLF. */
  abstract startLine(): string;
  /** Whether the start line differs from the received one. */
  protected abstract startLineChanged(): boolean;

  /** @internal original wire form, if this message was parsed and not re-created. */
  get rawSource(): RawSource | undefined {
    return this.#raw;
  }

  // -------------------------------------------------------------------------------------------
  // header access

  get(name: string): string | undefined {
    return this.headers.get(name);
  }

  getAll(name: string): string[] {
    return this.headers.getAll(name);
  }

  has(name: string): boolean {
    return this.headers.has(name);
  }

  set(name: string, value: string): void {
    this.headers.set(name, value);
  }

  append(name: string, value: string): void {
    this.headers.append(name, value);
  }

  prepend(name: string, value: string): void {
    this.headers.prepend(name, value);
  }

  remove(name: string): void {
    this.headers.remove(name);
  }

  removeFirst(name: string): string | undefined {
    return this.headers.removeFirst(name);
  }

  /**
   * Replaces the top Via value by `via`, rendered from its protocol, transport, host, port and
   * params (e.g. the transport adding `received` / `rport`, RFC 3261 §18.2.1, RFC 3581 §4).
   * Equivalent to `removeFirst('Via')` + `prepend('Via', formatVia(via))`, but `topVia` then
   * returns the new value without parsing it again (`branch`, `received`, `rport`, `maddr`,
   * `ttl` are taken from `params`), and the other headers' typed values stay cached.
   */
  replaceTopVia(via: Via): void {
    const text = formatVia(via);
    const h = this.headers;
    h.removeFirst('via');
    h.prepend('Via', text);
    const c = this.#c();
    c.vias = undefined;
    c.viaError = undefined;
    // keep it only when the text parses back to the same value; else parse lazily as usual
    c.topVia = cacheableVia(via, text);
  }

  /**
   * The transport's stamping of the top Via (RFC 3261 §18.2.1 `received`, RFC 3581 §4 `rport`)
   * as an edit of its text: `;rport` becomes `;rport=PORT` when `rport` is given, and
   * `;received=ADDRESS` is appended. Only for a line holding one Via; returns false (nothing
   * changed) otherwise, and the caller rebuilds the Via from its parameters. Formatting and
   * re-validating a whole Via per request cost more than parsing it; the typed top Via is
   * derived from the one already parsed (`stampedVia`), or else parsed lazily on its next read.
   */
  stampTopVia(address: string, rport: number | undefined): boolean {
    const h = this.headers;
    const e = h.first('via');
    if (e === undefined) return false;
    const text = stampViaText(e.value, address, rport);
    if (text === undefined) return false;
    const c = this.#c();
    const before = (c.vias !== undefined ? c.vias[0] : c.topVia) ?? undefined;
    h.replace(e, HeaderEntry.create(e.name, text));
    const after = before === undefined ? undefined : stampedVia(before, text, address, rport);
    // (#c() drops the Via entries for the edit first; the derived one is then kept)
    if (after !== undefined) this.#c().topVia = after;
    return true;
  }

  /**
   * Takes `other`'s typed top Via, when already parsed and when this message's top Via line has
   * the same text (a response built from the request it answers copies the request's lines).
   * Typed Via objects are never changed after parsing, so they can be shared.
   */
  shareTopViaOf(other: SipMessage): void {
    const oc = other.#c();
    const via = oc.vias !== undefined ? oc.vias[0] : oc.topVia;
    if (via === undefined || via === null) return;
    const theirs = other.headers.first('via');
    const mine = this.headers.first('via');
    if (theirs === undefined || mine === undefined || mine.value !== theirs.value) return;
    const c = this.#c();
    if (c.vias === undefined && c.topVia === undefined) c.topVia = via;
  }

  /**
   * Typed cache, valid for the current header list. After a mutation only the entries of the
   * headers that changed are dropped (compared per key with `HeaderList.keyVersion`); a new
   * header list (assigned to `headers`) drops them all.
   */
  #c(): TypedCache {
    const h = this.headers;
    if (this.#cacheList !== h) {
      // (a new message starts with an empty cache and a list that was never changed)
      if (this.#cacheList !== undefined) this.#cache = {};
      this.#cacheList = h;
      this.#cacheVersion = h.modifications;
      this.#seen = h.modifications === 0 ? undefined : CACHED_KEYS.map((k) => h.keyVersion(k));
    } else if (this.#cacheVersion !== h.modifications) {
      this.#cacheVersion = h.modifications;
      const seen = (this.#seen ??= [0, 0, 0, 0, 0, 0, 0, 0]);
      const c = this.#cache;
      for (let i = 0; i < CACHED_KEYS.length; i++) {
        const v = h.keyVersion(CACHED_KEYS[i]!);
        if (seen[i] === v) continue;
        seen[i] = v;
        switch (i) {
          case K_VIA:
            c.vias = undefined;
            c.topVia = undefined;
            c.viaError = undefined;
            break;
          case K_CALL_ID:
            c.callId = undefined;
            break;
          case K_FROM:
            c.from = undefined;
            c.fromTag = undefined;
            break;
          case K_TO:
            c.to = undefined;
            c.toTag = undefined;
            break;
          case K_CSEQ:
            c.cseq = undefined;
            break;
          case K_CONTACT:
            c.contacts = undefined;
            break;
          case K_ROUTE:
            c.routes = undefined;
            break;
          default:
            c.recordRoutes = undefined;
        }
      }
    }
    return this.#cache;
  }

  // -------------------------------------------------------------------------------------------
  // typed getters (parsed on first access, cached)

  get vias(): Via[] {
    const c = this.#c();
    if (c.vias === undefined) {
      const out: Via[] = [];
      let err: string | undefined;
      for (const e of this.headers.all('via')) {
        err = parseViaList(e.value, out);
        if (err !== undefined) break;
      }
      c.vias = out;
      c.viaError = err;
    }
    return c.vias;
  }

  /** Error text when a Via value is malformed (the valid ones before it are in `vias`). */
  get viaError(): string | undefined {
    void this.vias;
    return this.#c().viaError;
  }

  /** Top Via. Only the first value is parsed when the full list has not been asked for. */
  get topVia(): Via {
    const c = this.#c();
    if (c.vias !== undefined) return c.vias[0] ?? placeholderVia();
    if (c.topVia === undefined) {
      const e = this.headers.first('via');
      const one: Via[] = [];
      if (e !== undefined) parseFirstVia(e.value, one);
      c.topVia = one[0] ?? null;
    }
    return c.topVia ?? placeholderVia();
  }

  get callId(): string {
    const c = this.#c();
    if (c.callId === undefined) {
      const v = this.headers.first('call-id')?.value;
      c.callId = v !== undefined && validCallId(v) ? v : '';
    }
    return c.callId;
  }

  /** CSeq, or `undefined` when missing/invalid (see `cseq`). */
  get cseqOrUndefined(): CSeq | undefined {
    const c = this.#c();
    if (c.cseq === undefined) {
      const v = this.headers.first('cseq')?.value;
      const r = v === undefined ? 'Missing CSeq' : parseCSeq(v);
      c.cseq = typeof r === 'string' ? null : r;
    }
    return c.cseq ?? undefined;
  }

  get cseq(): CSeq {
    return this.cseqOrUndefined ?? { seq: 0, method: '' };
  }

  #nameAddr(which: 'from' | 'to'): NameAddr | null {
    const c = this.#c();
    let v = c[which];
    if (v === undefined) {
      const text = this.headers.get(which);
      const r = text === undefined ? undefined : parseNameAddr(text);
      v = r !== undefined && r.ok ? r.value : null;
      c[which] = v;
    }
    return v;
  }

  get from(): NameAddr {
    return this.#nameAddr('from') ?? placeholderNameAddr();
  }

  get to(): NameAddr {
    return this.#nameAddr('to') ?? placeholderNameAddr();
  }

  /** From / To parsed, or undefined when missing or malformed. */
  get fromOrUndefined(): NameAddr | undefined {
    return this.#nameAddr('from') ?? undefined;
  }

  get toOrUndefined(): NameAddr | undefined {
    return this.#nameAddr('to') ?? undefined;
  }

  get fromTag(): string | undefined {
    const c = this.#c();
    let t = c.fromTag;
    if (t === undefined) t = c.fromTag = this.#tagOf('from');
    return t ?? undefined;
  }

  get toTag(): string | undefined {
    const c = this.#c();
    let t = c.toTag;
    if (t === undefined) t = c.toTag = this.#tagOf('to');
    return t ?? undefined;
  }

  /**
   * The tag of From / To. Every proxied request reads both (transaction keys, dialogs, route
   * tokens), so the common form is read straight off the text: no quote in the value, then the
   * header parameters are what follows the last `>` (name-addr) or the first `;` (addr-spec, whose
   * `;` parameters are header parameters, RFC 3261 §20). Anything else takes the full parse.
   */
  #tagOf(which: 'from' | 'to'): string | null {
    const parsed = this.#c()[which];
    if (parsed !== undefined) return parsed?.params.get('tag') ?? null;
    const text = this.headers.get(which);
    if (text === undefined) return null;
    const fast = text.indexOf('"') === -1 ? tagParam(text) : undefined;
    if (fast !== undefined) return fast;
    return this.#nameAddr(which)?.params.get('tag') ?? null;
  }

  get maxForwards(): number | undefined {
    const v = this.headers.first('max-forwards')?.value;
    return v === undefined ? undefined : parseDigits(v);
  }

  /** Contact values; `[]` when absent or malformed (see `contactsValid`). */
  get contacts(): Contact[] {
    const c = this.#c();
    if (c.contacts === undefined) {
      const out: Contact[] = [];
      let bad = false;
      for (const e of this.headers.all('contact')) {
        if (parseNameAddrList(e.value, out, true) !== undefined) {
          bad = true;
          break;
        }
      }
      c.contacts = bad ? null : out;
    }
    return c.contacts ?? [];
  }

  /** False when a Contact header is present but malformed (a registrar answers 400 Bad Contact). */
  get contactsValid(): boolean {
    void this.contacts;
    return this.#c().contacts !== null;
  }

  #addrList(key: 'route' | 'record-route'): NameAddr[] {
    const out: NameAddr[] = [];
    for (const e of this.headers.all(key)) {
      if (parseNameAddrList(e.value, out, false) !== undefined) return [];
    }
    return out;
  }

  /** Route values in order; `[]` when absent or malformed. */
  get routes(): NameAddr[] {
    const c = this.#c();
    return (c.routes ??= this.#addrList('route'));
  }

  get recordRoutes(): NameAddr[] {
    const c = this.#c();
    return (c.recordRoutes ??= this.#addrList('record-route'));
  }

  get contentLength(): number | undefined {
    const v = this.headers.first('content-length')?.value;
    return v === undefined ? undefined : parseDigits(v);
  }

  /** Content-Type value (media type with parameters), trimmed. */
  get contentType(): string | undefined {
    return this.headers.first('content-type')?.value;
  }

  get expires(): number | undefined {
    const v = this.headers.first('expires')?.value;
    return v === undefined ? undefined : parseDigits(v);
  }

  /** Authorization / Proxy-Authorization / WWW-Authenticate / Proxy-Authenticate values, parsed. Malformed ones are skipped. */
  credentials(name: 'Authorization' | 'Proxy-Authorization' | 'WWW-Authenticate' | 'Proxy-Authenticate'): Credentials[] {
    const out: Credentials[] = [];
    for (const v of this.headers.getAll(name)) {
      const r = parseCredentials(v);
      if (typeof r !== 'string') out.push(r);
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // wire form

  /**
   * Serializes. Content-Length is set from the body when missing or wrong. An unmodified
   * parsed message is returned as its original bytes; otherwise unchanged lines are copied
   * raw and only new/replaced lines are rendered.
   */
  toBuffer(): Buffer {
    const body = this.body;
    const cl = this.headers.first('content-length');
    if (cl === undefined || parseDigits(cl.value.trim()) !== body.length) {
      const entry = new HeaderEntry(cl?.name ?? 'Content-Length', 'content-length', undefined, 0, 0, 0, 0, String(body.length));
      if (cl === undefined) this.headers.push(entry);
      else this.headers.replace(cl, entry);
    }
    const raw = this.#raw;
    if (raw !== undefined && !this.headers.modified && body === raw.body && !this.startLineChanged()) {
      return raw.buf.subarray(0, raw.bodyStart + body.length);
    }
    // Two passes. The first lists the parts: runs of lines still pointing into the received
    // bytes (adjacent ones merged), and the rendered text between them (consecutive rendered lines
    // joined into one string, so that sizing and writing cost one native call per part, not per
    // line). The second writes them into one buffer. Rendered text is written as UTF-8; a line
    // from another message's received text as latin1 (its bytes as received).
    const rawBuf = raw?.buf;
    const rawSrc = raw?.src;
    const texts = PART_TEXTS;
    const marks = PART_MARKS;
    let text = '';
    let runStart = 0;
    let runEnd = 0;
    if (raw !== undefined && !this.startLineChanged()) runEnd = raw.startLineEnd;
    else text = this.startLine() + '\r\n';
    const entries = this.headers.entries;
    const n = entries.length;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      const src = e.src;
      if (src !== undefined && src === rawSrc) {
        if (text !== '') {
          texts.push(text);
          marks.push(UTF8_TEXT, 0);
          text = '';
        }
        if (e.rs !== runEnd || runEnd === runStart) {
          if (runEnd > runStart) marks.push(runStart, runEnd);
          runStart = e.rs;
        }
        runEnd = e.re;
        continue;
      }
      if (runEnd > runStart) {
        marks.push(runStart, runEnd);
        runStart = runEnd = 0;
      }
      if (src === undefined) text += `${e.name}: ${e.value}\r\n`;
      else {
        if (text !== '') {
          texts.push(text);
          marks.push(UTF8_TEXT, 0);
          text = '';
        }
        texts.push(src.slice(e.rs, e.re));
        marks.push(LATIN1_TEXT, 0);
      }
    }
    if (runEnd > runStart) marks.push(runStart, runEnd);
    texts.push(text + '\r\n');
    marks.push(UTF8_TEXT, 0);
    let size = body.length;
    for (let i = 0, t = 0; i < marks.length; i += 2) {
      const m = marks[i]!;
      if (m >= 0) size += marks[i + 1]! - m;
      else if (m === UTF8_TEXT) size += Buffer.byteLength(texts[t++]!, 'utf8');
      else size += texts[t++]!.length;
    }
    const out = Buffer.allocUnsafe(size);
    let off = 0;
    for (let i = 0, t = 0; i < marks.length; i += 2) {
      const m = marks[i]!;
      if (m >= 0) off += rawBuf!.copy(out, off, m, marks[i + 1]!);
      else off += out.write(texts[t++]!, off, m === UTF8_TEXT ? 'utf8' : 'latin1');
    }
    texts.length = 0;
    marks.length = 0;
    body.copy(out, off);
    return out;
  }

  /** Copy with its own header list (body buffer shared; buffers are treated as immutable). */
  abstract clone(): this;

  /** @internal copies headers and wire form into a fresh instance made by a subclass's clone(). */
  protected copyInto<T extends SipMessage>(c: T): T {
    c.headers = this.headers.clone();
    c.body = this.body;
    c.#raw = this.#raw;
    return c;
  }

  /** @internal Used by the parser: keeps the top Via it parsed (undefined: its sent-by is invalid). */
  primeTopVia(via: Via | undefined): void {
    this.#c().topVia = via ?? null;
  }

  /** @internal Used by the parser: keeps the CSeq it parsed. */
  primeCSeq(cseq: CSeq): void {
    this.#c().cseq = cseq;
  }
}

/** The Via as parsing `text` (its rendering) would give it, or undefined when that is not certain. */
function cacheableVia(via: Via, text: string): Via | undefined {
  if (validateViaList(text) !== undefined || text.indexOf(',') !== -1 || /\s/.test(via.protocol)) return undefined;
  const params = new Map<string, string | null>();
  for (const [k, v] of via.params) {
    if (k !== k.toLowerCase()) return undefined;
    params.set(k, v);
  }
  return viaFromParts(via.protocol, via.transport.toUpperCase(), via.host, via.port, params);
}

/**
 * Parts listed by the first pass of toBuffer, written by its second (synchronous, not
 * re-entered): per part two numbers, a run [start, end) of the received bytes, or a text marker
 * and 0, the text being the next of PART_TEXTS.
 */
const PART_TEXTS: string[] = [];
const PART_MARKS: number[] = [];
const UTF8_TEXT = -1;
const LATIN1_TEXT = -2;

export class SipRequest extends SipMessage {
  method: string;
  /** Request-URI as text. */
  uri: string;
  #origMethod: string | undefined;
  #origUri: string | undefined;
  #parsedUri: { text: string; uri: SipUri | undefined } | undefined;

  constructor(method: string, uri: string, headers: HeaderList = new HeaderList(), body: Buffer = EMPTY, raw?: RawSource) {
    super(headers, body, raw);
    this.method = method;
    this.uri = uri;
    if (raw !== undefined) {
      this.#origMethod = method;
      this.#origUri = uri;
    }
  }

  override isRequest(): this is SipRequest {
    return true;
  }

  override startLine(): string {
    return `${this.method} ${this.uri} SIP/2.0`;
  }

  protected override startLineChanged(): boolean {
    return this.method !== this.#origMethod || this.uri !== this.#origUri;
  }

  /** Request-URI parsed; a placeholder `sip:invalid` when it is not a sip/sips/tel URI. */
  get requestUri(): SipUri {
    return this.requestUriOrUndefined ?? placeholderUri();
  }

  get requestUriOrUndefined(): SipUri | undefined {
    const p = this.#parsedUri;
    if (p !== undefined && p.text === this.uri) return p.uri;
    const r = parseUri(this.uri);
    const uri = r.ok ? r.value : undefined;
    this.#parsedUri = { text: this.uri, uri };
    return uri;
  }

  setUri(u: string | SipUri): void {
    if (typeof u === 'string') this.uri = u;
    else {
      this.uri = formatUriText(u);
      this.#parsedUri = { text: this.uri, uri: u };
    }
  }

  override clone(): this {
    const c = new SipRequest(this.method, this.uri);
    c.#origMethod = this.#origMethod;
    c.#origUri = this.#origUri;
    return this.copyInto(c) as this;
  }
}

export class SipResponse extends SipMessage {
  status: number;
  reason: string;
  #origStatus: number | undefined;
  #origReason: string | undefined;

  constructor(status: number, reason: string, headers: HeaderList = new HeaderList(), body: Buffer = EMPTY, raw?: RawSource) {
    super(headers, body, raw);
    this.status = status;
    this.reason = reason;
    if (raw !== undefined) {
      this.#origStatus = status;
      this.#origReason = reason;
    }
  }

  override isRequest(): this is SipRequest {
    return false;
  }

  override startLine(): string {
    return `SIP/2.0 ${this.status} ${this.reason}`;
  }

  protected override startLineChanged(): boolean {
    return this.status !== this.#origStatus || this.reason !== this.#origReason;
  }

  override clone(): this {
    const c = new SipResponse(this.status, this.reason);
    c.#origStatus = this.#origStatus;
    c.#origReason = this.#origReason;
    return this.copyInto(c) as this;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The `tag` header parameter of a From/To value without double quotes (see `#tagOf`): null when
 * there is none, undefined when the text is not in the simple form (the caller parses it fully).
 */
function tagParam(text: string): string | null | undefined {
  const lt = text.indexOf('<');
  let i: number;
  if (lt !== -1) {
    const gt = text.indexOf('>', lt);
    if (gt === -1 || text.indexOf('<', lt + 1) !== -1 || text.indexOf('>', gt + 1) !== -1) return undefined;
    i = gt + 1;
  } else {
    i = text.indexOf(';');
    if (i === -1) return null;
  }
  const n = text.length;
  let tag: string | null = null;
  while (i < n) {
    // ; SWS name SWS [= SWS value] SWS
    while (i < n && isSws(text.charCodeAt(i))) i++;
    if (i >= n) break;
    if (text.charCodeAt(i) !== 59) return undefined;
    i++;
    while (i < n && isSws(text.charCodeAt(i))) i++;
    const ns = i;
    while (i < n && isTokenChar(text.charCodeAt(i))) i++;
    const ne = i;
    if (ne === ns) return undefined;
    while (i < n && isSws(text.charCodeAt(i))) i++;
    let value: string | null = null;
    if (i < n && text.charCodeAt(i) === 61) {
      i++;
      while (i < n && isSws(text.charCodeAt(i))) i++;
      const vs = i;
      while (i < n && isTokenChar(text.charCodeAt(i))) i++;
      if (i === vs) return undefined; // IPv6 reference or other forms: the full parse decides
      value = text.slice(vs, i);
    }
    // The first occurrence counts, as in the parsed parameter Map.
    if (tag === null && ne - ns === 3 && (text.charCodeAt(ns) | 0x20) === 116 && (text.charCodeAt(ns + 1) | 0x20) === 97 && (text.charCodeAt(ns + 2) | 0x20) === 103) {
      if (value === null) return undefined;
      tag = value;
    }
  }
  return tag;
}

function isSws(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** RFC 3261 token characters: alphanumerics and -.!%*_+`'~ */
function isTokenChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 33 || c === 37 || c === 42 || c === 95 || c === 43 || c === 96 || c === 39 || c === 126;
}
