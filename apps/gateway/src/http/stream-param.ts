import { ErrorCode, parseStream, type ParsedStream, ProtocolError } from '@app/protocol';

/** A `:stream` route parameter as a stream name (PROTOCOL.md §2), or 400 VALIDATION_FAILED. */
export function streamParam(value: string): ParsedStream {
  const stream = parseStream(value);
  if (stream) return stream;
  throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'stream must be bot:<id> or dag:<id>', [
    { field: 'stream', constraint: 'isStreamName', message: 'stream must be bot:<id> or dag:<id> with an id matching [A-Za-z0-9_.-]{1,128}' },
  ]);
}
