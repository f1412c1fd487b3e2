import { escapeSnippet, createLogger, rateLimitedLog } from '../../util/logger.js';
import { counter } from '../../util/metrics.js';
import { sipErrorStatus } from '../message/errors.js';

const log = createLogger('sip-transport');

/** Malformed or unusable peer input, by reason code (parser `SIP_ERR_*` codes and framing codes). */
export const parseErrors = counter(
  'tandem_sip_parse_errors_total',
  'SIP messages dropped or answered 400 because they were malformed, by reason code',
  ['reason'],
);

/** Transport-level failures: connection limits, overflow, idle closes, send errors, handler faults. */
export const transportEvents = counter(
  'tandem_sip_transport_events_total',
  'SIP transport events: connection limit, buffer overflow, idle close, send failure, handler fault',
  ['event'],
);

/**
 * Status and reason for a request that failed to parse but can still be answered: the message
 * layer's table (`SIP_ERROR_STATUS`) plus the stream-framing codes; the reason phrase is the
 * parser's (it names the fault, e.g. `400 Missing Call-ID`).
 */
const FRAMING_STATUS: Record<string, number> = {
  SIP_ERR_BUFFER_OVERFLOW: 513,
};

export function statusForParseError(code: string, reason: string): { status: number; reason: string } {
  const status = FRAMING_STATUS[code] ?? sipErrorStatus(code);
  // A reason phrase is one line of printable text (RFC 3261 §25.1 Reason-Phrase).
  let text = reason.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, 120);
  if (!text) text = status === 513 ? 'Message Too Large' : 'Bad Request';
  return { status, reason: text };
}

/** Counts and logs (rate limited, escaped snippet, source) one piece of bad input. */
export function reportBadInput(code: string, reason: string, data: Buffer | undefined, from: string): void {
  parseErrors.inc({ reason: code });
  rateLimitedLog(`sip-bad-input:${code}`, (suppressed) => {
    log.warn({ code, reason, from, snippet: data ? escapeSnippet(data) : undefined, suppressed }, 'dropping malformed SIP input');
  });
}

/** Counts and logs (rate limited) a transport event or a fault caught at a socket boundary. */
export function reportTransportEvent(event: string, from: string, err?: unknown): void {
  transportEvents.inc({ event });
  rateLimitedLog(`sip-transport:${event}`, (suppressed) => {
    log.warn({ event, from, err: err instanceof Error ? err.message : err, suppressed }, 'sip transport event');
  });
}
