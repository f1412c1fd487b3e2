/**
 * A copy of `s` that does not keep its parent alive. Values read from a parsed message are
 * often slices of the whole received header block; a transaction that outlives its request
 * (Timer J, Timer K) keeps its map key and match data, so those must not pin the block.
 * Concatenation forces a flat copy; the slice of it shares that small copy only.
 */
export function ownString(s: string): string {
  return (' ' + s).slice(1);
}
