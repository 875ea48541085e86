import type { Ack } from './commands';
import type { Envelope } from './envelope';
import type { ServerToClientEvents } from './socket-events';

/** The plain-WebSocket endpoint (PROTOCOL.md §11). */
export const PLAIN_WS_PATH = '/ws';

/** A socket with no token in its query must send `{ type: "auth", token }` within this. */
export const AUTH_FRAME_TIMEOUT_MS = 5_000;

/** Close codes of `/ws` and the compatibility endpoints (PROTOCOL.md §11). */
export const WsCloseCode = {
  /** No, a bad or an expired token. */
  UNAUTHORIZED: 4401,
  /** No auth frame in time. */
  AUTH_TIMEOUT: 4408,
  /** The pod is draining: reconnect (to another pod). */
  DRAINING: 4409,
  /** A frame beyond the size limit. */
  TOO_LARGE: 4413,
  /** Commands beyond the flood threshold. */
  FLOOD: 4429,
} as const;
export type WsCloseCode = (typeof WsCloseCode)[keyof typeof WsCloseCode];

/** The first frame of a socket that did not put its token in the query. */
export interface AuthFrame {
  type: 'auth';
  token: string;
}

/**
 * Sent by `/ws` every `hello.heartbeatMs` (an addition to PROTOCOL.md §11): WebSocket pings
 * are invisible to a browser's script, so this is how a client there tells a live but quiet
 * connection from a dead one (silence for about twice the period).
 */
export const HEARTBEAT_FRAME = '{"kind":"heartbeat"}';

type ServerEventPayload<E extends keyof ServerToClientEvents> = Parameters<ServerToClientEvents[E]>[0];

/**
 * A `/ws` server frame: each Socket.IO server event as a JSON object whose `kind` is the
 * event's name and whose other fields are its payload's (the `event` envelope flat), plus
 * `ack`, the one answer to each command frame.
 */
export type PlainServerFrame =
  | ({ kind: 'ack'; id: string } & Ack)
  | { kind: 'heartbeat' }
  | ({ kind: 'event' } & Envelope)
  | { [E in Exclude<keyof ServerToClientEvents, 'event'>]: { kind: E } & ServerEventPayload<E> }[Exclude<keyof ServerToClientEvents, 'event'>];

/** The frame `/ws` sends for a server event. */
export function toPlainFrame<E extends keyof ServerToClientEvents>(event: E, payload: ServerEventPayload<E>): PlainServerFrame {
  return { kind: event, ...(payload as object) } as PlainServerFrame;
}
