import { fail, ok, type Result } from '../util/result.js';
import type { BDict, BValue } from './bencode.js';
import { isDict } from './ng-message.js';

/**
 * Canonical spelling of an ng key or flag: lower case, spaces and underscores as hyphens.
 * rtpengine accepts `received from` and `received-from`, `SIP source address` and
 * `SIP-source-address`, `rtpp_flags` and `rtpp-flags`; this maps them all to one form.
 */
export function canonicalName(name: string): string {
  // Most names arrive canonical already (`call-id`, `from-tag`, `trust-address`): no new string,
  // and no regular expression run for them.
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if ((c < 0x61 || c > 0x7a) && (c < 0x30 || c > 0x39) && c !== 0x2d) return name.trim().toLowerCase().replace(/[\s_]+/g, '-');
  }
  return name;
}

/** Commands this server implements (wire names, canonical). */
export const NG_COMMANDS = ['ping', 'offer', 'answer', 'delete', 'query', 'list', 'statistics'] as const;
export type NgCommand = (typeof NG_COMMANDS)[number];

/**
 * Flags (canonical spelling) that rtpengine documents and that this server accepts without a
 * warning. Flags that change behaviour here: trust-address, sip-source-address, symmetric,
 * asymmetric, port-latching, no-port-latching, strict-source, media-handover, fatal, fast,
 * to-tag, no-rtcp-attribute, full-rtcp-attribute, reset. The rest are accepted and have no effect
 * on a plain RTP relay (no transcoding, recording or SRTP here).
 */
const KNOWN_FLAGS = new Set([
  'trust-address', 'sip-source-address', 'symmetric', 'asymmetric', 'strict-source', 'port-latching',
  'no-port-latching', 'media-handover', 'nat-wait', 'pierce-nat', 'record-call', 'generate-rtcp', 'rtcp-mirror',
  'loop-protect', 'early-media', 'reset', 'trickle-ice', 'no-rtcp-attribute', 'full-rtcp-attribute',
  'original-sendrecv', 'single-codec', 'allow-transcoding', 'always-transcode', 'strip-extmap', 'fatal', 'fast',
  'to-tag', 'discard-recording', 'unidirectional', 'all', 'no-passthrough', 'passthrough', 'inject-dtmf',
  'port-latching', 'recrypt', 'no-jitter-buffer', 'debug', 'siprec', 'directional', 'pad-crypto',
  'generate-mid', 'strict-source', 'record-call', 'ice-reject', 'reuse-codecs', 'no-codec-renegotiation',
  'allow-asymmetric-codecs', 'egress', 'webrtc', 'sip-message-type', 'fragment',
]);

/** `replace` values understood (others are ignored with a warning). */
const KNOWN_REPLACE = new Set(['origin', 'origin-full', 'session-connection', 'session-name', 'sdp-version', 'username', 'zero-address', 'force-increment-sdp-ver']);

/** Flags that may also come as dictionary keys with a yes/1 value. */
const LEGACY_FLAG_KEYS = ['trust-address', 'symmetric', 'asymmetric', 'strict-source', 'port-latching', 'sip-source-address'] as const;

/** A parsed ng request with keys and flags normalised. */
export interface NgRequest {
  /** Command, canonical spelling (`start recording` -> `start-recording`). */
  command: string;
  callId?: string;
  fromTag?: string;
  toTag?: string;
  viaBranch?: string;
  sdp?: string;
  /** Canonical flag names (from `flags`, `rtpp-flags` and boolean-style keys). */
  flags: Set<string>;
  /** Canonical `replace` values (`origin`, `session-connection`, ...). */
  replace: Set<string>;
  direction: string[];
  /** Canonical ICE option: remove, force, default, force-relay, optional. */
  ice?: string;
  receivedFrom?: { family: 'IP4' | 'IP6'; address: string };
  transportProtocol?: string;
  label?: string;
  /** `supports` entries, canonical (`load-limit`). */
  supports: Set<string>;
  deleteDelaySec?: number;
  limit?: number;
  mediaAddress?: string;
  addressFamily?: 'IP4' | 'IP6';
  /** Flags and replace values that were not recognised (already ignored). */
  unknown: string[];
  /** All keys, canonical spelling, raw values. */
  raw: Record<string, BValue>;
}

function str(v: BValue | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  return undefined;
}

function strList(v: BValue | undefined): string[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v.map(str).filter((x): x is string => x !== undefined);
  const s = str(v);
  return s === undefined ? [] : s.split(/[\s,]+/).filter(Boolean);
}

function family(addr: string): 'IP4' | 'IP6' {
  return addr.includes(':') ? 'IP6' : 'IP4';
}

function parseReceivedFrom(v: BValue | undefined): NgRequest['receivedFrom'] {
  const parts = strList(v);
  if (parts.length === 0) return undefined;
  if (parts.length >= 2) {
    const fam = parts[0]!.toUpperCase();
    const address = parts[1]!;
    return { family: fam === 'IP6' ? 'IP6' : fam === 'IP4' ? 'IP4' : family(address), address };
  }
  return { family: family(parts[0]!), address: parts[0]! };
}

/**
 * Applies one `key=value` or bare token from a `flags` list or `rtpp-flags` string.
 * `replace-origin` and `replace-session-connection` are the rtpp-flags spelling of `replace`.
 */
