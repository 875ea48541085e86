import { signDevToken } from '@app/runtime';

export const TEST_JWT_SECRET = 'test-secret-0123456789-abcdef';
export const TEST_API_KEY = 'test-api-key-0123456789';

/** Signs an HS256 dashboard token as the gateway expects it (PROTOCOL.md §1). */
export async function signToken({
  sub = 'alice',
  scope = ['admin'],
  expiresInSeconds = 3600,
  secret = TEST_JWT_SECRET,
}: { sub?: string; scope?: unknown; expiresInSeconds?: number; secret?: string } = {}): Promise<string> {
  // `scope` may be anything: tests sign malformed claims on purpose.
  return signDevToken({ sub, scope: scope as string[], ttlSeconds: expiresInSeconds, secret });
}
