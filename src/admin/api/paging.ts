/** Query helpers of the admin API: every list is paginated and every page bounded. */

/** Largest page any list endpoint returns. */
export const MAX_PAGE = 100;
export const DEFAULT_PAGE = 50;

/** A bounded integer from a query value: the default when absent or unreadable, clamped to [min, max]. */
export function intParam(v: unknown, def: number, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d{1,9}$/.test(v) ? Number(v) : def;
  return Math.min(max, Math.max(min, n));
}

/** `limit` of a list request: 1..MAX_PAGE, default DEFAULT_PAGE. */
export function limitParam(v: unknown): number {
  return intParam(v, DEFAULT_PAGE, 1, MAX_PAGE);
}

/** A Redis glob pattern matching `text` literally (`*?[]\` escaped). */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** A short string query parameter (at most `max` characters), or undefined. */
export function strParam(v: unknown, max = 256): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v.slice(0, max) : undefined;
}
