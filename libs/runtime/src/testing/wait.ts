import { withTimeout } from '../with-timeout';

/**
 * Awaiting conditions in tests: poll a predicate until it holds, with a deadline, so a test
 * waits exactly as long as the system needs and fails with a message when it never does.
 * A probe that never settles (a command to a Redis that does not answer) fails at the
 * deadline too, with the message, instead of hanging until the test's own timeout.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 10, message = 'condition' }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const pending = probe();
      // Any thenable: a promise of another realm (Node's own fetch under jest) is not `instanceof Promise`.
      const value = isThenable(pending) ? await withTimeout(Promise.resolve(pending), Math.max(0, deadline - Date.now()) + 1, 'the probe') : pending;
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${message}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
