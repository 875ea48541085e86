import type { CatchUp } from '@app/backplane';
import type { StreamName } from '@app/protocol';

/** What SnapshotReads needs of the pod's feed for a stream (a StreamFeed). */
export interface FeedPosition {
  readonly stream: StreamName;
  /** The last event the feed delivered. */
  readonly position: { epoch: string | null; seq: number };
}

type Snapshot = Extract<CatchUp, { mode: 'snapshot' }>;

interface StreamReads {
  /** The read sent to Redis and not answered yet. */
  current: Promise<CatchUp>;
  /** The read that starts once `current` is answered, for everyone who asked meanwhile. */
  next: { promise: Promise<CatchUp>; start: () => void } | null;
}

/**
 * Snapshot catch-ups (PROTOCOL.md §5) for the subscribes of a pod, with as few reads as
 * exactness allows. A subscribe asks only once the stream's feed collects events for it
 * (SubscriptionService, step 2); from then on, every event after the feed's position reaches
 * it. So:
 *   - a snapshot already read at exactly the feed's current position (epoch and seq) is the
 *     answer, without a read: nothing after it has been delivered yet, so all of it will be;
 *   - otherwise the subscribe shares a read: one asked while a read of its stream is in
 *     flight waits for the next read (which starts after it asked), and that read answers
 *     everyone who asked meanwhile.
 * A pod's sockets coming back after a restart then cost one read per quiet stream, and a
 * few per busy one, instead of one each. Those who get a snapshot must not change it.
 */
export class SnapshotReads {
  private readonly reads = new Map<StreamName, StreamReads>();
  /** The last snapshot read for each feed (it goes with the feed). */
  private readonly latest = new WeakMap<FeedPosition, Snapshot>();

  constructor(private readonly read: (stream: StreamName) => Promise<CatchUp>) {}

  /** Call in the same tick as the subscription starts collecting from `feed`. */
  snapshot(feed: FeedPosition): Promise<CatchUp> {
    const known = this.latest.get(feed);
    const { epoch, seq } = feed.position;
    if (known && known.epoch === epoch && known.seq === seq) return Promise.resolve(known);
    const reads = this.reads.get(feed.stream);
    if (!reads) return this.start(feed);
    if (!reads.next) {
      let start!: () => void;
      const promise = new Promise<CatchUp>((resolve) => (start = () => resolve(this.start(feed))));
      reads.next = { promise, start };
    }
    return reads.next.promise;
  }

  private start(feed: FeedPosition): Promise<CatchUp> {
    const { stream } = feed;
    const current = this.read(stream);
    const reads: StreamReads = { current, next: null };
    this.reads.set(stream, reads);
    const settled = () => {
      if (this.reads.get(stream) !== reads) return;
      this.reads.delete(stream);
      reads.next?.start();
    };
    current.then((catchUp) => {
      if (catchUp.mode === 'snapshot') this.latest.set(feed, catchUp);
      settled();
    }, settled);
    return current;
  }
}
