import { ErrorCode, type FieldViolation, LIVE_MODES, type LiveMode, OFFSET_START, parseReadOffset, ProtocolError, type ReadFrom } from '@app/protocol';

/** A read's query (PROTOCOL.md §12): where it starts, whether it waits, and the echoed cursor. */
export interface ReadQuery {
  from: ReadFrom;
  /** The `offset` as sent (`-1` when absent). */
  offset: string;
  live?: LiveMode;
  cursor?: string;
}

/**
 * Validates `offset`, `live` and `cursor`; other parameters are the client's own (Durable
 * Streams clients may add some) and are ignored. A live read must name its offset (§5.6).
 */
export function parseReadQuery(query: Record<string, unknown>): ReadQuery {
  const violations: FieldViolation[] = [];
  const from = parseReadOffset(query.offset);
  if (!from) violations.push({ field: 'offset', constraint: 'isOffset', message: 'offset must be -1, now, or a Stream-Next-Offset this server returned' });
  const live = query.live;
  if (live !== undefined && !LIVE_MODES.includes(live as LiveMode)) {
    violations.push({ field: 'live', constraint: 'isIn', message: `live must be one of ${LIVE_MODES.join(', ')}` });
  }
  if (live !== undefined && query.offset === undefined) violations.push({ field: 'offset', constraint: 'isDefined', message: 'a live read needs an offset' });
  const cursor = query.cursor;
  if (cursor !== undefined && typeof cursor !== 'string') violations.push({ field: 'cursor', constraint: 'isString', message: 'cursor must be given once' });
  if (violations.length > 0 || !from) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, violations.map((v) => v.message).join('; '), violations);
  return {
    from,
    offset: typeof query.offset === 'string' ? query.offset : OFFSET_START,
    ...(live !== undefined ? { live: live as LiveMode } : {}),
    ...(typeof cursor === 'string' ? { cursor } : {}),
  };
}
