import { SignJWT } from 'jose';

export const TEST_JWT_SECRET = 'test-secret-0123456789-abcdef';
export const TEST_API_KEY = 'test-api-key-0123456789';

/** Signs an HS256 dashboard token as the gateway expects it (PROTOCOL.md §1). */
export async function signToken({
  sub = 'alice',
  scope = ['admin'],
  expiresInSeconds = 3600,
  secret = TEST_JWT_SECRET,
}: { sub?: string; scope?: unknown; expiresInSeconds?: number; secret?: string } = {}): Promise<string> {
  return new SignJWT({ scope: scope as string[] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
    .sign(new TextEncoder().encode(secret));
}
