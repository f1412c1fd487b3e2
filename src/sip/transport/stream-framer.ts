/**
 * Splits a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3): the header ends at the first
 * empty line, the body is exactly Content-Length bytes, and Content-Length is mandatory on
 * streams. CRLFCRLF between messages is a keep-alive ping (RFC 5626 §3.5.1), a lone CRLF is
 * the pong (or the stray CRLF of §7.5) and is skipped.
 *
 * ```
 *   [CRLF CRLF]* start-line CRLF *(header CRLF) CRLF body(Content-Length)  next message ...
 * ```
 *
 * Pure and bounded: never holds more than `maxBufferedBytes`, never throws on peer bytes.
 */

export type FrameEvent =
  | { kind: 'message'; data: Buffer }
  | { kind: 'ping' }
  /** Framing lost: the caller closes the connection. `data` holds the header part when there is one. */
  | { kind: 'error'; code: string; reason: string; data?: Buffer };

export interface StreamFramerOptions {
  maxMessageBytes: number;
  maxBufferedBytes: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH_RE = /\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)/gi;

export class StreamFramer {
  #buf: Buffer = Buffer.alloc(0);
  #scanFrom = 0;
  #failed = false;
  readonly #opts: StreamFramerOptions;

  constructor(opts: StreamFramerOptions) {
    this.#opts = opts;
  }

  /** Bytes currently buffered. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** Feeds bytes; returns the complete messages/pings/errors they produced, in order. */
  push(chunk: Buffer): FrameEvent[] {
    if (this.#failed) return [];
    const events: FrameEvent[] = [];
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#buf.length > this.#opts.maxBufferedBytes) {
      return this.#fail(events, 'SIP_ERR_BUFFER_OVERFLOW', 'Too many bytes buffered');
    }
    for (;;) {
      const buf = this.#buf;
      if (buf.length === 0) break;
      // Keep-alive and stray CRLFs before a start-line.
      if (buf[0] === 0x0d) {
        if (buf.length < 2) break;
        if (buf[1] !== 0x0a) return this.#fail(events, 'SIP_ERR_BAD_START_LINE', 'Bad line ending');
        if (buf.length >= 4 && buf[2] === 0x0d && buf[3] === 0x0a) {
          events.push({ kind: 'ping' });
          this.#consume(4);
          continue;
        }
        if (buf.length < 4 && (buf.length === 2 || buf[2] === 0x0d)) break; // might become a ping
        this.#consume(2);
        continue;
      }
      const headerEnd = buf.indexOf(CRLFCRLF, this.#scanFrom);
      if (headerEnd < 0) {
        if (buf.length > this.#opts.maxMessageBytes) {
          return this.#fail(events, 'SIP_ERR_TOO_LARGE', 'Message Too Large');
        }
        this.#scanFrom = Math.max(0, buf.length - 3);
        break;
      }
      const headText = buf.toString('latin1', 0, headerEnd);
      let contentLength: number | undefined;
      CONTENT_LENGTH_RE.lastIndex = 0;
      for (let m = CONTENT_LENGTH_RE.exec(headText); m; m = CONTENT_LENGTH_RE.exec(headText)) {
        const raw = m[1]!.trim();
        if (!/^\d{1,9}$/.test(raw)) {
          return this.#fail(events, 'SIP_ERR_BAD_CONTENT_LENGTH', 'Bad Content-Length', buf.subarray(0, headerEnd + 4));
        }
        const n = Number(raw);
        if (contentLength !== undefined && contentLength !== n) {
          return this.#fail(events, 'SIP_ERR_BAD_CONTENT_LENGTH', 'Conflicting Content-Length', buf.subarray(0, headerEnd + 4));
        }
        contentLength = n;
      }
      if (contentLength === undefined) {
        // Framing cannot continue: report with the header so a request can still get its 400.
        return this.#fail(events, 'SIP_ERR_MISSING_CONTENT_LENGTH', 'Missing Content-Length', buf.subarray(0, headerEnd + 4));
      }
      const total = headerEnd + 4 + contentLength;
      if (total > this.#opts.maxMessageBytes) {
        return this.#fail(events, 'SIP_ERR_TOO_LARGE', 'Message Too Large', buf.subarray(0, headerEnd + 4));
      }
      if (buf.length < total) break;
      events.push({ kind: 'message', data: buf.subarray(0, total) });
      this.#consume(total);
    }
    return events;
  }

  #consume(n: number): void {
    this.#buf = n >= this.#buf.length ? Buffer.alloc(0) : this.#buf.subarray(n);
    this.#scanFrom = 0;
  }

  #fail(events: FrameEvent[], code: string, reason: string, data?: Buffer): FrameEvent[] {
    this.#failed = true;
    this.#buf = Buffer.alloc(0);
    events.push(data ? { kind: 'error', code, reason, data } : { kind: 'error', code, reason });
    return events;
  }
}
