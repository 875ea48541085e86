import { Injectable } from '@nestjs/common';
import { dagStream, type DagEvent, type DagState, type Envelope, type ErrorBody, initialDagState, isValidId, type ServerToClientEvents } from '@app/protocol';
import type { PlainConnection } from '../plain-ws/plain-connection';
import type { PlainEndpoint } from '../plain-ws/plain-endpoint';
import { PlainWsServer } from '../plain-ws/plain-ws.server';
import { ConnectionCore } from '../realtime/connection-core';
import { BINARY_FRAME, connectionNotice, frameFields, invalid } from './client-frames';
import { CompatLink, mapSafely, TOO_MANY_WAITING } from './compat-link';
import { dagCommandOf, type DagDashboardFrame, dagDashboardFrames, dagErrorFrame, dagResyncFrames } from './dag-stream.frames';

const PATH = /^\/api\/dags\/([^/]+)\/stream\/?$/;

interface DagLink {
  link: CompatLink;
  /** Undefined when the path's id is not a valid execution id (every frame is then refused). */
  executionId: string | undefined;
}

/**
 * `/api/dags/:executionId/stream` (PROTOCOL.md §13): the DAG dashboard's socket over the
 * execution's stream. On every (re)connect it subscribes `dag:<executionId>` with a snapshot
 * and sends the snapshot as state frames (see {@link dagResyncFrames}) from the subscribe's
 * ack, before the core releases any live event: state first, then live, nothing missed.
 */
@Injectable()
export class DagStreamEndpoint implements PlainEndpoint {
  readonly name = 'dag-stream';
  readonly acceptsAuthFrame = false;
  readonly coreResumesSession = false;
  /** Every dashboard of an execution gets the same frames for one event: encoded once. */
  private lastEnvelope: Envelope | undefined;
  private lastFrames: string[] = [];

  constructor(
    private readonly core: ConnectionCore,
    server: PlainWsServer,
  ) {
    server.register(this);
  }

  match(pathname: string): Record<string, string> | null {
    const match = PATH.exec(pathname);
    if (!match) return null;
    try {
      return { executionId: decodeURIComponent(match[1]) };
    } catch {
      return { executionId: '' };
    }
  }

  opened(connection: PlainConnection, params: Record<string, string>): void {
    const executionId = isValidId(params.executionId) ? params.executionId : undefined;
    const state: DagLink = { link: new CompatLink(connection, this.core, 'dag'), executionId };
    connection.state = state;
    if (executionId === undefined) {
      return send(connection, dagErrorFrame(badExecutionId().toBody()));
    }
    state.link.enqueue(
      () =>
        new Promise<void>((resolve) =>
          state.link.subscribe(dagStream(executionId), (ack) => {
            if (!ack.ok) send(connection, dagErrorFrame(ack.error));
            else for (const frame of dagResyncFrames((ack.result.snapshot as DagState | undefined) ?? initialDagState())) send(connection, frame);
            resolve();
          }),
        ),
      (error) => send(connection, dagErrorFrame(error)),
    );
  }

  encode<E extends keyof ServerToClientEvents>(connection: PlainConnection, event: E, payload: Parameters<ServerToClientEvents[E]>[0]): string | undefined {
    if (event !== 'event') {
      const notice = connectionNotice(event, payload);
      return notice && JSON.stringify(dagErrorFrame(notice));
    }
    if (!(connection.state as DagLink).link.follows(payload as Envelope)) return undefined;
    if (payload !== this.lastEnvelope) {
      const envelope = payload as Envelope;
      this.lastEnvelope = envelope;
      const frames = mapSafely(envelope.type, () => dagDashboardFrames({ type: envelope.type, payload: envelope.payload } as DagEvent)) ?? [];
      this.lastFrames = frames.map((frame) => JSON.stringify(frame));
    }
    // `execution_started` is one frame per node: all but the last go out here.
    for (const text of this.lastFrames.slice(0, -1)) connection.sendText(text);
    return this.lastFrames.at(-1);
  }

  frame(connection: PlainConnection, frame: unknown, raw: string): void {
    const { link, executionId } = connection.state as DagLink;
    const fail = (error: ErrorBody) => send(connection, dagErrorFrame(error));
    const queued = link.enqueue(async () => {
      if (executionId === undefined) throw badExecutionId();
      const fields = frameFields(frame, raw);
      const command = dagCommandOf(fields, executionId);
      const ack = await link.run(command);
      if (!ack.ok) send(connection, dagErrorFrame(ack.error, command.type === 'human_decision' ? command.payload.nodeId : undefined));
    }, fail);
    if (!queued) fail(TOO_MANY_WAITING);
  }

  binaryFrame(connection: PlainConnection): void {
    send(connection, dagErrorFrame(BINARY_FRAME));
  }
}

function send(connection: PlainConnection, frame: DagDashboardFrame): void {
  connection.send(frame);
}

function badExecutionId() {
  return invalid('executionId', 'matches', 'the execution id in the path must match [A-Za-z0-9_.-]{1,128}');
}
