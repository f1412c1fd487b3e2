/**
 * Header name handling: case-insensitive lookup keys, compact forms (RFC 3261 §7.3.3 and
 * later RFCs), canonical spellings, and which headers are comma-separated lists.
 */

/** Compact form -> full lower-case name (RFC 3261 §7.3.3, RFC 3265, RFC 3515, RFC 3841, RFC 4028). */
const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  f: 'from',
  t: 'to',
  v: 'via',
  l: 'content-length',
  c: 'content-type',
  k: 'supported',
  s: 'subject',
  e: 'content-encoding',
  o: 'event',
  u: 'allow-events',
  r: 'refer-to',
  b: 'referred-by',
  x: 'session-expires',
  y: 'identity',
  a: 'accept-contact',
  j: 'reject-contact',
  d: 'request-disposition',
  n: 'identity-info',
};

const CANONICAL_LIST = [
  'Accept', 'Accept-Contact', 'Accept-Encoding', 'Accept-Language', 'Alert-Info', 'Allow', 'Allow-Events',
  'Authentication-Info', 'Authorization', 'Call-ID', 'Call-Info', 'Contact', 'Content-Disposition',
  'Content-Encoding', 'Content-Language', 'Content-Length', 'Content-Type', 'CSeq', 'Date', 'Error-Info',
  'Event', 'Expires', 'From', 'History-Info', 'Identity', 'Identity-Info', 'In-Reply-To', 'Max-Forwards',
  'Min-Expires', 'Min-SE', 'MIME-Version', 'Organization', 'P-Asserted-Identity', 'P-Preferred-Identity',
  'Path', 'Priority', 'Privacy', 'Proxy-Authenticate', 'Proxy-Authorization', 'Proxy-Require', 'RAck',
  'Reason', 'Record-Route', 'Refer-To', 'Referred-By', 'Reject-Contact', 'Reply-To', 'Request-Disposition',
  'Require', 'Retry-After', 'Route', 'RSeq', 'Server', 'Service-Route', 'Session-Expires', 'SIP-ETag',
  'SIP-If-Match', 'Subject', 'Subscription-State', 'Supported', 'Timestamp', 'To', 'Unsupported',
  'User-Agent', 'Via', 'Warning', 'WWW-Authenticate',
];

/** lower-case full name -> canonical spelling */
const CANONICAL = new Map<string, string>(CANONICAL_LIST.map((n) => [n.toLowerCase(), n]));

/**
 * Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1): several lines may be
 * merged, and one line may carry several values. Authorization-type headers and Date are
 * deliberately absent (their values contain commas but are single values); unknown headers
 * are never split because their grammar is unknown.
 */
const LIST_HEADERS = new Set<string>([
  'accept', 'accept-contact', 'accept-encoding', 'accept-language', 'alert-info', 'allow', 'allow-events',
  'call-info', 'contact', 'content-encoding', 'content-language', 'error-info', 'history-info', 'in-reply-to',
  'p-asserted-identity', 'p-preferred-identity', 'path', 'privacy', 'proxy-require', 'reason', 'record-route',
  'reject-contact', 'request-disposition', 'require', 'route', 'security-client', 'security-server',
  'security-verify', 'service-route', 'supported', 'unsupported', 'via', 'warning',
]);

// Interning cache: raw name as written -> lower-case full key. Bounded so a peer sending
// random header names cannot grow it without limit.
const keyCache = new Map<string, string>();
const KEY_CACHE_MAX = 2048;
for (const full of CANONICAL.keys()) {
  keyCache.set(full, full);
  keyCache.set(CANONICAL.get(full)!, full);
}
for (const [c, full] of Object.entries(COMPACT)) {
  keyCache.set(c, full);
  keyCache.set(c.toUpperCase(), full);
}

/** Lookup key for a header name: lower-case, compact forms expanded. Interned for known names. */
export function headerKey(name: string): string {
  const cached = keyCache.get(name);
  if (cached !== undefined) return cached;
  let lower = name.toLowerCase();
  const full = COMPACT[lower];
  if (full !== undefined) lower = full;
  else {
    const canon = CANONICAL.get(lower);
    if (canon !== undefined) lower = canon.toLowerCase();
  }
  // intern: reuse the cached instance for known keys so comparisons are pointer-cheap
  const interned = keyCache.get(lower) ?? lower;
  if (keyCache.size < KEY_CACHE_MAX) keyCache.set(name, interned);
  return interned;
}

/** Canonical spelling for a new header line (`call-id` -> `Call-ID`); unknown names kept as given. */
export function canonicalName(name: string): string {
  const key = headerKey(name);
  return CANONICAL.get(key) ?? name;
}

export function isListHeader(key: string): boolean {
  return LIST_HEADERS.has(key);
}

/** A header name spelled exactly as it is usually written, with its lookup key. */
export interface KnownName {
  name: string;
  key: string;
}

const USUAL_SPELLINGS = [
  ...CANONICAL_LIST,
  ...Object.keys(COMPACT),
  ...Object.keys(COMPACT).map((c) => c.toUpperCase()),
  'Call-Id', 'Cseq', 'CSEQ', 'Www-Authenticate', 'Mime-Version', 'Rseq', 'Rack', 'Min-Se',
  'Diversion', 'Remote-Party-ID', 'Security-Client', 'Security-Server', 'Security-Verify',
];

/** First char code -> names starting with it (exact spelling). */
const KNOWN_BY_FIRST: (KnownName[] | undefined)[] = new Array<KnownName[] | undefined>(128).fill(undefined);
for (const spelling of USUAL_SPELLINGS) {
  const c = spelling.charCodeAt(0);
  const list = (KNOWN_BY_FIRST[c] ??= []);
  if (!list.some((k) => k.name === spelling)) list.push({ name: spelling, key: headerKey(spelling) });
}

/**
 * Recognizes a usual header name at s[start, end) without allocating. Returns undefined for
 * anything else (the caller then slices, validates and looks the name up).
 */
export function matchKnownName(s: string, start: number, end: number): KnownName | undefined {
  const c = s.charCodeAt(start);
  if (c >= 128) return undefined;
  const list = KNOWN_BY_FIRST[c];
  if (list === undefined) return undefined;
  const len = end - start;
  for (let i = 0; i < list.length; i++) {
    const k = list[i]!;
    if (k.name.length === len && s.startsWith(k.name, start)) return k;
  }
  return undefined;
}
