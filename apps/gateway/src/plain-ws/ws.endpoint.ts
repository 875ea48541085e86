import { Injectable } from '@nestjs/common';
import { type Ack, type Envelope, ErrorCode, HEARTBEAT_FRAME, PLAIN_WS_PATH, type ServerToClientEvents, toPlainFrame } from '@app/protocol';
import { ConnectionCore } from '../realtime/connection-core';
import type { PlainConnection } from './plain-connection';
import { matchExactPath, type PlainEndpoint } from './plain-endpoint';
import { PlainWsServer } from './plain-ws.server';

/**
 * `/ws` (PROTOCOL.md §11): the contract as JSON text frames. Server events go out as
 * `{ kind, ...payload }` (the envelope flat); each command frame is handed to the core and
 * answered by exactly one `{ kind: "ack", id, ok, result | error }`.
 */
@Injectable()
export class WsEndpoint implements PlainEndpoint {
  readonly name = 'ws';
  readonly acceptsAuthFrame = true;
  readonly coreResumesSession = true;
  readonly heartbeatText = HEARTBEAT_FRAME;
  /** A stream event reaches every connection live in the stream as the same text: encoded once. */
  private lastEnvelope: Envelope | undefined;
  private lastEnvelopeText = '';

  constructor(
    private readonly core: ConnectionCore,
    server: PlainWsServer,
  ) {
    server.register(this);
  }

  match(pathname: string): Record<string, string> | null {
    return matchExactPath(pathname, PLAIN_WS_PATH);
  }

  encode<E extends keyof ServerToClientEvents>(_connection: PlainConnection, event: E, payload: Parameters<ServerToClientEvents[E]>[0]): string {
    if (event !== 'event') return JSON.stringify(toPlainFrame(event, payload));
    if (payload !== this.lastEnvelope) {
      this.lastEnvelope = payload as Envelope;
      this.lastEnvelopeText = JSON.stringify(toPlainFrame('event', payload as Envelope));
    }
    return this.lastEnvelopeText;
  }

  opened(): void {
    // Nothing beyond `hello` (and `session_history` for `resume_session`), which the core sent.
  }

  frame(connection: PlainConnection, frame: unknown, raw: string): void {
    if (frame === undefined) {
      const message = `frame is not JSON: ${raw.slice(0, 80)}`;
      connection.emit('command_error', { error: { code: ErrorCode.VALIDATION_FAILED, message, details: [{ field: 'frame', constraint: 'json', message }] } });
      return;
    }
    const id = typeof frame === 'object' && frame !== null ? (frame as { id?: unknown }).id : undefined;
    // A frame with an id is answered by an ack with that id; one without, by `command_error`.
    const ack = typeof id === 'string' ? (answer: Ack) => connection.send({ kind: 'ack', id, ...answer }) : undefined;
    this.core.command(connection, frame, ack);
  }

  binaryFrame(connection: PlainConnection): void {
    const message = 'binary frames are not part of the protocol; send JSON text frames';
    connection.emit('command_error', { error: { code: ErrorCode.VALIDATION_FAILED, message, details: [{ field: 'frame', constraint: 'text', message }] } });
  }
}
