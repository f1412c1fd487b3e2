/**
 * String helpers for the parsers. The scanning loops call `s.charCodeAt(i)` directly: a call
 * site of its own gets feedback of its own, and optimized code then reads the character inline.
 * They once went through a shared `charCodeAt.call(s, i)` helper, when every string method load
 * was a generic lookup; that was String.prototype in V8's dictionary mode (see
 * util/fast-prototypes), not the strings. With it fast, one micro-benchmark scanned ~100
 * characters in 120-145 ns directly against 435-450 ns through the helper, another found them
 * equal; with SIPp the difference was within the noise.
 */
const charCodeAt = String.prototype.charCodeAt;

/** Buffer#latin1Slice exists at runtime (faster than toString's encoding dispatch) but is not typed. */
export const latin1 = (b: Buffer, start: number, end: number): string =>
  (b as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(start, end);

/**
 * A copy of `s` that does not keep its parent alive. Values read from a received message are
 * slices of its whole text; whatever outlives the message (a transaction kept for Timers J/K, a
 * binding, a nonce count, a call record) must not pin that text.
 *
 * The copy is one flat string. Its first character joined to the rest is a flat string when
 * short (under 13 characters), else a pair that reading a character flattens into a new string
 * of its own; the young-generation collector then points every holder straight at that string
 * and the pair is gone. The former `(' ' + s).slice(1)` left a slice of the padded copy: two
 * strings per value for as long as the value lives, ~40 bytes more each and one more object for
 * every full collection to mark (a finished call keeps about ten such values for 32 s).
 */
export function ownString(s: string): string {
  if (s.length < 2) return s.length === 0 ? '' : charAt.call(s, 0);
  const copy = charAt.call(s, 0) + s.slice(1);
  charCodeAt.call(copy, 1); // flattens the pair
  return copy;
}

const charAt = String.prototype.charAt;

/**
 * `known` when it has the same text as `s`, else `ownString(s)`: a value read from a message
 * that usually repeats one the process already holds (a Via host equal to the sender's address,
 * which the transport caches) costs no copy of its own.
 */
export function ownStringAs(s: string, known: string | undefined): string {
  return s === known ? known : ownString(s);
}
