import type { Envelope, StreamPosition } from '@app/protocol';

/**
 * A page grows past this many characters of JSON only by its first event: a page of 2,000
 * large events would otherwise be one string of hundreds of MB. The reader reads on from the
 * page's `next`.
 */
export const PAGE_MAX_CHARS = 1024 * 1024;

/** One answer of a read: the events after a position as a JSON array, and where to read on. */
export interface ReadPage {
  /** The §2 envelopes, as the JSON array the answer carries. */
  json: string;
  count: number;
  /** The position after the page's last event (the start's, when the page is empty). */
  next: StreamPosition;
  /** The page ends at the head the events were read with. */
  upToDate: boolean;
}

/**
 * Envelopes as JSON, each encoded once: a live event reaches every reader of its stream on
 * the pod as the same object, and each of them sends it (as WsEndpoint does for `/ws`).
 */
const encoded = new WeakMap<Envelope, string>();

function toJson(event: Envelope): string {
  let text = encoded.get(event);
  if (text === undefined) encoded.set(event, (text = JSON.stringify(event)));
  return text;
}

/**
 * The page of `events` (in order, each after `after` and one seq after the other) that fits
 * {@link PAGE_MAX_CHARS}; `headSeq` is where the stream stood when they were read.
 */
export function pageOf(after: StreamPosition, events: readonly Envelope[], headSeq: number): ReadPage {
  const parts: string[] = [];
  let chars = 2;
  for (const event of events) {
    const text = toJson(event);
    if (parts.length > 0 && chars + text.length > PAGE_MAX_CHARS) break;
    parts.push(text);
    chars += text.length + 1;
  }
  const last = parts.length > 0 ? events[parts.length - 1].seq : after.seq;
  return { json: `[${parts.join(',')}]`, count: parts.length, next: { epoch: after.epoch, seq: last }, upToDate: last >= headSeq };
}

/**
 * How a delivered event stands to a reader's position: `old` (at or before it: a feed
 * delivers a little late), `next` (the one right after it), or `break` (a gap, or another
 * epoch: the reader must go back to history).
 */
export function relation(position: StreamPosition, event: Envelope): 'old' | 'next' | 'break' {
  if (event.epoch !== position.epoch) return 'break';
  if (event.seq <= position.seq) return 'old';
  return event.seq === position.seq + 1 ? 'next' : 'break';
}

/** The events of `delivered` (in order) that continue `position` exactly, up to the first break. */
export function continuing(position: StreamPosition, delivered: readonly Envelope[]): Envelope[] {
  const out: Envelope[] = [];
  let at = position;
  for (const event of delivered) {
    const stands = relation(at, event);
    if (stands === 'old') continue;
    if (stands === 'break') break;
    out.push(event);
    at = { epoch: at.epoch, seq: event.seq };
  }
  return out;
}
