/**
 * `work`'s outcome, or a rejection naming `what` once `ms` have passed with it still pending.
 * The timer is cleared either way; a late outcome of `work` is ignored.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, what = 'the answer'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not come within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
