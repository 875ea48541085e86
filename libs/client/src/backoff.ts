/**
 * Reconnect delays: exponential backoff with full jitter (a uniform draw between zero and
 * the exponential ceiling), capped. Full jitter spreads a crowd of dashboards that lost the
 * same pod over the whole window instead of sending them back in waves.
 */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

export function backoffCeiling(attempt: number, { baseMs, maxMs }: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
}

export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, options));
}
