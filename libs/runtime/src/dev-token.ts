import { SignJWT } from 'jose';

/**
 * Dashboard tokens for development and tests: HS256, `sub` and `scope` as the gateway expects
 * them (PROTOCOL.md §1). Production tokens come from the team's own identity provider; this
 * is what `npm start` prints, what `npm run token` mints and what the tests sign.
 */
export interface DevTokenClaims {
  sub: string;
  scope: string[];
  /** Seconds from now. */
  ttlSeconds: number;
  secret: string;
  /** Set when the gateway checks them (`JWT_ISSUER`, `JWT_AUDIENCE`). */
  issuer?: string;
  audience?: string;
}

export function signDevToken({ sub, scope, ttlSeconds, secret, issuer, audience }: DevTokenClaims): Promise<string> {
  let jwt = new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
  if (issuer) jwt = jwt.setIssuer(issuer);
  if (audience) jwt = jwt.setAudience(audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `30m`, `12h`, `7d` → seconds; null when it is none of those or not positive. */
export function parseTtl(text: string): number | null {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) return null;
  const seconds = Number(match[1]) * TTL_UNITS[match[2] || 's'];
  return seconds > 0 ? seconds : null;
}
