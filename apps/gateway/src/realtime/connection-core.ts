import { Inject, Injectable, Logger } from '@nestjs/common';
import { type Envelope, ErrorCode, type HelloPayload, isValidId, PROTOCOL_VERSION, type PresenceChange, ProtocolError } from '@app/protocol';
import { ConnectionAuth } from '../auth/connection-auth.service';
import { errorBody, knownError } from '../common/error-body';
import { type AckCallback, CommandDispatcher } from '../commands/command-dispatcher';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { SessionsService } from '../domain/sessions.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { BackplaneSubscriber } from '../streams/backplane-subscriber';
import { SubscriptionService } from '../streams/subscription.service';
import type { Connection } from './connection';
import type { GatewayServer } from './socket.types';

/**
 * The one connection core every transport sits on (PROTOCOL.md §1, §11, §13): what happens
 * when a connection opens (expiry armed, `hello`, `resume_session`), each command frame
 * (through the CommandDispatcher: limits, validation, idempotency, handlers) and the close
 * (subscriptions and presence let go) — and the pod's delivery of each stream event to the
 * connections live in that stream, Socket.IO rooms and plain rooms alike, in one pass, so
 * every transport sees a stream's events in the same order.
 */
@Injectable()
export class ConnectionCore {
  private readonly logger = new Logger('Connections');
  /** Connections not carried by Socket.IO, by the stream they are live in (Socket.IO keeps its own rooms). */
  private readonly plainRooms = new Map<string, Set<Connection>>();

  constructor(
    private readonly dispatcher: CommandDispatcher,
    private readonly connectionAuth: ConnectionAuth,
    private readonly subscriptions: SubscriptionService,
    private readonly backplane: BackplaneSubscriber,
    private readonly sessions: SessionsService,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  /** Hooks the pod's backplane to the Socket.IO server and the plain rooms; called once. */
  start(server: GatewayServer): void {
    this.backplane.attach({
      deliver: (envelope: Envelope) => {
        const room = server.of('/').adapter.rooms.get(envelope.stream);
        const plain = this.plainRooms.get(envelope.stream);
        const reached = (room?.size ?? 0) + (plain?.size ?? 0);
        if (reached === 0) return;
        if (room && room.size > 0) server.to(envelope.stream).emit('event', envelope);
        if (plain) for (const connection of plain) connection.emit('event', envelope);
        this.metrics.eventsDelivered.inc({ path: 'live' }, reached);
        this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - envelope.ts) / 1000);
      },
      presence: (change: PresenceChange) => {
        server.to(change.stream).emit('presence', change);
        const plain = this.plainRooms.get(change.stream);
        if (plain) for (const connection of plain) connection.emit('presence', change);
      },
    });
  }

  /** A connection that passed authentication: it gets `hello`, then the session it resumes. */
  opened(connection: Connection, resumeSession?: unknown): void {
    this.metrics.sockets.inc();
    this.connectionAuth.armExpiry(connection);
    connection.emit('hello', this.hello(connection.id));
    if (resumeSession !== undefined) void this.sendSessionHistory(connection, resumeSession);
  }

  /** One command frame; `ack` gets exactly one answer (without one, errors go out as `command_error`). */
  command(connection: Connection, frame: unknown, ack?: AckCallback): void {
    try {
      this.dispatcher.dispatch(connection, frame, ack);
    } catch (error) {
      // The dispatcher answers every frame itself; this only keeps a bug from ending the process.
      this.logger.error({ msg: 'command dispatch threw', err: error instanceof Error ? error.stack : String(error) });
      ack?.({ ok: false, error: errorBody(error) });
    }
  }

  closed(connection: Connection): void {
    this.metrics.sockets.dec();
    this.connectionAuth.disarm(connection);
    if (connection.data.subscriptions) this.subscriptions.unsubscribeAll(connection);
  }

  /** Room membership for connections that are not Socket.IO sockets (their `join`/`leave`). */
  joinPlain(connection: Connection, stream: string): void {
    let members = this.plainRooms.get(stream);
    if (!members) this.plainRooms.set(stream, (members = new Set()));
    members.add(connection);
  }

  leavePlain(connection: Connection, stream: string): void {
    const members = this.plainRooms.get(stream);
    if (!members?.delete(connection)) return;
    if (members.size === 0) this.plainRooms.delete(stream);
  }

  private hello(connectionId: string): HelloPayload {
    const { maxPayloadBytes, commandsPerSecond } = this.config.limits;
    return {
      protocol: PROTOCOL_VERSION,
      connectionId,
      serverId: this.config.serverId,
      heartbeatMs: this.config.heartbeatMs,
      limits: { maxPayloadBytes, commandsPerSecond },
    };
  }

  private async sendSessionHistory(connection: Connection, sessionId: unknown): Promise<void> {
    try {
      if (!isValidId(sessionId)) throw new ProtocolError(ErrorCode.VALIDATION_FAILED, 'resume_session must match [A-Za-z0-9_.-]{1,128}');
      connection.emit('session_history', await this.sessions.history(connection.data.auth, sessionId));
    } catch (error) {
      if (!knownError(error)) this.logger.warn({ msg: 'resume_session failed', err: String(error) });
      connection.emit('command_error', { error: errorBody(error, 'could not load the session') });
    }
  }
}
