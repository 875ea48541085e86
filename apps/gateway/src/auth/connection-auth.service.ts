import { Inject, Injectable } from '@nestjs/common';
import { ErrorCode, type HandshakeError, ProtocolError, type StreamName } from '@app/protocol';
import { canAccess } from './auth-context';
import { TokenVerifier } from './token-verifier';
import { RateLimiter } from '../commands/rate-limiter';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { SubscriptionService } from '../streams/subscription.service';
import type { GatewaySocket } from '../realtime/socket.types';

/** Node's timers cap out near 24.8 days; a longer wait is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A connection's authentication for its whole life (PROTOCOL.md §1): the handshake check
 * (refused before connect, as `connect_error` with `data.code`), the expiry timer, and
 * `refresh_token`.
 */
@Injectable()
export class ConnectionAuth {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly lifecycle: Lifecycle,
    private readonly subscriptions: SubscriptionService,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  /** A Socket.IO middleware: only sockets with a valid token get connected. */
  middleware(): (socket: GatewaySocket, next: (error?: Error) => void) => void {
    return (socket, next) => {
      if (this.lifecycle.draining) return next(handshakeError('UNAVAILABLE', 'this server is draining; connect to another'));
      const auth = socket.handshake.auth as { token?: unknown } | undefined;
      this.verifier.verify(auth?.token).then(
        (context) => {
          socket.data.auth = context;
          socket.data.subscriptions = new Map();
          socket.data.limiter = new RateLimiter(this.config.limits.commandsPerSecond);
          next();
        },
        (error: unknown) => next(handshakeError('UNAUTHORIZED', error instanceof ProtocolError ? error.message : 'invalid token')),
      );
    };
  }

  /** Sends `auth_expired` and disconnects when the token runs out. */
  armExpiry(socket: GatewaySocket): void {
    clearTimeout(socket.data.expiryTimer);
    const left = socket.data.auth.expiresAt - Date.now();
    socket.data.expiryTimer = setTimeout(
      () => {
        if (socket.data.auth.expiresAt > Date.now()) return this.armExpiry(socket);
        socket.emit('auth_expired', { message: 'token expired' });
        socket.disconnect(true);
      },
      Math.min(Math.max(left, 0), MAX_TIMER_MS),
    );
  }

  disarm(socket: GatewaySocket): void {
    clearTimeout(socket.data.expiryTimer);
  }

  /** Extends the connection with a new token of the same user; narrower scopes drop streams. */
  async refresh(socket: GatewaySocket, token: string): Promise<{ expiresAt: number }> {
    const next = await this.verifier.verify(token);
    if (next.userId !== socket.data.auth.userId) throw new ProtocolError(ErrorCode.UNAUTHORIZED, 'the new token is for another user');
    socket.data.auth = next;
    for (const stream of [...socket.data.subscriptions.keys()]) {
      if (!canAccess(next, stream)) this.subscriptions.unsubscribe(socket, stream);
    }
    this.armExpiry(socket);
    return { expiresAt: next.expiresAt };
  }

  requireAccess(socket: GatewaySocket, stream: StreamName): void {
    if (!canAccess(socket.data.auth, stream)) throw new ProtocolError(ErrorCode.FORBIDDEN, `token scope does not cover ${stream}`);
  }
}

function handshakeError(code: HandshakeError['code'], message: string): Error {
  const error = new Error(message) as Error & { data: HandshakeError };
  error.data = { code, message };
  return error;
}
