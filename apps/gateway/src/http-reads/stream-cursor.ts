/**
 * `Stream-Cursor` (Durable Streams §8.1): the number of the 20-second interval since
 * 2024-10-09T00:00Z. Clients echo it as `cursor=` on their next live read, so a CDN keys a
 * waiting request by it; a cursor that never moved would let a cache hand the same empty
 * answer back forever. So a cursor never goes back: one at or past the current interval
 * (a client whose clock or cache is ahead) is moved on by a random 1–3600 s.
 */
const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;
const MAX_JITTER_S = 3600;
const ECHOED_CURSOR = /^\d{1,15}$/;

/** The cursor to answer with, given the one the client echoed (anything malformed counts as none). */
export function streamCursor(echoed: unknown, now = Date.now(), random = Math.random): string {
  const current = Math.floor((now - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
  const previous = typeof echoed === 'string' && ECHOED_CURSOR.test(echoed) ? Number(echoed) : -1;
  if (previous < current) return String(current);
  const jitterSeconds = 1 + Math.floor(random() * MAX_JITTER_S);
  return String(previous + Math.ceil((jitterSeconds * 1000) / CURSOR_INTERVAL_MS));
}
