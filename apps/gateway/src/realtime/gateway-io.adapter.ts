import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { MessageMappingProperties } from '@nestjs/websockets';
import type { Observable } from 'rxjs';
import type { ServerOptions, Socket } from 'socket.io';
import type { GatewayConfig } from '../config/gateway-config';
import { SOCKET_IO_PATH } from './socket.types';
import { tolerantParser } from './tolerant-parser';

/**
 * Socket.IO server options from the gateway's configuration. The backplane is the pod's
 * own (see docs/architecture.md), so the server keeps Socket.IO's in-memory adapter: rooms
 * are local, and each stream's events reach the pod once, through its feed.
 */
export class GatewayIoAdapter extends IoAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly config: GatewayConfig,
  ) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): unknown {
    const { limits, corsOrigins, transports, heartbeatMs } = this.config;
    return super.createIOServer(port, {
      ...options,
      path: SOCKET_IO_PATH,
      transports,
      pingInterval: heartbeatMs,
      pingTimeout: 20_000,
      // Frames up to twice the payload limit are read and answered PAYLOAD_TOO_LARGE;
      // larger ones close the connection (PROTOCOL.md §3).
      maxHttpBufferSize: limits.maxPayloadBytes * 2 + 16 * 1024,
      perMessageDeflate: false,
      // CORS applies to the long-polling requests only (browsers do not apply it to a
      // WebSocket), so a websocket-only server skips the middleware on every upgrade. Tokens
      // travel in the handshake, not in cookies: no credentials mode needed.
      ...(transports.includes('polling') ? { cors: { origin: corsOrigins.includes('*') ? '*' : corsOrigins } } : {}),
      parser: tolerantParser,
      connectTimeout: 10_000,
      // Other paths' upgrades (`/ws`, the compatibility endpoints) are the PlainWsServer's.
      destroyUpgrade: false,
    } as ServerOptions);
  }

  /**
   * Nest would give every socket a `disconnect` listener of its own feeding an RxJS subject
   * that only `handleDisconnect` reads; the RealtimeGateway listens itself, with one
   * function shared by every socket. So no gateway on this adapter gets `handleDisconnect`
   * called: listen to the socket's `disconnect` instead, as RealtimeGateway does.
   */
  override bindClientDisconnect(): void {}

  /**
   * Nest's IoAdapter builds an RxJS pipeline per socket and per handler (`fromEvent`,
   * `mergeMap`, `takeUntil` a shared `disconnect$`): about 3 KB of subscribers and closures
   * that every idle socket holds for its whole life. Here each handler is one plain
   * listener; what runs per message is the same (the handler's result through `transform`,
   * then an `event` reply or the ack). A socket's listeners go away with the socket, so
   * nothing has to end them at disconnect.
   */
  override bindMessageHandlers(socket: Socket, handlers: MessageMappingProperties[], transform: (data: unknown) => Observable<unknown>): void {
    for (const { message, callback, isAckHandledManually } of handlers) {
      socket.on(message as string, (...args: unknown[]) => {
        // What rxjs' fromEvent hands on: the only argument, or all of them as an array.
        const { data, ack } = this.mapPayload(args.length === 1 ? args[0] : args);
        transform(callback(data, ack)).subscribe((response) => {
          if (response === null || response === undefined) return;
          const reply = response as { event?: string; data?: unknown };
          if (reply.event) socket.emit(reply.event, reply.data);
          else if (!isAckHandledManually && typeof ack === 'function') (ack as (value: unknown) => void)(response);
        });
      });
    }
  }
}
