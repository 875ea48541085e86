import type { Envelope } from '@app/protocol';

/**
 * A socket that is catching up on a stream and not yet in its room. While its snapshot or
 * replay is read, the feed copies every event it delivers into `buffer`; once the catch-up
 * position is known (`cover`) and the feed has reached it, `goLive` receives the buffered
 * events after that position — and the socket joins the room in the same tick, so no event
 * is lost between the read and the join and none at or before the position is sent twice.
 */
export class PendingSubscription {
  readonly buffer: Envelope[] = [];
  covered: { epoch: string; seq: number } | null = null;
  /** The feed was asked once to catch up to this subscription's history. */
  resyncRequested = false;

  constructor(private readonly goLive: (tail: Envelope[]) => void) {}

  /** Events the catch-up did not include (a different epoch means a reset: keep them all). */
  finish(): void {
    const covered = this.covered;
    const tail = covered ? this.buffer.filter((e) => e.epoch !== covered.epoch || e.seq > covered.seq) : this.buffer;
    this.buffer.length = 0;
    this.goLive(tail);
  }
}
