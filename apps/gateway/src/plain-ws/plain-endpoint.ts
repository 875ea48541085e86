import type { ServerToClientEvents } from '@app/protocol';
import type { PlainConnection } from './plain-connection';

/**
 * One plain-WebSocket endpoint: `/ws` (PROTOCOL.md §11) or a compatibility mapping (§13).
 * The router authenticates, makes the PlainConnection and opens it in the core; the
 * endpoint only says what its frames look like, both ways.
 */
export interface PlainEndpoint {
  /** A short name for metrics and logs. */
  readonly name: string;
  /** Whether this endpoint serves the path; its parameters when it does. */
  match(pathname: string): Record<string, string> | null;
  /** May a socket with no `?token=` authenticate with a first `{ type: "auth", token }` frame? */
  readonly acceptsAuthFrame: boolean;
  /**
   * Whether the core answers `?resume_session=` with `session_history` right after `hello`.
   * A compatibility endpoint says no: it resumes the session itself, in its own frames and
   * in order with its resync, or has no sessions.
   */
  readonly coreResumesSession: boolean;
  /** A text frame sent every heartbeat (the pings go anyway), for clients that cannot see pings. */
  readonly heartbeatText?: string;
  /** A server event as this endpoint's text frame, or undefined to send nothing. */
  encode<E extends keyof ServerToClientEvents>(connection: PlainConnection, event: E, payload: Parameters<ServerToClientEvents[E]>[0]): string | undefined;
  /** The connection is authenticated and open in the core (after `hello`). */
  opened(connection: PlainConnection, params: Record<string, string>, query: URLSearchParams): void;
  /** One client text frame, parsed as JSON (`undefined` when it was not JSON). */
  frame(connection: PlainConnection, frame: unknown, raw: string): void;
  /** A binary frame; the protocol has none. */
  binaryFrame(connection: PlainConnection): void;
}

/** `match` for an endpoint at one fixed path (a trailing slash allowed): no parameters. */
export function matchExactPath(pathname: string, path: string): Record<string, string> | null {
  return pathname === path || pathname === `${path}/` ? {} : null;
}
