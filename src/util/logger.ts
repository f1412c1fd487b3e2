import { pino, type Logger } from 'pino';

/** Process-wide logger; level from TANDEM_LOG_LEVEL (default info). Logs go to stderr as JSON. */
export const logger: Logger = pino(
  { level: process.env.TANDEM_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: false }),
);

export function createLogger(name: string): Logger {
  return logger.child({ module: name });
}

export function setLogLevel(level: string): void {
  logger.level = level;
}

const RATE_WINDOW_MS = 10_000;
const lastLogged = new Map<string, { at: number; suppressed: number }>();

/**
 * Runs `log` at most once per key per 10 s, passing how many calls were suppressed since the
 * last one. Peer-triggered errors go through here so a flood of bad packets cannot flood the log.
 */
export function rateLimitedLog(key: string, log: (suppressed: number) => void): void {
  const now = Date.now();
  const entry = lastLogged.get(key);
  if (entry && now - entry.at < RATE_WINDOW_MS) {
    entry.suppressed++;
    return;
  }
  const suppressed = entry?.suppressed ?? 0;
  if (lastLogged.size > 10_000) lastLogged.clear();
  lastLogged.set(key, { at: now, suppressed: 0 });
  log(suppressed);
}

/** Printable, bounded snippet of peer bytes for logs. */
export function escapeSnippet(buf: Buffer | string, max = 120): string {
  const text = typeof buf === 'string' ? buf : buf.subarray(0, max).toString('latin1');
  return JSON.stringify(text.slice(0, max));
}
