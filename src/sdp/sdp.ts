import { fail, ok, type Result } from '../util/result.js';

/**
 * One SDP line kept with its own line ending, so that lines this module does not rewrite are
 * serialised back byte for byte (RFC 8866 §5 says CRLF, but LF-only bodies exist in the wild).
 */
export interface SdpLine {
  /** The single-letter type (`v`, `o`, `c`, `m`, `a`, ...), or '' for a line that is not `x=...`. */
  type: string;
  /** Everything after `x=` (or the whole line when `type` is ''). */
  value: string;
  /** `\r\n`, `\n` or '' (last line without ending). */
  eol: string;
}

/** A media description: its `m=` line and the lines up to the next `m=`. */
export interface SdpMediaSection {
  lines: SdpLine[];
}

/** An SDP body split into session-level lines and media sections. */
export interface SdpDocument {
  session: SdpLine[];
  media: SdpMediaSection[];
}

export type AddressFamily = 'IP4' | 'IP6';

/** What a relay needs to know about one `m=` line. */
export interface SdpMediaInfo {
  index: number;
  type: string;
  port: number;
  proto: string;
  formats: string[];
  /** Media-level `c=` if present, else session-level. */
  connection?: { family: AddressFamily; address: string };
  /** `a=rtcp:` (RFC 3605) if present. */
  rtcp?: { port: number; address?: string };
  rtcpMux: boolean;
  /** sendrecv/sendonly/recvonly/inactive (media-level, else session-level). */
  direction?: string;
  hasIce: boolean;
}

/** Largest SDP accepted, bytes. */
export const SDP_MAX_BYTES = 65_535;
const MAX_LINES = 2000;

/**
 * Splits SDP text into lines (RFC 8866 §5: `<type>=<value>` per line). Lenient: unknown or
 * odd lines are kept verbatim; only an empty body, a body without `v=`/`m=` structure problems
 * that make it unusable, or an oversize body fail.
 */
export function parseSdp(text: string): Result<SdpDocument> {
  if (text.length === 0) return fail('SDP_ERR_EMPTY', 'empty SDP');
  if (text.length > SDP_MAX_BYTES) return fail('SDP_ERR_TOO_LARGE', 'SDP too large');
  const doc: SdpDocument = { session: [], media: [] };
  let pos = 0;
  let count = 0;
  while (pos < text.length) {
    if (++count > MAX_LINES) return fail('SDP_ERR_TOO_LARGE', 'too many SDP lines');
    const nl = text.indexOf('\n', pos);
    let end = nl === -1 ? text.length : nl;
    let eol = nl === -1 ? '' : '\n';
    if (end > pos && text.charCodeAt(end - 1) === 13) {
      end--;
      eol = nl === -1 ? '\r' : '\r\n';
    }
    const raw = text.slice(pos, end);
    pos = nl === -1 ? text.length : nl + 1;
    const line: SdpLine = isTypedLine(raw) ? { type: raw[0]!, value: raw.slice(2), eol } : { type: '', value: raw, eol };
    if (line.type === 'm') doc.media.push({ lines: [line] });
    else if (doc.media.length > 0) doc.media[doc.media.length - 1]!.lines.push(line);
    else doc.session.push(line);
  }
  if (!doc.session.some((l) => l.type === 'v')) return fail('SDP_ERR_NO_VERSION', 'SDP has no v= line');
  for (const m of doc.media) if (!parseMLine(m.lines[0]!.value)) return fail('SDP_ERR_BAD_MEDIA', `bad m= line ${JSON.stringify(m.lines[0]!.value.slice(0, 60))}`);
  return ok(doc);
}

/** `<letter>=`: a line of the SDP grammar (anything else is kept verbatim). */
function isTypedLine(raw: string): boolean {
  if (raw.length < 2 || raw.charCodeAt(1) !== 0x3d) return false;
  const c = raw.charCodeAt(0) | 0x20; // lower case
  return c >= 0x61 && c <= 0x7a;
}

export function serializeSdp(doc: SdpDocument): string {
  let out = '';
  for (const l of doc.session) out += (l.type ? `${l.type}=` : '') + l.value + l.eol;
  for (const m of doc.media) for (const l of m.lines) out += (l.type ? `${l.type}=` : '') + l.value + l.eol;
  return out;
}

/** `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 8866 §5.14). */
function parseMLine(value: string): { type: string; port: number; portCount?: string; proto: string; formats: string[] } | undefined {
  const parts = value.split(' ');
  if (parts.length < 3) return undefined;
  const [type, portField, proto, ...formats] = parts;
  const m = /^(\d{1,5})(?:\/(\d+))?$/.exec(portField!);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port > 65535) return undefined;
  return { type: type!, port, ...(m[2] ? { portCount: m[2] } : {}), proto: proto!, formats };
}

