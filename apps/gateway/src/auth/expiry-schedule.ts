/** Node's timers cap out near 24.8 days; a longer wait is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One timer for the token expiries of all of a pod's connections, instead of a timer per
 * socket (a Timeout, its closure and context: ~300 bytes each socket holds for its whole
 * life). Items wait in buckets by the second their expiry falls in (JWT `exp` is in whole
 * seconds, so sockets of one token share a bucket), and a single timeout is armed for the
 * earliest bucket. An item is handed to `onExpired` once its expiry has passed, never before.
 */
export class ExpirySchedule<T> {
  private readonly buckets = new Map<number, Set<T>>();
  private timer: NodeJS.Timeout | null = null;
  /** The bucket the timer is armed for. */
  private armedFor = Infinity;

  constructor(
    private readonly onExpired: (item: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Schedules `item` for `expiresAt` (ms since the epoch). */
  add(item: T, expiresAt: number): void {
    const second = bucketOf(expiresAt);
    const bucket = this.buckets.get(second);
    if (bucket) bucket.add(item);
    else this.buckets.set(second, new Set([item]));
    if (second < this.armedFor) this.arm(second);
  }

  /** Takes `item` out; `expiresAt` is the one it was added with. */
  delete(item: T, expiresAt: number): void {
    const second = bucketOf(expiresAt);
    const bucket = this.buckets.get(second);
    if (!bucket?.delete(item)) return;
    // The timer stays armed: when it fires for an empty bucket it moves on to the next one.
    if (bucket.size === 0) this.buckets.delete(second);
  }

  private arm(second: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = second;
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(second * 1000 - this.now(), 0), MAX_TIMER_MS));
    // Expiries never keep the process alive on their own.
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    this.armedFor = Infinity;
    const now = this.now();
    const due: T[] = [];
    let next = Infinity;
    for (const [second, bucket] of this.buckets) {
      if (second * 1000 <= now) {
        for (const item of bucket) due.push(item);
        this.buckets.delete(second);
      } else if (second < next) {
        next = second;
      }
    }
    if (next !== Infinity) this.arm(next);
    for (const item of due) this.onExpired(item);
  }
}

/** The whole second an expiry falls in, rounded up: the bucket is due once all of it is. */
function bucketOf(expiresAt: number): number {
  return Math.ceil(expiresAt / 1000);
}
