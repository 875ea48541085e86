import type { AuthContext } from './auth-context';
import { TokenCache } from './token-cache';

describe('TokenCache', () => {
  let now = 1_000_000;
  const clock = () => now;
  const context = (userId: string, expiresAt = now + 60_000): AuthContext => ({ userId, scopes: ['admin'], expiresAt });

  it('verifies a token once while it is valid, and shares one verification between concurrent checks', async () => {
    const cache = new TokenCache(10, clock);
    const verify = jest.fn(async (token: string) => context(token));
    const [a, b] = await Promise.all([cache.verified('t1', verify), cache.verified('t1', verify)]);
    expect(await cache.verified('t1', verify)).toBe(a);
    expect(b).toBe(a);
    expect(verify).toHaveBeenCalledTimes(1);
  });

  it('knows a verified token at once, and only while it is valid', async () => {
    const cache = new TokenCache(10, clock);
    const verify = async (token: string) => context(token, 1_005_000);
    const pending = cache.verified('t', verify);
    expect(cache.known('t')).toBeUndefined();
    const verified = await pending;
    expect(cache.known('t')).toBe(verified);
    now = 1_005_000;
    expect(cache.known('t')).toBeUndefined();
    now = 1_000_000;
  });

  it('keeps an entry no longer than its token: at exp it verifies again', async () => {
    const cache = new TokenCache(10, clock);
    const verify = jest.fn(async (token: string) => context(token, 1_005_000));
    await cache.verified('t', verify);
    now = 1_004_999;
    await cache.verified('t', verify);
    expect(verify).toHaveBeenCalledTimes(1);
    now = 1_005_000;
    await cache.verified('t', verify);
    expect(verify).toHaveBeenCalledTimes(2);
    now = 1_000_000;
  });

  it('does not keep a failure: the next check runs again', async () => {
    const cache = new TokenCache(10, clock);
    const verify = jest.fn(async (): Promise<AuthContext> => {
      throw new Error('bad signature');
    });
    await expect(cache.verified('bad', verify)).rejects.toThrow('bad signature');
    await expect(cache.verified('bad', verify)).rejects.toThrow('bad signature');
    expect(verify).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(0);
  });

  it('holds at most its capacity, dropping the least recently used token', async () => {
    const cache = new TokenCache(2, clock);
    const verify = jest.fn(async (token: string) => context(token));
    await cache.verified('a', verify);
    await cache.verified('b', verify);
    await cache.verified('a', verify);
    await cache.verified('c', verify);
    expect(cache.size).toBe(2);
    expect(verify).toHaveBeenCalledTimes(3);
    await cache.verified('a', verify);
    expect(verify).toHaveBeenCalledTimes(3);
    await cache.verified('b', verify);
    expect(verify).toHaveBeenCalledTimes(4);
  });
});
