import { type ErrorBody, ErrorCode, type FieldViolation, ProtocolError, type ServerToClientEvents } from '@app/protocol';

/**
 * Reading an old protocol's client frames. Each reader names the field as the old protocol
 * spells it, so a dashboard's developer recognises it; the values then travel as a contract
 * command, which the dispatcher validates in full (lengths, patterns, unknown fields).
 */
export type Fields = Record<string, unknown>;

export function fieldsOf(value: unknown, field: string): Fields {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Fields;
  throw invalid(field, 'isObject', `${field} must be a JSON object`);
}

/** The text frame parsed (the router hands `undefined` for text that is not JSON). */
export function frameFields(frame: unknown, raw: string): Fields {
  if (frame === undefined) throw invalid('frame', 'json', `frame is not JSON: ${raw.slice(0, 80)}`);
  return fieldsOf(frame, 'frame');
}

export function requiredString(fields: Fields, name: string, path = name): string {
  const value = fields[name];
  if (typeof value === 'string' && value.length > 0) return value;
  throw invalid(path, 'isNotEmpty', `${path} must be a non-empty string`);
}

export function optionalString(fields: Fields, name: string, path = name): string | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  throw invalid(path, 'isString', `${path} must be a string`);
}

export function requiredBoolean(fields: Fields, name: string, path = name): boolean {
  const value = fields[name];
  if (typeof value === 'boolean') return value;
  throw invalid(path, 'isBoolean', `${path} must be a boolean`);
}

export function oneOf<T extends string>(fields: Fields, name: string, allowed: readonly T[], path = name): T {
  const value = fields[name];
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalid(path, 'isIn', `${path} must be one of ${allowed.join(', ')}`);
}

export function invalid(field: string, constraint: string, message: string): ProtocolError {
  const details: FieldViolation[] = [{ field, constraint, message }];
  return new ProtocolError(ErrorCode.VALIDATION_FAILED, message, details);
}

/** A bot socket opened without a usable `?bot=`: it says so, and every frame it gets is answered the same. */
export function missingBot(): ProtocolError {
  return invalid('bot', 'matches', 'connect with ?bot=<botId> (matching [A-Za-z0-9_.-]{1,128})');
}

export function unknownAction(name: string, value: unknown, known: readonly string[]): ProtocolError {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : 'missing';
  return new ProtocolError(ErrorCode.UNKNOWN_COMMAND, `unknown ${name} ${shown}; this endpoint takes ${known.join(', ')}`);
}

export const BINARY_FRAME: ErrorBody = { code: ErrorCode.VALIDATION_FAILED, message: 'binary frames are not part of the protocol; send JSON text frames' };

/**
 * The connection-level server events other than stream events, for an old protocol that has
 * only its `error` frame to say them: an expired token (the close 4401 follows), a draining
 * pod (the close 4409 follows: reconnect), a command error. `hello`, `presence` and
 * `session_history` have no counterpart and are not sent.
 */
export function connectionNotice<E extends keyof ServerToClientEvents>(event: E, payload: Parameters<ServerToClientEvents[E]>[0]): ErrorBody | undefined {
  switch (event) {
    case 'auth_expired':
      return { code: ErrorCode.UNAUTHORIZED, message: 'token expired' };
    case 'draining': {
      const { reconnectInMs } = payload as Parameters<ServerToClientEvents['draining']>[0];
      return { code: ErrorCode.UNAVAILABLE, message: 'this server is draining: reconnect', retryAfterMs: reconnectInMs };
    }
    case 'command_error':
      return (payload as Parameters<ServerToClientEvents['command_error']>[0]).error;
    default:
      return undefined;
  }
}
