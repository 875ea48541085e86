import type { Ack, CommandError, CommandRequest, DrainingNotice, Envelope, HelloPayload, PresenceChange, SessionHistory } from '@app/protocol';

/**
 * The seam between `RealtimeClient` and a wire: Socket.IO (PROTOCOL.md §1) or the plain
 * WebSocket `/ws` (§11). A transport opens one connection and reports what arrives; it
 * never reconnects, resubscribes or retries — the client does that the same way on both.
 */
export interface TransportTarget {
  /** The gateway URL as the caller gave it (`http(s)://…` or `ws(s)://…`). */
  url: string;
  /** The JWT, already resolved from the client's token source. */
  token: string;
  resumeSession?: string;
}

/** Why a connection ended, as far as the client's reconnect policy cares. */
export type TransportClose =
  /** The token was refused or ran out: a fixed token stops the client; a token function is asked again. */
  | { reason: 'unauthorized'; message: string }
  /** The pod is draining or refused us for it: go to another pod now. */
  | { reason: 'elsewhere' }
  /** Anything else (network, pod died, flood): reconnect with backoff. */
  | { reason: 'lost'; message: string };

/** What a transport reports; each method is one server event of PROTOCOL.md (§1, §8, §11). */
export interface TransportHandlers {
  hello(hello: HelloPayload): void;
  event(envelope: Envelope): void;
  presence(change: PresenceChange): void;
  sessionHistory(history: SessionHistory): void;
  commandError(error: CommandError): void;
  draining(notice: DrainingNotice): void;
  authExpired(): void;
  /** Called at most once, when the connection ends without the client closing it. */
  closed(close: TransportClose): void;
}

/** One open (or opening) connection. */
export interface TransportConnection {
  /** Sends a command; `onAck` is called once with its one ack, if the connection lives to get it. */
  send(request: CommandRequest, onAck: (ack: Ack) => void): void;
  /** Closes from our side; no handler is called after this. */
  close(): void;
}

/**
 * Opens a connection. Errors that happen while opening are reported through `closed`; no
 * handler is called before the factory has returned its connection.
 */
export type TransportFactory = (target: TransportTarget, handlers: TransportHandlers) => TransportConnection;
