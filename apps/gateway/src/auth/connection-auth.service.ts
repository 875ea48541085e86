import { Injectable } from '@nestjs/common';
import { ErrorCode, type HandshakeError, ProtocolError } from '@app/protocol';
import { type AuthContext, canAccess } from './auth-context';
import { ExpirySchedule } from './expiry-schedule';
import { TokenVerifier } from './token-verifier';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { SubscriptionService } from '../streams/subscription.service';
import type { Connection } from '../realtime/connection';
import type { GatewaySocket } from '../realtime/socket.types';

/**
 * A connection's authentication for its whole life (PROTOCOL.md §1): the handshake check
 * (refused before connect, as `connect_error` with `data.code`), the expiry, and
 * `refresh_token`.
 */
@Injectable()
export class ConnectionAuth {
  /** Every connection's expiry on one timer (see ExpirySchedule). */
  private readonly expiries = new ExpirySchedule<Connection>((socket) => this.expire(socket));

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly lifecycle: Lifecycle,
    private readonly subscriptions: SubscriptionService,
  ) {}

  /**
   * A Socket.IO middleware: only sockets with a valid token get connected. A token already
   * verified (most reconnects) is taken without a promise; anything else is `authenticate`'s.
   */
  middleware(): (socket: GatewaySocket, next: (error?: Error) => void) => void {
    return (socket, next) => {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      const known = this.lifecycle.draining ? undefined : this.verifier.known(token);
      if (known) {
        socket.data.auth = known;
        return next();
      }
      this.authenticate(token).then(
        (context) => {
          socket.data.auth = context;
          next();
        },
        (error: ProtocolError) => next(handshakeError(error.code === ErrorCode.UNAVAILABLE ? 'UNAVAILABLE' : 'UNAUTHORIZED', error.message)),
      );
    };
  }

  /**
   * Every transport's authentication (Socket.IO's handshake, plain WebSocket, compatibility
   * endpoints, HTTP reads): the token's context, or a ProtocolError — UNAUTHORIZED, or
   * UNAVAILABLE while this pod drains.
   */
  async authenticate(token: unknown): Promise<AuthContext> {
    if (this.lifecycle.draining) throw new ProtocolError(ErrorCode.UNAVAILABLE, 'this server is draining; connect to another');
    const known = this.verifier.known(token);
    if (known) return known;
    try {
      return await this.verifier.verify(token);
    } catch (error) {
      throw new ProtocolError(ErrorCode.UNAUTHORIZED, error instanceof ProtocolError ? error.message : 'invalid token');
    }
  }

  /** Sends `auth_expired` and disconnects when the token runs out. */
  armExpiry(socket: Connection): void {
    this.expiries.add(socket, socket.data.auth.expiresAt);
  }

  disarm(socket: Connection): void {
    this.expiries.delete(socket, socket.data.auth.expiresAt);
  }

  /** Extends the connection with a new token of the same user; narrower scopes drop streams. */
  async refresh(socket: Connection, token: string): Promise<{ expiresAt: number }> {
    const next = await this.verifier.verify(token);
    if (next.userId !== socket.data.auth.userId) throw new ProtocolError(ErrorCode.UNAUTHORIZED, 'the new token is for another user');
    // A socket that disconnected while the token was checked has nothing left to extend.
    if (socket.disconnected) return { expiresAt: next.expiresAt };
    this.disarm(socket);
    socket.data.auth = next;
    for (const { stream } of [...(socket.data.subscriptions ?? [])]) {
      if (!canAccess(next, stream)) this.subscriptions.unsubscribe(socket, stream);
    }
    this.armExpiry(socket);
    return { expiresAt: next.expiresAt };
  }

  private expire(socket: Connection): void {
    if (socket.disconnected) return;
    if (socket.data.auth.expiresAt > Date.now()) return this.armExpiry(socket);
    socket.emit('auth_expired', { message: 'token expired' });
    socket.disconnect(true, 'expired');
  }
}

function handshakeError(code: HandshakeError['code'], message: string): Error {
  const error = new Error(message) as Error & { data: HandshakeError };
  error.data = { code, message };
  return error;
}
