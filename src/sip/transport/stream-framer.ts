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
import { frameStream } from '../message/parser.js';

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

/**
 * Keeps the bytes of one connection and cuts them into messages with the message layer's
 * `frameStream`, which owns the framing rules; this class adds the per-connection buffer cap and
 * remembers where the header search stopped so a slow peer does not cause rescans.
 */
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
      const frame = frameStream(buf, this.#opts.maxMessageBytes, this.#scanFrom);
      switch (frame.type) {
        case 'need':
          this.#scanFrom = frame.searchFrom ?? 0;
          return events;
        case 'ping':
          events.push({ kind: 'ping' });
          this.#consume(frame.length);
          break;
        case 'pong':
          this.#consume(frame.length);
          break;
        case 'message':
          events.push({ kind: 'message', data: buf.subarray(0, frame.length) });
          this.#consume(frame.length);
          break;
        case 'error': {
          // Framing cannot continue; hand back the header when there is one so a request can
          // still get its 400 before the connection is closed.
          const headerEnd = buf.indexOf(CRLFCRLF);
          const head = headerEnd >= 0 && headerEnd + 4 <= this.#opts.maxMessageBytes ? buf.subarray(0, headerEnd + 4) : undefined;
          return this.#fail(events, frame.code, frame.reason, head);
        }
      }
    }
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
