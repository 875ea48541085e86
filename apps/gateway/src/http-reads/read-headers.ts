import type { Response } from 'express';
import { encodeOffset, STREAM_CURSOR_HEADER, STREAM_NEXT_OFFSET_HEADER, STREAM_UP_TO_DATE_HEADER, type StreamPosition } from '@app/protocol';
import type { ReadPage } from './read-page';

/** Durable Streams §10.7: no MIME sniffing, and readable by `fetch` from other origins. */
export const READ_SECURITY_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Cross-Origin-Resource-Policy': 'cross-origin' } as const;

/**
 * A page holds the user's events (a token's scope decides who may read them): only the
 * client may keep it (Durable Streams §8.1, for streams with confidential data). Answers at
 * the tail (`offset=now`, 204) move on with the stream and are never kept.
 */
const CACHE_PAGE = 'private, max-age=60, stale-while-revalidate=300';
const NO_STORE = 'no-store';

/** Writes a 200 read: the JSON array and its headers. `etag` is undefined for `offset=now`. */
export function sendPage(response: Response, page: ReadPage, cursor: string, etag: string | undefined): void {
  response.set(READ_SECURITY_HEADERS);
  response.setHeader(STREAM_NEXT_OFFSET_HEADER, encodeOffset(page.next));
  if (page.upToDate) response.setHeader(STREAM_UP_TO_DATE_HEADER, 'true');
  response.setHeader(STREAM_CURSOR_HEADER, cursor);
  response.setHeader('Cache-Control', etag === undefined ? NO_STORE : CACHE_PAGE);
  // Express answers 304 (no body) to a matching If-None-Match.
  if (etag !== undefined) response.setHeader('ETag', etag);
  response.type('application/json').status(200).send(page.json);
}

/** The 204 of a long-poll that timed out: still at `position`, and up to date. */
export function sendNothingNew(response: Response, position: StreamPosition, cursor: string): void {
  response.set(READ_SECURITY_HEADERS);
  response.setHeader(STREAM_NEXT_OFFSET_HEADER, encodeOffset(position));
  response.setHeader(STREAM_UP_TO_DATE_HEADER, 'true');
  response.setHeader(STREAM_CURSOR_HEADER, cursor);
  response.setHeader('Cache-Control', NO_STORE);
  response.status(204).end();
}

/** `HEAD`: where the stream stands (Durable Streams §5.4). */
export function sendTail(response: Response, tail: StreamPosition): void {
  response.set(READ_SECURITY_HEADERS);
  response.setHeader(STREAM_NEXT_OFFSET_HEADER, encodeOffset(tail));
  response.setHeader('Cache-Control', NO_STORE);
  response.type('application/json').status(200).end();
}

/** The ETag of a page (Durable Streams §5.5: `{stream}:{start offset}:{end offset}`): the same read, the same events. */
export function pageEtag(stream: string, startOffset: string, page: ReadPage): string {
  return `"${stream}:${startOffset}:${encodeOffset(page.next)}"`;
}
