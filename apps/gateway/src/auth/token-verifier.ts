import { readFileSync } from 'node:fs';
import { Inject, Injectable } from '@nestjs/common';
import { createLocalJWKSet, importSPKI, jwtVerify, type JWTVerifyGetKey, type KeyLike } from 'jose';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import type { AuthContext } from './auth-context';
import { TokenCache } from './token-cache';

type KeySource = Uint8Array | KeyLike | JWTVerifyGetKey;

/** Distinct tokens a pod remembers as verified (a few hundred bytes each). */
const CACHED_TOKENS = 2_048;

/**
 * Verifies dashboard tokens: HS256 with `JWT_SECRET`, or RS256/ES256 with a PEM public key
 * or a JWKS file. `exp` is required (a connection lives no longer than its token), `sub`
 * is the user and `scope` an array of stream patterns.
 */
@Injectable()
export class TokenVerifier {
  private readonly keys: Promise<Array<{ key: KeySource; algorithms: string[] }>>;
  private readonly cache = new TokenCache(CACHED_TOKENS);

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {
    this.keys = this.loadKeys();
    // Surface a bad key file at start, not at the first connection.
    this.keys.catch(() => undefined);
  }

  /** Resolves once the configured keys are loaded; rejects when a key file is unusable. */
  async ready(): Promise<void> {
    await this.keys;
  }

  /**
   * The token's claims, or a ProtocolError UNAUTHORIZED. The context is frozen: sockets with
   * the same token share it.
   */
  /** The context of a token this pod verified before and that has not expired, at once. */
  known(token: unknown): AuthContext | undefined {
    return typeof token === 'string' ? this.cache.known(token) : undefined;
  }

  async verify(token: unknown): Promise<AuthContext> {
    if (typeof token !== 'string' || token.length === 0) throw unauthorized('missing token');
    return this.cache.verified(token, (t) => this.check(t));
  }

  private async check(token: string): Promise<AuthContext> {
    const keys = await this.keys;
    let lastError: unknown;
    for (const { key, algorithms } of keys) {
      try {
        const { payload } = await jwtVerify(token, key as Uint8Array, {
          algorithms,
          issuer: this.config.jwt.issuer,
          audience: this.config.jwt.audience,
          requiredClaims: ['exp', 'sub'],
        });
        // No scope claim: connected, but every stream is FORBIDDEN.
        const scope = payload.scope ?? [];
        if (!Array.isArray(scope) || !scope.every((s) => typeof s === 'string')) {
          throw unauthorized('token claim "scope" must be an array of strings');
        }
        return Object.freeze({ userId: payload.sub as string, scopes: Object.freeze([...(scope as string[])]), expiresAt: (payload.exp as number) * 1000 });
      } catch (error) {
        lastError = error;
      }
    }
    if (lastError instanceof ProtocolError) throw lastError;
    throw unauthorized(describeJoseError(lastError));
  }

  private async loadKeys(): Promise<Array<{ key: KeySource; algorithms: string[] }>> {
    const { secret, publicKeyFile, jwksFile, algorithms } = this.config.jwt;
    const keys: Array<{ key: KeySource; algorithms: string[] }> = [];
    const asymmetric = algorithms.filter((a) => a !== 'HS256');
    if (secret && algorithms.includes('HS256')) keys.push({ key: new TextEncoder().encode(secret), algorithms: ['HS256'] });
    if (publicKeyFile) {
      const pem = readFileSync(publicKeyFile, 'utf8');
      for (const alg of asymmetric) {
        // One PEM suits one algorithm family; try each configured one.
        const key = await importSPKI(pem, alg).catch(() => null);
        if (key) keys.push({ key, algorithms: [alg] });
      }
      if (keys.length === 0) throw new Error(`JWT_PUBLIC_KEY_FILE ${publicKeyFile} is not a PEM public key for ${asymmetric.join('/')}`);
    }
    if (jwksFile) {
      const jwks = JSON.parse(readFileSync(jwksFile, 'utf8')) as Parameters<typeof createLocalJWKSet>[0];
      keys.push({ key: createLocalJWKSet(jwks), algorithms: asymmetric });
    }
    return keys;
  }
}

function unauthorized(message: string): ProtocolError {
  return new ProtocolError(ErrorCode.UNAUTHORIZED, message);
}

function describeJoseError(error: unknown): string {
  const code = (error as { code?: string } | undefined)?.code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad token signature';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `token claim invalid: ${(error as Error).message}`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'token algorithm not allowed';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed token';
    default:
      return 'invalid token';
  }
}