/** `c=IN <IP4|IP6> <address>[/ttl...]` (RFC 8866 §5.7). */
function parseConnection(value: string): { family: AddressFamily; address: string } | undefined {
  const m = /^IN\s+(IP4|IP6)\s+(\S+)/.exec(value);
  if (!m) return undefined;
  return { family: m[1] as AddressFamily, address: m[2]!.split('/')[0]! };
}

/** The attribute name of an `a=` line (`rtcp` of `a=rtcp:9 IN IP4 ...`), else undefined. No object made: SDP is read on every offer and answer. */
function attrName(line: SdpLine): string | undefined {
  if (line.type !== 'a') return undefined;
  const colon = line.value.indexOf(':');
  return colon === -1 ? line.value : line.value.slice(0, colon);
}

/** What follows the colon of an `a=name:value` line, or undefined. */
function attrValue(line: SdpLine): string | undefined {
  const colon = line.value.indexOf(':');
  return colon === -1 ? undefined : line.value.slice(colon + 1);
}

const DIRECTIONS = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);
/** ICE attributes (RFC 8839 §5). */
const ICE_ATTRS = new Set(['candidate', 'ice-ufrag', 'ice-pwd', 'ice-options', 'ice-lite', 'ice-mismatch', 'remote-candidates', 'end-of-candidates', 'ice-pacing']);

/** Reads what a relay needs from each `m=` line. */
export function describeSdp(doc: SdpDocument): { connection?: { family: AddressFamily; address: string }; media: SdpMediaInfo[] } {
  let sessionConn: { family: AddressFamily; address: string } | undefined;
  let sessionDir: string | undefined;
  let sessionIce = false;
  for (const l of doc.session) {
    if (l.type === 'c') sessionConn ??= parseConnection(l.value);
    const name = attrName(l);
    if (name === undefined) continue;
    if (DIRECTIONS.has(name)) sessionDir ??= name;
    else if (ICE_ATTRS.has(name)) sessionIce = true;
  }
  const media = doc.media.map((m, index) => {
    const ml = parseMLine(m.lines[0]!.value)!;
    let conn: { family: AddressFamily; address: string } | undefined;
    let rtcp: SdpMediaInfo['rtcp'];
    let rtcpMux = false;
    let direction = sessionDir;
    let hasIce = sessionIce;
    for (const l of m.lines) {
      if (l.type === 'c') conn ??= parseConnection(l.value);
      const name = attrName(l);
      if (name === undefined) continue;
      if (name === 'rtcp') {
        const value = attrValue(l);
        const r = value ? /^(\d{1,5})(?:\s+IN\s+IP[46]\s+(\S+))?/.exec(value) : null;
        if (r) rtcp = { port: Number(r[1]), ...(r[2] ? { address: r[2] } : {}) };
      } else if (name === 'rtcp-mux') rtcpMux = true;
      else if (DIRECTIONS.has(name)) direction = name;
      else if (ICE_ATTRS.has(name)) hasIce = true;
    }
    conn ??= sessionConn;
    const info: SdpMediaInfo = { index, type: ml.type, port: ml.port, proto: ml.proto, formats: ml.formats, rtcpMux, hasIce };
    if (conn) info.connection = conn;
    if (rtcp) info.rtcp = rtcp;
    if (direction) info.direction = direction;
    return info;
  });
  return { ...(sessionConn ? { connection: sessionConn } : {}), media };
}

/** How {@link rewriteSdp} changes an SDP body; everything not named here is left alone. */
export interface SdpRewriteOptions {
  /** Address written into every `c=` line (the relay's advertised address). */
  address: string;
  family: AddressFamily;
  /** Relay ports per `m=` index; `undefined` leaves that `m=` line alone. A port of 0 stays 0 (rejected stream). */
  media: Array<{ rtpPort: number; rtcpPort: number } | undefined>;
  /** `remove` drops ICE attributes (the relay does not terminate ICE); `keep` leaves them. */
  ice: 'remove' | 'keep';
  /** Replace the `o=` line's address too (`replace: ["origin"]`). */
  replaceOrigin: boolean;
  /** `a=rtcp` handling: `auto` rewrites an existing one and adds one when RTCP is not on RTP+1; `full` writes `a=rtcp:<port> IN <fam> <addr>` always; `none` removes it. */
  rtcpAttribute: 'auto' | 'full' | 'none';
  /** New `m=` transport protocol (e.g. RTP/AVP -> RTP/AVPF), if any. */
  transportProtocol?: string;
}

