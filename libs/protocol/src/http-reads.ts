import { ErrorCode, type ErrorBody, ProtocolError } from './errors';
import type { StreamState } from './reducers';
import type { StreamName } from './streams';

/**
 * HTTP reads (PROTOCOL.md §12): `GET /v1/streams/:stream?offset=<o>[&live=long-poll|sse]`,
 * the read side of the Durable Streams protocol in JSON mode — its header names, sentinels,
 * SSE control events, and this gateway's offsets.
 */

/** The offset to read next (every read answer; SSE: `streamNextOffset`). */
export const STREAM_NEXT_OFFSET_HEADER = 'Stream-Next-Offset';
/** Present (`true`) when the answer holds everything the stream had. */
export const STREAM_UP_TO_DATE_HEADER = 'Stream-Up-To-Date';
/** Echoed by clients as `cursor=` on their next live read (CDN collapsing). */
export const STREAM_CURSOR_HEADER = 'Stream-Cursor';
/** The headers a browser client must be allowed to read (CORS `Access-Control-Expose-Headers`). */
export const STREAM_READ_HEADERS = [STREAM_NEXT_OFFSET_HEADER, STREAM_UP_TO_DATE_HEADER, STREAM_CURSOR_HEADER, 'ETag'] as const;

/** `offset=-1`: the stream's first event. */
export const OFFSET_START = '-1';
/** `offset=now`: the tail — only events published from now on. */
export const OFFSET_NOW = 'now';

export const LIVE_MODES = ['long-poll', 'sse'] as const;
export type LiveMode = (typeof LIVE_MODES)[number];

/** A place in one history of a stream: after the event `seq` of `epoch` (0: before the first). */
export interface StreamPosition {
  epoch: string;
  seq: number;
}

/** Zero-padded to the digits of the largest safe integer, so offsets of one epoch sort as their seqs. */
const SEQ_DIGITS = 16;
const EPOCH_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
const OFFSET_PATTERN = /^([A-Za-z0-9_.-]{1,128})_(\d{16})$/;

/**
 * The offset of a position: `<epoch>_<seq, 16 digits>`, e.g. `0b6c…-9e1f_0000000000000042`.
 * URL-safe, never a sentinel, and within one epoch lexicographic order is seq order. Clients
 * treat it as opaque; it carries the epoch so that a server can tell an offset of a lost
 * history from a valid one.
 */
export function encodeOffset({ epoch, seq }: StreamPosition): string {
  if (!EPOCH_PATTERN.test(epoch)) throw new Error(`epoch ${JSON.stringify(epoch)} cannot be put in an offset`);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new Error(`seq ${seq} cannot be put in an offset`);
  return `${epoch}_${String(seq).padStart(SEQ_DIGITS, '0')}`;
}

/** The position an offset names, or null for anything `encodeOffset` does not produce. */
export function decodeOffset(offset: unknown): StreamPosition | null {
  if (typeof offset !== 'string') return null;
  // The epoch may hold `_` too: the seq is what follows the last one.
  const match = OFFSET_PATTERN.exec(offset);
  if (!match) return null;
  const seq = Number(match[2]);
  return Number.isSafeInteger(seq) ? { epoch: match[1], seq } : null;
}

/** Where a read starts: the first event, the tail, or after a position. */
export type ReadFrom = { kind: 'start' } | { kind: 'now' } | { kind: 'after'; position: StreamPosition };

/** The `offset` query value as a start, or null when it is malformed. Absent means `-1`. */
export function parseReadOffset(offset: unknown): ReadFrom | null {
  if (offset === undefined || offset === OFFSET_START) return { kind: 'start' };
  if (offset === OFFSET_NOW) return { kind: 'now' };
  const position = decodeOffset(offset);
  return position ? { kind: 'after', position } : null;
}

/** An SSE `control` event: sent after each `data` event, and alone when the reader caught up. */
export interface SseControl {
  streamNextOffset: string;
  streamCursor: string;
  upToDate?: true;
}

/** `GET /v1/streams/:stream/snapshot`: the state folded up to `seq`; read on from `offset`. */
export interface StreamSnapshotResponse {
  stream: StreamName;
  epoch: string;
  seq: number;
  snapshot: StreamState;
  /** **Addition**: the offset of `seq`, where reading the events after the snapshot starts. */
  offset: string;
}

/** The 410 body: the offset's history is gone (a lost epoch, or trimmed); the stream stands at `epoch`/`seq`. */
export interface OffsetGoneBody extends ErrorBody {
  epoch: string;
  seq: number;
}

/**
 * An offset the stream's history no longer holds: its epoch was lost (data loss, a retention
 * reset), or retention trimmed the events after it. Answered 410 with the current position;
 * the client takes a snapshot (PROTOCOL.md §5) and reads on from there.
 */
export class OffsetGoneError extends ProtocolError {
  constructor(
    readonly offset: string,
    readonly current: StreamPosition,
  ) {
    super(ErrorCode.NOT_FOUND, `offset ${offset} is no longer in the stream's history (a lost epoch, or trimmed): take a snapshot and read on from it`);
    this.name = 'OffsetGoneError';
  }

  override toBody(): OffsetGoneBody {
    return { ...super.toBody(), epoch: this.current.epoch, seq: this.current.seq };
  }
}

export function isOffsetGoneBody(body: unknown): body is OffsetGoneBody {
  const b = body as Partial<OffsetGoneBody> | null;
  return typeof b === 'object' && b !== null && b.code === ErrorCode.NOT_FOUND && typeof b.epoch === 'string' && Number.isSafeInteger(b.seq);
}
