/**
 * Per-connection command limits (PROTOCOL.md §3): a token bucket of `commandsPerSecond`
 * (its burst is one second's worth), and a flood counter — a connection that sends more
 * than ten times the limit within one second is closed.
 */
export class RateLimiter {
  private tokens: number;
  private refilledAt: number;
  private windowStart: number;
  private windowCount = 0;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = perSecond;
    this.refilledAt = this.now();
    this.windowStart = this.refilledAt;
  }

  /** Counts one command; `allowed` false means answer RATE_LIMITED after `retryAfterMs`. */
  take(): { allowed: boolean; retryAfterMs: number; flood: boolean } {
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    this.windowCount++;
    const flood = this.windowCount > this.perSecond * 10;

    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { allowed: true, retryAfterMs: 0, flood };
    }
    const retryAfterMs = Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
    return { allowed: false, retryAfterMs, flood };
  }
}
