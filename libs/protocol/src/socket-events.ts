import type { Ack, CommandRequest } from './commands';
import type { ErrorBody } from './errors';
import type { Envelope } from './envelope';
import type { SessionHistory } from './commands';
import type { StreamName } from './streams';
import type { ProtocolVersion } from './version';

/** `hello`, the first frame every connected socket receives (PROTOCOL.md §1). */
export interface HelloPayload {
  protocol: ProtocolVersion;
  connectionId: string;
  serverId: string;
  heartbeatMs: number;
  limits: { maxPayloadBytes: number; commandsPerSecond: number };
}

/** `presence` (PROTOCOL.md §8): a user's first connection joined or last one left a stream. */
export interface PresenceChange {
  stream: StreamName;
  joined?: string[];
  left?: string[];
}

/** Sent before a draining pod lets the socket go: reconnect (to another pod) after the delay. */
export interface DrainingNotice {
  serverId: string;
  reconnectInMs: number;
}

/** Sent for a `command` frame that carried no acknowledgement callback, so it cannot be acked. */
export interface CommandError {
  id?: string;
  error: ErrorBody;
}

/** Server → client Socket.IO events; every emit is checked against this map. */
export interface ServerToClientEvents {
  hello: (hello: HelloPayload) => void;
  event: (envelope: Envelope) => void;
  presence: (change: PresenceChange) => void;
  session_history: (history: SessionHistory) => void;
  auth_expired: (info: { message: string }) => void;
  draining: (notice: DrainingNotice) => void;
  command_error: (error: CommandError) => void;
}

/** Client → server Socket.IO events. */
export interface ClientToServerEvents {
  command: (command: CommandRequest, ack: (ack: Ack) => void) => void;
}

/** `connect_error.data` for a refused handshake. */
export interface HandshakeError {
  code: 'UNAUTHORIZED' | 'UNAVAILABLE';
  message: string;
}
