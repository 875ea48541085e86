import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger, MethodNotAllowedException } from '@nestjs/common';
import type { Response } from 'express';
import { type ErrorBody, ErrorCode, OffsetGoneError } from '@app/protocol';
import { errorBody, knownError } from '../common/error-body';

const STATUS: Record<ErrorCode, number> = {
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  VALIDATION_FAILED: 400,
  UNKNOWN_COMMAND: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  PAYLOAD_TOO_LARGE: 413,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  INTERNAL: 500,
};

/** The HTTP status of an error: its code's, but for the two the codes do not name. */
function statusOf(exception: unknown, body: ErrorBody): number {
  // An offset of a lost or trimmed history (PROTOCOL.md §12, Durable Streams §5.5).
  if (exception instanceof OffsetGoneError) return 410;
  // A write to a read-only URL: the route sets `Allow`.
  if (exception instanceof MethodNotAllowedException) return 405;
  return STATUS[body.code];
}

/**
 * Every HTTP error leaves as `{ code, message, details? }` with a contract code — the
 * same shape as a command's error — including body-parser and routing errors.
 */
@Catch()
export class ProtocolExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const body = this.toBody(exception);
    if (body.code === ErrorCode.RATE_LIMITED || body.code === ErrorCode.UNAVAILABLE) {
      response.setHeader('Retry-After', Math.ceil((body.retryAfterMs ?? 1000) / 1000));
    }
    // The stream's position moves on: a 410 (cacheable by default) must not be kept.
    if (exception instanceof OffsetGoneError) response.setHeader('Cache-Control', 'no-store');
    response.status(statusOf(exception, body)).json(body);
  }

  private toBody(exception: unknown): ErrorBody {
    if (knownError(exception)) return errorBody(exception);
    // body-parser marks its errors with a `type`.
    const type = (exception as { type?: string } | null)?.type;
    if (type === 'entity.too.large') return { code: ErrorCode.PAYLOAD_TOO_LARGE, message: 'request body too large' };
    if (type === 'entity.parse.failed') return { code: ErrorCode.VALIDATION_FAILED, message: 'request body is not valid JSON' };
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      if (status === 404) return { code: ErrorCode.NOT_FOUND, message: 'no such route' };
      if (status === 413) return { code: ErrorCode.PAYLOAD_TOO_LARGE, message: exception.message };
      if (status >= 400 && status < 500) return { code: ErrorCode.VALIDATION_FAILED, message: exception.message };
    }
    this.logger.error({ msg: 'request failed', err: exception instanceof Error ? exception.stack : String(exception) });
    return errorBody(exception);
  }
}
