import { backoffCeiling, backoffDelay } from './backoff';

describe('backoff', () => {
  it('doubles from the base up to the 30 s cap', () => {
    expect([0, 1, 2, 3].map((a) => backoffCeiling(a))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffCeiling(6)).toBe(30_000);
    expect(backoffCeiling(1000)).toBe(30_000);
  });

  it('draws uniformly between zero and the ceiling (full jitter)', () => {
    expect(backoffDelay(3, undefined, () => 0)).toBe(0);
    expect(backoffDelay(3, undefined, () => 0.5)).toBe(2000);
    expect(backoffDelay(10, undefined, () => 0.999)).toBeLessThan(30_000);
  });
});