/**
 * Rewrites an SDP so that media flows through the relay: `c=` lines (RFC 8866 §5.7) get the
 * relay address, each `m=` port the relay's port for that stream, `a=rtcp` (RFC 3605) the relay's
 * RTCP port, ICE attributes are dropped or kept, and the `o=` address replaced when asked.
 * All other lines are returned exactly as they came.
 */
export function rewriteSdp(doc: SdpDocument, opts: SdpRewriteOptions): SdpDocument {
  const conn = `IN ${opts.family} ${opts.address}`;
  const dropIce = (l: SdpLine): boolean => opts.ice === 'remove' && l.type === 'a' && ICE_ATTRS.has(attrName(l)!);
  const eolOf = (lines: SdpLine[]): string => lines.find((l) => l.eol)?.eol ?? '\r\n';
  const session: SdpLine[] = [];
  let sessionHasC = false;
  for (const l of doc.session) {
    if (dropIce(l)) continue;
    if (l.type === 'c') {
      sessionHasC = true;
      session.push({ type: l.type, value: rewriteConnection(l.value, conn), eol: l.eol });
    } else if (l.type === 'o' && opts.replaceOrigin) {
      const parts = l.value.split(' ');
      if (parts.length >= 6) {
        parts[4] = opts.family;
        parts[5] = opts.address;
      }
      session.push({ type: l.type, value: parts.join(' '), eol: l.eol });
    } else session.push(l);
  }
  const media = doc.media.map((m, index) => {
    const ports = opts.media[index];
    const eol = eolOf(m.lines);
    const out: SdpLine[] = [];
    let hasC = false;
    let rtcpSeen = false;
    const mParts = m.lines[0]!.value.split(' ');
    const rejected = mParts[1] !== undefined && /^0(\/|$)/.test(mParts[1]);
    if (ports && !rejected) {
      mParts[1] = String(ports.rtpPort) + (mParts[1]!.includes('/') ? mParts[1]!.slice(mParts[1]!.indexOf('/')) : '');
      if (opts.transportProtocol) mParts[2] = opts.transportProtocol;
    }
    const mLine = m.lines[0]!;
    out.push({ type: mLine.type, value: mParts.join(' '), eol: mLine.eol });
    for (let i = 1; i < m.lines.length; i++) {
      const l = m.lines[i]!;
      if (dropIce(l)) continue;
      if (l.type === 'c') {
        hasC = true;
        out.push(ports ? { type: l.type, value: rewriteConnection(l.value, conn), eol: l.eol } : l);
        continue;
      }
      if (ports && !rejected && attrName(l) === 'rtcp') {
        rtcpSeen = true;
        if (opts.rtcpAttribute === 'none') continue;
        out.push({ type: l.type, value: rtcpValue(ports.rtcpPort, opts, opts.rtcpAttribute === 'full' || /\sIN\s/.test(attrValue(l) ?? '')), eol: l.eol });
        continue;
      }
      out.push(l);
    }
    if (ports && !rejected) {
      if (!hasC && !sessionHasC) {
        // RFC 8866 §5.7: c= must be at session level or in every media section; put ours after m= and i=.
        const at = out.findIndex((l, i) => i > 0 && l.type !== 'i');
        out.splice(at === -1 ? out.length : at, 0, { type: 'c', value: conn, eol });
      }
      if (!rtcpSeen && (opts.rtcpAttribute === 'full' || (opts.rtcpAttribute === 'auto' && ports.rtcpPort !== ports.rtpPort + 1))) {
        insertAttr(out, { type: 'a', value: rtcpValue(ports.rtcpPort, opts, opts.rtcpAttribute === 'full'), eol });
      }
    }
    return { lines: out };
  });
  return { session, media };
}

function rtcpValue(port: number, opts: SdpRewriteOptions, full: boolean): string {
  return full ? `rtcp:${port} IN ${opts.family} ${opts.address}` : `rtcp:${port}`;
}

function rewriteConnection(value: string, conn: string): string {
  // Keep a multicast TTL/count suffix only if present; unicast relays never have one.
  return /^IN\s+IP[46]\s+/.test(value) ? conn : value;
}

/** Adds an attribute after the last non-attribute line of a media section (before the first a= if any). */
function insertAttr(lines: SdpLine[], line: SdpLine): void {
  const lastA = lines.map((l) => l.type).lastIndexOf('a');
  const at = lastA === -1 ? lines.length : lastA + 1;
  // Keep the last line's missing EOL (if the body ended without one) on the last line.
  if (at === lines.length && lines[at - 1]!.eol === '') {
    lines[at - 1] = { ...lines[at - 1]!, eol: line.eol };
    lines.push({ ...line, eol: '' });
    return;
  }
  lines.splice(at, 0, line);
}
