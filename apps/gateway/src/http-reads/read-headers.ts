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

/**
 * Writes a 200 read: the JSON array and its headers — or 304 without the body when the
 * client's `If-None-Match` names the page's ETag (Durable Streams §8.1; a client's
 * `Cache-Control: no-cache`, which fetch adds to conditional requests, does not change that).
 * `etag` is undefined for `offset=now`.
 */
export function sendPage(response: Response, page: ReadPage, cursor: string, etag: string | undefined, ifNoneMatch: string | undefined): void {
  response.set(READ_SECURITY_HEADERS);
  response.setHeader(STREAM_NEXT_OFFSET_HEADER, encodeOffset(page.next));
  if (page.upToDate) response.setHeader(STREAM_UP_TO_DATE_HEADER, 'true');
  response.setHeader(STREAM_CURSOR_HEADER, cursor);
  response.setHeader('Cache-Control', etag === undefined ? NO_STORE : CACHE_PAGE);
  if (etag !== undefined) response.setHeader('ETag', etag);
  if (etag !== undefined && matches(ifNoneMatch, etag)) return void response.status(304).end();
  // `end`, not Express' `send`: that would make up an ETag of its own, and judge freshness itself.
  response.type('application/json').status(200).end(page.json);
}

/** `If-None-Match`: `*` or a list of entity tags (weak ones compare equal, RFC 9110 §13.1.2). */
function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
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
