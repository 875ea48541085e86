import { Logger } from '@nestjs/common';
import {
  type Ack,
  COMMAND_ID_PATTERN,
  type CommandPayload,
  type CommandResult,
  type CommandType,
  type Envelope,
  type ErrorBody,
  ErrorCode,
  PROTOCOL_VERSION,
  ProtocolError,
  type StreamName,
  type SubscribeResult,
} from '@app/protocol';
import { errorBody, knownError } from '../common/error-body';
import type { PlainConnection } from '../plain-ws/plain-connection';
import type { ConnectionCore } from '../realtime/connection-core';

/** A contract command built from an old protocol's frame. */
export type ContractCommand = { [T in CommandType]: { type: T; payload: CommandPayload<T> } }[CommandType];

/** Failures that pass by themselves: worth a reconnect. */
const PASSING_ERRORS: ReadonlySet<string> = new Set([ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL]);

/** Client frames waiting their turn on one connection; past this a frame is refused RATE_LIMITED. */
export const MAX_WAITING_FRAMES = 32;

const logger = new Logger('Compat');

/**
 * What a compatibility endpoint (PROTOCOL.md §13) keeps per connection: the bridge from an
 * old protocol's frames to contract commands. Commands go through the connection core as
 * any `/ws` frame does (limits, validation, idempotency, exactly one ack) with ids made
 * here, so the compat endpoints add no second path into the domain. The client's frames are
 * handled one at a time and in order, and the first turn is the endpoint's subscribe: nothing
 * a client sends acts before its view of the stream is live, and a frame that depends on an
 * earlier one (a cancel after a chat) sees its outcome.
 */
export class CompatLink {
  private sent = 0;
  /** The stream's epoch as this link's last subscribe saw it. */
  private epoch: string | undefined;
  private turn: Promise<void> = Promise.resolve();
  private waiting = 0;

  constructor(
    readonly connection: PlainConnection,
    private readonly core: ConnectionCore,
    /** Starts every command id this link makes, so ids of the endpoints never meet. */
    private readonly idPrefix: string,
  ) {}

  /**
   * A contract command whose ack `onAck` gets synchronously, as the core answers — before any
   * event the command releases (a subscribe's replay and live events follow its ack), so
   * frames sent from `onAck` precede them on the wire.
   */
  commandNow<T extends CommandType>(type: T, payload: CommandPayload<T>, onAck: (ack: Ack<CommandResult<T>>) => void, id = this.nextId()): void {
    this.core.command(this.connection, { v: PROTOCOL_VERSION, id, type, payload }, onAck as (ack: Ack) => void);
  }

  command<T extends CommandType>(type: T, payload: CommandPayload<T>, id?: string): Promise<Ack<CommandResult<T>>> {
    return new Promise((resolve) => this.commandNow(type, payload, resolve, id));
  }

  /** A command built from a client frame; the result's type is the caller's to know. */
  run(command: ContractCommand, id = this.nextId()): Promise<Ack<unknown>> {
    return new Promise((resolve) => this.core.command(this.connection, { v: PROTOCOL_VERSION, id, ...command }, resolve));
  }

  /**
   * Subscribes the stream with a snapshot (old dashboards know no seqs); `onAck` as in
   * {@link commandNow}. A subscribe that failed for a passing reason (Redis unreachable, a
   * timeout) leaves the socket no stream to show, and an old dashboard no way to tell: once
   * `onAck` has sent its error frame, the socket is closed 1013 (try again later), which such
   * dashboards answer by reconnecting — and a reconnect resyncs.
   */
  subscribe(stream: StreamName, onAck: (ack: Ack<SubscribeResult>) => void): void {
    this.commandNow('subscribe', { stream }, (ack) => {
      if (ack.ok) this.epoch = ack.result.epoch;
      onAck(ack);
      if (!ack.ok && PASSING_ERRORS.has(ack.error.code)) this.connection.end('unavailable');
    });
  }

  /**
   * Whether a live event belongs to the history this link's dashboard was shown. One of
   * another epoch means the stream's history was lost and started again (a failover that lost
   * writes, a wiped Redis): what the dashboard holds no longer folds with it, and an old
   * protocol has no seq to notice by. So the socket is closed 1013 (try again later) and the
   * dashboard's reconnect resyncs it from a fresh snapshot, as on any reconnect.
   */
  follows(envelope: Envelope): boolean {
    if (this.epoch === undefined || envelope.epoch === this.epoch) return true;
    this.connection.end('unavailable');
    return false;
  }

  /**
   * The command id for a frame that names what it acts on with an id of the old protocol (an
   * approval's id, a plan's id): sent again — a retry after a reconnect — it is the same
   * command and answers as the first time did (PROTOCOL.md §3). Other frames get fresh ids.
   */
  idFor(kind: string, clientId: string): string {
    const id = `${this.idPrefix}.${kind}.${clientId}`;
    return COMMAND_ID_PATTERN.test(id) ? id : this.nextId();
  }

  nextId(): string {
    return `${this.idPrefix}.${this.connection.id}.${++this.sent}`;
  }

  /**
   * Runs `task` after every earlier one. What a task throws reaches `onError` as its contract
   * body (errorBody: a ProtocolError as it is, Redis down as UNAVAILABLE, any other fault
   * logged and answered INTERNAL). Returns false (and
   * runs nothing) when {@link MAX_WAITING_FRAMES} already wait.
   */
  enqueue(task: () => Promise<void> | void, onError: (error: ErrorBody) => void): boolean {
    if (this.waiting >= MAX_WAITING_FRAMES) return false;
    this.waiting++;
    this.turn = this.turn.then(async () => {
      try {
        if (!this.connection.disconnected) await task();
      } catch (error) {
        if (!knownError(error))
          logger.error({ msg: 'compat frame failed', connectionId: this.connection.id, err: error instanceof Error ? error.stack : String(error) });
        onError(errorBody(error));
      } finally {
        this.waiting--;
      }
    });
    return true;
  }
}

/** The error a frame gets when too many wait before it (see {@link CompatLink.enqueue}). */
export const TOO_MANY_WAITING: ErrorBody = {
  code: ErrorCode.RATE_LIMITED,
  message: `more than ${MAX_WAITING_FRAMES} frames waiting on this connection`,
  retryAfterMs: 1000,
};

/** A failed ack as an exception, for a task that cannot go on without the command. */
export function resultOf<T>(ack: Ack<T>): T {
  if (!ack.ok) throw ProtocolError.fromBody(ack.error);
  return ack.result;
}

/**
 * Runs a mapping on a server event. A publisher's malformed payload must not throw out of
 * `encode`, where it would stop the pod's delivery loop: such an event is logged and dropped
 * for this connection, as the reducers leave it unfolded.
 */
export function mapSafely<T>(what: string, map: () => T): T | undefined {
  try {
    return map();
  } catch (error) {
    logger.warn({ msg: 'event not mappable to a compat frame', what, err: String(error) });
    return undefined;
  }
}

/**
 * A Map that forgets its oldest entry past `limit`: what a link remembers from the stream
 * (tool names, chat aliases, its runs) must stay bounded whatever a publisher sends.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    this.delete(key);
    super.set(key, value);
    if (this.size > this.limit) this.delete(this.keys().next().value as K);
    return this;
  }
}
