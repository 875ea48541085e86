import { type ErrorBody, ErrorCode, ProtocolError } from '@app/protocol';
import { isRedisUnavailable } from '@app/runtime';

/**
 * The contract's error body (PROTOCOL.md §6) for anything thrown while serving a client —
 * a command ack, an HTTP answer, a compatibility endpoint's error frame: a ProtocolError as it
 * is, an unreachable Redis as UNAVAILABLE, anything else as INTERNAL (its details stay in
 * the log; `knownError` says whether it is worth logging).
 */
export function errorBody(error: unknown, internalMessage = 'internal error'): ErrorBody {
  if (error instanceof ProtocolError) return error.toBody();
  if (isRedisUnavailable(error)) return { code: ErrorCode.UNAVAILABLE, message: 'the backplane is unavailable; retry shortly', retryAfterMs: 1000 };
  return { code: ErrorCode.INTERNAL, message: internalMessage };
}

/** A contract error or an outage: nothing a log needs a stack of. */
export function knownError(error: unknown): boolean {
  return error instanceof ProtocolError || isRedisUnavailable(error);
}
