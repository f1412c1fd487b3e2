/**
 * `n.toString(36)` for a non-negative integer below 2^53, with the same text.
 *
 * Why: Number#toString with a radix is a runtime call that divides with `fmod` once per digit
 * (V8's DoubleToRadixCString); the proxy prints a 52-bit hash this way for every derived branch
 * and loop-detection value, and perf of a node proxying SIPp's calls put 1.5 % of its CPU
 * there. Here the number is cut into chunks of 5 digits (below 36^5 < 2^26), each printed with
 * integer arithmetic.
 */
const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz';
const CHUNK = 36 ** 5;

function chunk(c: number, pad: boolean): string {
  let s = '';
  do {
    const q = (c / 36) | 0;
    s = DIGITS[c - q * 36]! + s;
    c = q;
  } while (c !== 0);
  return pad ? '00000'.slice(s.length) + s : s;
}

export function base36(n: number): string {
  if (n < CHUNK) return chunk(n | 0, false);
  // Floored quotient, corrected: the division rounds and may land on the next integer.
  let hi = Math.floor(n / CHUNK);
  let lo = n - hi * CHUNK;
  if (lo < 0) {
    hi -= 1;
    lo += CHUNK;
  }
  return base36(hi) + chunk(lo | 0, true);
}
