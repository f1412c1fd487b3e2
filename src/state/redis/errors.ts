/**
 * Stable error codes of the Redis state layer. Callers of the stores never see these (the stores
 * degrade instead of throwing); they reach logs, metrics and the connection's own callers.
 */
export type RedisStateErrorCode =
  /** The URL given for the store is not `redis://` or `redis-sentinel://` as documented. */
  | 'STATE_ERR_BAD_REDIS_URL'
  /** No connection to the primary right now; the command was not sent. */
  | 'STATE_ERR_REDIS_DOWN'
  /** The command got no answer within its timeout. */
  | 'STATE_ERR_REDIS_TIMEOUT'
  /** The server reached is not the primary (Sentinel mode). */
  | 'STATE_ERR_NOT_PRIMARY'
  /** No Sentinel named a primary. */
  | 'STATE_ERR_NO_PRIMARY'
  /** The connection was closed by its owner. */
  | 'STATE_ERR_CLOSED';

export class RedisStateError extends Error {
  readonly code: RedisStateErrorCode;
  constructor(code: RedisStateErrorCode, message: string) {
    super(message);
    this.name = 'RedisStateError';
    this.code = code;
  }
}
