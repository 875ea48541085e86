import { Inject, Logger } from '@nestjs/common';
import { type OnGatewayConnection, type OnGatewayDisconnect, type OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import { type Envelope, ErrorCode, isValidId, PROTOCOL_VERSION, ProtocolError } from '@app/protocol';
import { type AckCallback, CommandDispatcher } from '../commands/command-dispatcher';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { SessionsService } from '../domain/sessions.service';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { BackplaneSubscriber } from '../streams/backplane-subscriber';
import { SubscriptionService } from '../streams/subscription.service';
import { ConnectionAuth } from '../auth/connection-auth.service';
import type { GatewayServer, GatewaySocket } from './socket.types';
import { forgetHandshake } from './handshake-memory';
import { MALFORMED_FRAME_EVENT, TolerantDecoder } from './tolerant-parser';

/**
 * The Socket.IO edge: connection lifecycle and the `command` event. Handlers stay thin —
 * they hand each frame to the CommandDispatcher, which answers it.
 *
 * Every socket gets the same listener functions (Socket.IO calls them with the socket as
 * `this`) rather than closures of its own: an idle socket holds nothing per listener. For
 * the same reason `command` is not a Nest `@SubscribeMessage`, which binds a handler per
 * socket and runs each frame through an RxJS pipeline; the dispatcher already validates,
 * catches and answers everything itself.
 */
@WebSocketGateway()
export class RealtimeGateway implements OnGatewayInit<GatewayServer>, OnGatewayConnection<GatewaySocket>, OnGatewayDisconnect<GatewaySocket> {
  private readonly logger = new Logger('Gateway');
  private readonly onCommand: (this: GatewaySocket, ...args: unknown[]) => void;

  constructor(
    private readonly dispatcher: CommandDispatcher,
    private readonly connectionAuth: ConnectionAuth,
    private readonly subscriptions: SubscriptionService,
    private readonly backplane: BackplaneSubscriber,
    private readonly sessions: SessionsService,
    private readonly lifecycle: Lifecycle,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {
    const logger = this.logger;
    this.onCommand = function (this: GatewaySocket, ...args: unknown[]): void {
      // As Nest hands a message on: the ack is the last argument, the frame the only other one.
      const ack = typeof args.at(-1) === 'function' ? (args.pop() as AckCallback) : undefined;
      try {
        dispatcher.dispatch(this, args.length > 1 ? args : args[0], ack);
      } catch (error) {
        // The dispatcher answers every frame itself; this only keeps a bug from ending the process.
        logger.error({ msg: 'command dispatch threw', err: error instanceof Error ? error.stack : String(error) });
        ack?.({ ok: false, error: { code: ErrorCode.INTERNAL, message: 'internal error' } });
      }
    };
  }

  afterInit(server: GatewayServer): void {
    server.use(this.connectionAuth.middleware());
    this.lifecycle.attach(server);
    TolerantDecoder.onMalformed = () => this.metrics.malformedFrames.inc();
    this.backplane.attach({
      deliver: (envelope: Envelope) => {
        const room = server.of('/').adapter.rooms.get(envelope.stream);
        if (!room || room.size === 0) return;
        server.to(envelope.stream).emit('event', envelope);
        this.metrics.eventsDelivered.inc({ path: 'live' }, room.size);
        this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - envelope.ts) / 1000);
      },
      presence: (change) => server.to(change.stream).emit('presence', change),
    });
  }

  handleConnection(socket: GatewaySocket): void {
    this.metrics.sockets.inc();
    this.connectionAuth.armExpiry(socket);
    socket.on('command', this.onCommand);
    socket.onAny(answerOtherEvent);
    socket.emit('hello', {
      protocol: PROTOCOL_VERSION,
      connectionId: socket.id,
      serverId: this.config.serverId,
      heartbeatMs: this.config.heartbeatMs,
      limits: { maxPayloadBytes: this.config.limits.maxPayloadBytes, commandsPerSecond: this.config.limits.commandsPerSecond },
    });
    const resume = socket.handshake.query.resume_session;
    forgetHandshake(socket);
    if (resume !== undefined) void this.sendSessionHistory(socket, resume);
  }

  handleDisconnect(socket: GatewaySocket): void {
    this.metrics.sockets.dec();
    this.connectionAuth.disarm(socket);
    if (socket.data.subscriptions) this.subscriptions.unsubscribeAll(socket);
  }

  private async sendSessionHistory(socket: GatewaySocket, sessionId: unknown): Promise<void> {
    try {
      if (!isValidId(sessionId)) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'resume_session must match [A-Za-z0-9_.-]{1,128}');
      socket.emit('session_history', await this.sessions.history(socket.data.auth, sessionId));
    } catch (error) {
      const body = error instanceof ProtocolError ? error.toBody() : { code: ErrorCode.INTERNAL, message: 'could not load the session' };
      if (!(error instanceof ProtocolError)) this.logger.warn({ msg: 'resume_session failed', err: String(error) });
      socket.emit('command_error', { error: body });
    }
  }
}

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
