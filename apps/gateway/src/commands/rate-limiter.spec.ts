import { RateLimiter } from './rate-limiter';

describe('RateLimiter', () => {
  it('allows a burst of one second, then refills at the rate', () => {
    let now = 0;
    const limiter = new RateLimiter(5, () => now);
    for (let i = 0; i < 5; i++) expect(limiter.take().allowed).toBe(true);
    const refused = limiter.take();
    expect(refused).toEqual({ allowed: false, retryAfterMs: 200, flood: false });
    now += 200;
    expect(limiter.take().allowed).toBe(true);
    expect(limiter.take().allowed).toBe(false);
  });

  it('reports a flood past ten times the rate within one second', () => {
    let now = 0;
    const limiter = new RateLimiter(2, () => now);
    const results = Array.from({ length: 21 }, () => limiter.take());
    expect(results.slice(0, 20).some((r) => r.flood)).toBe(false);
    expect(results[20].flood).toBe(true);
    now += 1000;
    expect(limiter.take().flood).toBe(false);
  });
});
