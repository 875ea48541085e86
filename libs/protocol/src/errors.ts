/** Error codes of PROTOCOL.md §6. Clients branch on these, so they never change. */
export const ErrorCode = {
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  RATE_LIMITED: 'RATE_LIMITED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNAVAILABLE: 'UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const ERROR_CODES = new Set<string>(Object.values(ErrorCode));
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && ERROR_CODES.has(value);
}

/** One invalid field of a command payload (`error.details[]`). */
export interface FieldViolation {
  /** Dotted path of the field inside the payload, e.g. `dag.nodes.0.id`. */
  field: string;
  /** The constraint that failed, e.g. `isString`, `matches`, `whitelistValidation`. */
  constraint: string;
  message: string;
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: FieldViolation[];
  retryAfterMs?: number;
}

/**
 * An error that carries a contract code. Thrown by server code and by the client SDK
 * (a failed ack rejects with one), so both sides handle failures the same way.
 */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: FieldViolation[],
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.details?.length) body.details = this.details;
    if (this.retryAfterMs !== undefined) body.retryAfterMs = this.retryAfterMs;
    return body;
  }

  static fromBody(body: ErrorBody): ProtocolError {
    return new ProtocolError(body.code, body.message, body.details, body.retryAfterMs);
  }
}

/** Codes a client may retry with the same command id: nothing was decided on the server. */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set([ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.INTERNAL]);
