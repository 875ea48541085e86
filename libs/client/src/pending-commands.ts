import {
  type Ack,
  type CommandPayload,
  type CommandRequest,
  type CommandResult,
  type CommandType,
  ErrorCode,
  PROTOCOL_VERSION,
  ProtocolError,
} from '@app/protocol';

type Send = (request: CommandRequest, onAck: (ack: Ack) => void) => void;

interface Pending {
  request: CommandRequest;
  /** Resend on the next connection if this one drops (false: fail with UNAVAILABLE instead). */
  resend: boolean;
  resolve: (result: unknown) => void;
  /** Called with the result inside the ack callback, before `resolve` (see `send`). */
  onResult?: (result: unknown) => void;
  reject: (error: ProtocolError) => void;
  deadline: number;
  /** Which connection the request was last sent on (undefined: waiting for one). */
  sentOn?: number;
  retryTimer?: ReturnType<typeof setTimeout>;
  deadlineTimer: ReturnType<typeof setTimeout>;
}

function connectionLost(): ProtocolError {
  return new ProtocolError(ErrorCode.UNAVAILABLE, 'not connected', undefined, 0);
}

/** Answers worth retrying with the same id: nothing was decided on the server. */
const RETRY_ON: ReadonlySet<string> = new Set([ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE]);

/**
 * Commands waiting for their ack. A command sent on a connection that drops before the ack
 * is sent again, with the same id, on the next connection — the server's idempotency makes
 * that safe — and a `RATE_LIMITED` or `UNAVAILABLE` answer is retried after `retryAfterMs`;
 * all within the command's own deadline, after which it fails with `TIMEOUT`.
 */
export class PendingCommands {
  private readonly pending = new Map<string, Pending>();
  private connection: { id: number; send: Send } | null = null;

  get size(): number {
    return this.pending.size;
  }

  /**
   * `onResult` runs synchronously inside the ack callback, before the promise settles: a
   * subscribe's replayed events may come in the same read as its ack, and would reach the
   * store before a promise continuation could apply the answer.
   */
  send<T extends CommandType>(
    type: T,
    payload: CommandPayload<T>,
    id: string,
    timeoutMs: number,
    resend = true,
    onResult?: (result: CommandResult<T>) => void,
  ): Promise<CommandResult<T>> {
    if (this.pending.has(id)) return Promise.reject(new ProtocolError(ErrorCode.CONFLICT, `command ${id} is already pending`));
    if (!resend && !this.connection) return Promise.reject(connectionLost());
    return new Promise<CommandResult<T>>((resolve, reject) => {
      const entry: Pending = {
        request: { v: PROTOCOL_VERSION, id, type, payload } as CommandRequest,
        resend,
        resolve: resolve as (result: unknown) => void,
        onResult: onResult as ((result: unknown) => void) | undefined,
        reject,
        deadline: Date.now() + timeoutMs,
        deadlineTimer: setTimeout(() => this.fail(id, new ProtocolError(ErrorCode.TIMEOUT, `no answer to ${type} within ${timeoutMs} ms`)), timeoutMs),
      };
      this.pending.set(id, entry);
      this.transmit(entry);
    });
  }

  /** A connection is up: (re)send everything not yet sent on it. */
  connected(id: number, send: Send): void {
    this.connection = { id, send };
    for (const entry of this.pending.values()) if (entry.sentOn !== id && !entry.retryTimer) this.transmit(entry);
  }

  disconnected(): void {
    this.connection = null;
    for (const [id, entry] of this.pending) if (!entry.resend) this.fail(id, connectionLost());
  }

  failAll(error: ProtocolError): void {
    for (const id of [...this.pending.keys()]) this.fail(id, error);
  }

  private transmit(entry: Pending): void {
    const connection = this.connection;
    if (!connection) return;
    entry.sentOn = connection.id;
    connection.send(entry.request, (ack) => this.answer(entry, ack));
  }

  private answer(entry: Pending, ack: Ack): void {
    if (this.pending.get(entry.request.id) !== entry) return;
    if (ack.ok) {
      this.settle(entry);
      entry.onResult?.(ack.result);
      return entry.resolve(ack.result);
    }
    const wait = ack.error.retryAfterMs ?? 1000;
    if (RETRY_ON.has(ack.error.code) && Date.now() + wait < entry.deadline) {
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = undefined;
        entry.sentOn = undefined;
        this.transmit(entry);
      }, wait);
      return;
    }
    this.settle(entry);
    entry.reject(ProtocolError.fromBody(ack.error));
  }

  private fail(id: string, error: ProtocolError): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.settle(entry);
    entry.reject(error);
  }

  private settle(entry: Pending): void {
    clearTimeout(entry.deadlineTimer);
    clearTimeout(entry.retryTimer);
    this.pending.delete(entry.request.id);
  }
}