function applyToken(req: NgRequest, token: string, fromRtppFlags: boolean): void {
  const eq = token.indexOf('=');
  if (eq > 0) {
    const key = canonicalName(token.slice(0, eq));
    const value = token.slice(eq + 1);
    switch (key) {
      case 'ice': req.ice = canonicalName(value); return;
      case 'replace': for (const r of value.split(',')) addReplace(req, r); return;
      case 'direction': req.direction.push(value); return;
      case 'transport-protocol': req.transportProtocol = value; return;
      case 'received-from': req.receivedFrom = parseReceivedFrom(value.replace(/[:;]/, ' ')) ?? req.receivedFrom; return;
      case 'from-tag': req.fromTag = value; return;
      case 'to-tag': req.toTag = value; return;
      case 'call-id': req.callId = value; return;
      case 'via-branch': req.viaBranch = value; return;
      case 'label': req.label = value; return;
      case 'media-address': req.mediaAddress = value; return;
      case 'address-family': req.addressFamily = value.toUpperCase() === 'IP6' ? 'IP6' : 'IP4'; return;
      case 'delete-delay': { const n = Number(value); if (Number.isFinite(n)) req.deleteDelaySec = n; return; }
      default:
        req.raw[key] = value;
        return;
    }
  }
  const flag = canonicalName(token);
  if (flag === '') return;
  if (flag.startsWith('replace-')) return addReplace(req, flag.slice('replace-'.length));
  if (flag.startsWith('ice-') && ['ice-remove', 'ice-force', 'ice-default', 'ice-optional', 'ice-force-relay'].includes(flag)) {
    req.ice = flag.slice(4);
    return;
  }
  if (fromRtppFlags && flag.startsWith('direction-')) return;
  req.flags.add(flag);
  if (!KNOWN_FLAGS.has(flag)) req.unknown.push(token);
}

function addReplace(req: NgRequest, value: string): void {
  const r = canonicalName(value);
  if (!r) return;
  req.replace.add(r);
  if (!KNOWN_REPLACE.has(r)) req.unknown.push(`replace:${value}`);
}

/**
 * Turns a decoded ng dictionary into an {@link NgRequest}. Fails only when there is no usable
 * `command`; everything else unknown is ignored and listed in `unknown`.
 */
export function parseNgRequest(dict: BDict): Result<NgRequest> {
  // Keys arrive canonical from every controller seen so far: the dictionary is then used as it
  // is (it belongs to this request), and copied only when a key must be renamed.
  let raw: Record<string, BValue> = dict;
  for (const k in dict) {
    if (canonicalName(k) === k) continue;
    raw = Object.create(null) as Record<string, BValue>;
    for (const key in dict) raw[canonicalName(key)] = dict[key]!;
    break;
  }
  const command = str(raw['command']);
  if (command === undefined || command.trim() === '') return fail('NG_ERR_NO_COMMAND', 'No command given');
  const req: NgRequest = {
    command: canonicalName(command),
    flags: new Set(),
    replace: new Set(),
    direction: [],
    supports: raw['supports'] === undefined ? new Set() : new Set(strList(raw['supports']).map(canonicalName)),
    unknown: [],
    raw,
  };
  // An empty identifier is the same as none (a controller may send `from-tag: ""` when it has no tag).
  req.callId = str(raw['call-id']) || undefined;
  req.fromTag = str(raw['from-tag']) || undefined;
  req.toTag = str(raw['to-tag']) || undefined;
  req.viaBranch = str(raw['via-branch']) || undefined;
  req.sdp = str(raw['sdp']);
  req.label = str(raw['label']);
  req.transportProtocol = str(raw['transport-protocol']);
  req.mediaAddress = str(raw['media-address']);
  const fam = str(raw['address-family']);
  if (fam) req.addressFamily = fam.toUpperCase() === 'IP6' ? 'IP6' : 'IP4';
  const ice = str(raw['ice']);
  if (ice) req.ice = canonicalName(ice);
  req.receivedFrom = parseReceivedFrom(raw['received-from']);
  req.direction = strList(raw['direction']);
  const dd = raw['delete-delay'];
  const ddn = typeof dd === 'number' ? dd : Number(str(dd));
  if (dd !== undefined && Number.isFinite(ddn)) req.deleteDelaySec = ddn;
  const lim = raw['limit'];
  const limn = typeof lim === 'number' ? lim : Number(str(lim));
  if (lim !== undefined && Number.isFinite(limn)) req.limit = limn;
  const flagsValue = raw['flags'];
  for (const f of Array.isArray(flagsValue) ? strList(flagsValue) : flagsValue === undefined ? [] : strList(flagsValue)) applyToken(req, f, false);
  for (const r of strList(raw['replace'])) addReplace(req, r);
  const rtpp = str(raw['rtpp-flags']);
  if (rtpp) for (const tok of rtpp.split(/\s+/)) if (tok) applyToken(req, tok, true);
  // Legacy dictionary-style options: a few flags may be sent as keys with yes/1 values.
  for (const key of LEGACY_FLAG_KEYS) {
    const v = raw[key];
    if (v !== undefined && !isDict(v) && !Array.isArray(v)) {
      const s = str(v)?.toLowerCase();
      if (s === undefined || s === '' || s === 'yes' || s === '1' || s === 'on' || s === 'true') req.flags.add(key);
    }
  }
  return ok(req);
}
