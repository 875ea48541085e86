import type { StreamName } from '@app/protocol';
import { scopeAllows } from '@app/protocol';

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
