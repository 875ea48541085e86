import { jwtVerify } from 'jose';
import { parseTtl, signDevToken } from './dev-token';

describe('dev tokens', () => {
  it('signs HS256 with sub, scope, expiry, and issuer/audience when given', async () => {
    const secret = 'a-development-secret-of-some-length';
    const token = await signDevToken({ sub: 'alice', scope: ['bot:demo'], ttlSeconds: 3600, secret, issuer: 'me', audience: 'gw' });
    const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(secret), { issuer: 'me', audience: 'gw' });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload).toMatchObject({ sub: 'alice', scope: ['bot:demo'], iss: 'me', aud: 'gw' });
    expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
  });

  it('reads a TTL in seconds, minutes, hours or days, and refuses anything else', () => {
    expect([parseTtl('90'), parseTtl('90s'), parseTtl('30m'), parseTtl('1h'), parseTtl('7d')]).toEqual([90, 90, 1800, 3600, 604_800]);
    expect([parseTtl('0'), parseTtl('1w'), parseTtl('-1h'), parseTtl('h'), parseTtl('')]).toEqual([null, null, null, null, null]);
  });
});
