import { Inject, Logger } from '@nestjs/common';
import {
  Ack,
  ConnectedSocket,
  MessageBody,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
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
import { MALFORMED_FRAME_EVENT, TolerantDecoder } from './tolerant-parser';

/**
 * The Socket.IO edge: connection lifecycle and the `command` event. Handlers stay thin —
 * they hand each frame to the CommandDispatcher, which answers it.
 */
@WebSocketGateway()
export class RealtimeGateway implements OnGatewayInit<GatewayServer>, OnGatewayConnection<GatewaySocket>, OnGatewayDisconnect<GatewaySocket> {
  private readonly logger = new Logger('Gateway');

  constructor(
    private readonly dispatcher: CommandDispatcher,
    private readonly connectionAuth: ConnectionAuth,
    private readonly subscriptions: SubscriptionService,
    private readonly backplane: BackplaneSubscriber,
    private readonly sessions: SessionsService,
    private readonly lifecycle: Lifecycle,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

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
    socket.onAny((event: string, ...args: unknown[]) => this.onOtherEvent(socket, event, args));
    socket.emit('hello', {
      protocol: PROTOCOL_VERSION,
      connectionId: socket.id,
      serverId: this.config.serverId,
      heartbeatMs: this.config.heartbeatMs,
      limits: { maxPayloadBytes: this.config.limits.maxPayloadBytes, commandsPerSecond: this.config.limits.commandsPerSecond },
    });
    const resume = socket.handshake.query.resume_session;
    if (resume !== undefined) void this.sendSessionHistory(socket, resume);
  }

  handleDisconnect(socket: GatewaySocket): void {
    this.metrics.sockets.dec();
    this.connectionAuth.disarm(socket);
    if (socket.data.subscriptions) this.subscriptions.unsubscribeAll(socket);
  }

  @SubscribeMessage('command')
  onCommand(@ConnectedSocket() socket: GatewaySocket, @MessageBody() frame: unknown, @Ack() ack?: AckCallback): void {
    this.dispatcher.dispatch(socket, frame, ack);
  }

  /** Anything but `command`: a malformed frame, or an event this protocol does not have. */
  private onOtherEvent(socket: GatewaySocket, event: string, args: unknown[]): void {
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
    else socket.emit('command_error', { error });
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
