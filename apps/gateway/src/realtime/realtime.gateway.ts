import { Inject, type OnModuleDestroy } from '@nestjs/common';
import { type OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import { ErrorCode } from '@app/protocol';
import type { AckCallback } from '../commands/command-dispatcher';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { ConnectionAuth } from '../auth/connection-auth.service';
import { ConnectionCore } from './connection-core';
import type { GatewayServer, GatewaySocket } from './socket.types';
import { holdFirstFlush, joinUpgradeWrites, releaseFirstFlush } from './first-flush';
import { forgetHandshake } from './handshake-memory';
import { MALFORMED_FRAME_EVENT, TolerantDecoder } from './tolerant-parser';

/**
 * The Socket.IO edge (PROTOCOL.md §1): a thin transport over the ConnectionCore, which does
 * the work for every transport.
 *
 * Every socket gets the same listener functions (Socket.IO calls them with the socket as
 * `this`) rather than closures of its own: an idle socket holds nothing per listener. For
 * the same reason `command` is not a Nest `@SubscribeMessage`, which binds a handler per
 * socket and runs each frame through an RxJS pipeline; the dispatcher already validates,
 * catches and answers everything itself. Connects and disconnects, too, are the server's
 * own events here rather than Nest's `handleConnection`/`handleDisconnect`, which pass every
 * socket through RxJS subjects and give each a disconnect closure of its own.
 */
@WebSocketGateway()
export class RealtimeGateway implements OnGatewayInit<GatewayServer>, OnModuleDestroy {
  private readonly onCommand: (this: GatewaySocket, ...args: unknown[]) => void;
  private readonly onDisconnect: (this: GatewaySocket) => void;
  private slowReaderSweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly core: ConnectionCore,
    private readonly connectionAuth: ConnectionAuth,
    private readonly lifecycle: Lifecycle,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {
    this.onCommand = function (this: GatewaySocket, ...args: unknown[]): void {
      // As Nest hands a message on: the ack is the last argument, the frame the only other one.
      const ack = typeof args.at(-1) === 'function' ? (args.pop() as AckCallback) : undefined;
      core.command(this, args.length > 1 ? args : args[0], ack);
    };
    this.onDisconnect = function (this: GatewaySocket): void {
      core.closed(this);
    };
  }

  afterInit(server: GatewayServer): void {
    server.use(this.connectionAuth.middleware());
    // Last: the connection's CONNECT frame waits for `hello` (see first-flush.ts).
    server.use(holdFirstFlush);
    server.on('connection', (socket: GatewaySocket) => this.onConnection(socket));
    joinUpgradeWrites(server);
    this.lifecycle.attach<GatewaySocket>({
      count: () => server.of('/').sockets.size,
      list: () => [...server.of('/').sockets.values()],
      drain: (socket, notice) => {
        socket.emit('draining', notice);
        // Closing the transport (not `disconnect()`) makes plain Socket.IO clients
        // reconnect by themselves; the packet above is flushed before the close.
        socket.conn.close();
      },
    });
    TolerantDecoder.onMalformed = () => this.metrics.malformedFrames.inc();
    this.core.start(server);
    this.slowReaderSweep = setInterval(() => this.cutSlowReaders(server), SLOW_READER_SWEEP_MS);
    this.slowReaderSweep.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.slowReaderSweep);
  }

  /**
   * A socket whose client stopped reading holds what the pod sends it: first in the kernel,
   * then in `ws`'s buffer, then in engine.io's packet queue, without bound. Once a second,
   * any socket with more than WS_MAX_BUFFERED_BYTES unsent is cut off (it reconnects and
   * resumes from its seqs when it reads again). A broadcast writes to every socket without a
   * per-socket hook, hence the sweep; idle sockets cost two property reads each.
   */
  private cutSlowReaders(server: GatewayServer): void {
    const limit = this.config.wsMaxBufferedBytes;
    for (const socket of server.of('/').sockets.values()) {
      const conn = socket.conn as unknown as {
        writeBuffer: Array<{ data?: unknown }>;
        transport: { socket?: { bufferedAmount?: number; terminate?: () => void } };
      };
      let pending = conn.transport.socket?.bufferedAmount ?? 0;
      for (const packet of conn.writeBuffer) pending += typeof packet.data === 'string' || Buffer.isBuffer(packet.data) ? packet.data.length : 0;
      if (pending <= limit) continue;
      this.metrics.slowReaders.inc({ transport: 'socket.io' });
      // Cut, not closed: a close frame would wait behind everything unsent, and engine.io's
      // own close waits for a drain that a stuck reader never gives.
      if (conn.transport.socket?.terminate) conn.transport.socket.terminate();
      else socket.disconnect(true);
    }
  }

  private onConnection(socket: GatewaySocket): void {
    try {
      socket.on('command', this.onCommand);
      socket.on('disconnect', this.onDisconnect);
      socket.onAny(answerOtherEvent);
      const resume = socket.handshake.query.resume_session;
      forgetHandshake(socket);
      this.core.opened(socket, resume);
    } finally {
      releaseFirstFlush(socket);
    }
  }
}

const SLOW_READER_SWEEP_MS = 1_000;

/**
 * Anything but `command`: a malformed frame, or an event this protocol does not have.
 * Socket.IO calls a socket's catch-all listeners with the socket as `this`, so this one
 * function serves every socket (a closure per socket would be held for its whole life).
 */
function answerOtherEvent(this: GatewaySocket, event: string, ...args: unknown[]): void {
  if (event === 'command') return;
  const ack = args.at(-1);
  const error =
    event === MALFORMED_FRAME_EVENT
      ? {
          code: ErrorCode.VALIDATION_FAILED,
          message: `malformed frame dropped: ${String(args[0])}`,
          details: [{ field: 'frame', constraint: 'decodable', message: String(args[0]) }],
        }
      : { code: ErrorCode.UNKNOWN_COMMAND, message: `unknown event ${JSON.stringify(event).slice(0, 80)}; send commands as "command"` };
  if (typeof ack === 'function') (ack as AckCallback)({ ok: false, error });
  else this.emit('command_error', { error });
}
