/** Number formatting for the report's text (Markdown and plot labels). */

/** `1234567.8` -> `1,234,568`; fractional digits kept up to `digits`. */
export function formatNumber(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return String(n);
  return n.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: digits });
}

/** A duration given in ms: `850 ms`, `4.17 s`, `1 min 3 s`, `2 h 5 min`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const a = Math.abs(ms);
  if (a < 10) return `${formatNumber(ms, 2)} ms`;
  if (a < 1000) return `${formatNumber(ms, 1)} ms`;
  const sec = ms / 1000;
  // Seconds up to two minutes, so a figure like the paper's 63.04 s keeps its digits.
  if (Math.abs(sec) < 120) return `${formatNumber(sec, 2)} s`;
  const totalSec = Math.round(Math.abs(sec));
  const sign = sec < 0 ? '-' : '';
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) => `${sign}${big} ${bigUnit}${small ? ` ${small} ${smallUnit}` : ''}`;
  if (totalSec < 3600) return two(Math.floor(totalSec / 60), 'min', totalSec % 60, 's');
  const totalMin = Math.round(totalSec / 60);
  if (totalMin < 24 * 60) return two(Math.floor(totalMin / 60), 'h', totalMin % 60, 'min');
  const totalH = Math.round(totalMin / 60);
  return two(Math.floor(totalH / 24), 'd', totalH % 24, 'h');
}

/**
 * An availability (0..1) as a percentage with as many decimals as it has nines, so the digit
 * after the last 9 shows: 0.99703 -> `99.703 %`, 0.99999917 -> `99.999917 %`.
 */
export function formatAvailability(a: number): string {
  if (!Number.isFinite(a)) return String(a);
  if (a >= 1) return '100 %';
  const nines = -Math.log10(1 - a);
  const decimals = Math.min(12, Math.max(1, Math.ceil(nines)));
  // Truncate rather than round, so 0.9999999 is never printed as 100 %.
  const f = 10 ** decimals;
  return `${(Math.floor(a * 100 * f) / f).toFixed(decimals)} %`;
}

/** A value with its unit, durations in human units. */
export function formatValue(v: number | null, unit: string): string {
  if (v === null || !Number.isFinite(v)) return 'not measured';
  switch (unit) {
    case 'ms':
      return formatDuration(v);
    case '%':
      if (v > 99 && v < 100) return formatAvailability(v / 100);
      return `${formatNumber(v, v !== 0 && Math.abs(v) < 0.01 ? 5 : v < 1 ? 3 : 2)} %`;
    case 'calls':
      return formatNumber(v, 2);
    default:
      return `${formatNumber(v, 2)} ${unit}`;
  }
}

/** Escapes text for a Markdown table cell. */
export function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Escapes free text for Markdown prose (no HTML, no link or emphasis syntax from the data). */
export function mdText(s: string): string {
  return s.replace(/[\\`*_[\]<>|#]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}
