/**
 * How much history a stream keeps and when its state is checkpointed. Every process that
 * publishes (gateways, workers) applies its own copy, so keep them equal across a deployment.
 */
export interface RetentionPolicy {
  /** Events kept per stream (count retention). */
  maxEvents: number;
  /** Events older than this are trimmed (0: no age retention). */
  maxAgeMs: number;
  /** A stream untouched this long expires with its history (0: never); it then restarts with a new epoch. */
  idleTtlSeconds: number;
  /** Fold a new checkpoint once this many events followed the last one. */
  checkpointEvery: number;
  /** A resubscribe further behind than this gets a snapshot instead of a replay. */
  maxReplay: number;
  /**
   * History is trimmed (count, and age when set) when a stream's seq passes a multiple of
   * this (default 16), so up to this many events more than the limits stay in between; tests
   * set 1.
   */
  trimEvery?: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = {
  maxEvents: 10_000,
  maxAgeMs: 24 * 60 * 60 * 1000,
  idleTtlSeconds: 7 * 24 * 60 * 60,
  checkpointEvery: 200,
  maxReplay: 2_000,
};
