import type { AuthContext } from './auth-context';

interface Entry {
  context: Promise<AuthContext>;
  /** The verified context, once there is one. */
  verified?: AuthContext;
  /** The token's expiry; Infinity while its verification runs. */
  expiresAt: number;
}

/**
 * Verified tokens by their exact string, so a burst of handshakes with one token (a pod's
 * sockets coming back after a restart, many tabs of one dashboard, a load test) verifies it
 * once per pod rather than once per socket. Identical strings carry identical signatures, and
 * the keys a pod verifies with are fixed at start, so a hit is the verification's own answer.
 * An entry lives no longer than its token's `exp`; a failed verification is dropped as soon
 * as it fails (the next handshake with that token checks it again); concurrent handshakes
 * with one token share its verification. Bounded: the least recently used entry goes first.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The token's context if it was verified and has not expired, without waiting. */
  known(token: string): AuthContext | undefined {
    return this.hit(token)?.verified;
  }

  verified(token: string, verify: (token: string) => Promise<AuthContext>): Promise<AuthContext> {
    const hit = this.hit(token);
    if (hit) return hit.context;
    const entry: Entry = { context: verify(token), expiresAt: Infinity };
    this.entries.set(token, entry);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    entry.context.then(
      (context) => {
        entry.verified = context;
        entry.expiresAt = context.expiresAt;
      },
      () => {
        if (this.entries.get(token) === entry) this.entries.delete(token);
      },
    );
    return entry.context;
  }

  /** A live entry, made the most recently used; an expired one is dropped. */
  private hit(token: string): Entry | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    this.entries.delete(token);
    if (entry.expiresAt <= this.now()) return undefined;
    // Re-inserted: a Map iterates in insertion order, so the first key is the least recent.
    this.entries.set(token, entry);
    return entry;
  }
}
