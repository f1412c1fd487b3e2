import type { EventEmitter } from 'node:events';
import { logger } from './logger.js';

/** Emits an event; a listener that throws is logged and does not break the emitter's caller. */
export function safeEmit(emitter: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
  try {
    return emitter.emit(event, ...args);
  } catch (err) {
    logger.error({ err, event: String(event) }, 'event listener threw');
    return true;
  }
}
