import { ErrorCode, ProtocolError, scopeAllows, type StreamName } from '@app/protocol';

/** Who a socket acts for, from its verified token (PROTOCOL.md §1). */
export interface AuthContext {
  readonly userId: string;
  readonly scopes: readonly string[];
  /** Token expiry, ms since the Unix epoch. */
  readonly expiresAt: number;
}

export function canAccess(auth: AuthContext, stream: StreamName): boolean {
  return scopeAllows(auth.scopes, stream);
}

/** The one scope check of every transport and command: FORBIDDEN when the token does not cover the stream. */
export function requireAccess(auth: AuthContext, stream: StreamName): void {
  if (!canAccess(auth, stream)) throw new ProtocolError(ErrorCode.FORBIDDEN, `token scope does not cover ${stream}`);
}
