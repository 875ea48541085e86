import type { ClientToServerEvents, ServerToClientEvents, StreamName } from '@app/protocol';
import type { Server, Socket } from 'socket.io';
import type { AuthContext } from '../auth/auth-context';
import type { RateLimiter } from '../commands/rate-limiter';
import type { PendingSubscription } from '../streams/pending-subscription';

/** One stream a socket subscribed to: catching up (`pending`) or in the room (`live`). */
export interface SocketSubscription {
  stream: StreamName;
  pending: PendingSubscription | null;
  live: boolean;
  /** Counted in the stream's presence (kept across a resubscribe of the same stream). */
  present: boolean;
  /** Holds a reference on the pod's feed for the stream. */
  feed: boolean;
  ended: boolean;
}

/**
 * What the gateway keeps on each socket (`socket.data`). An idle socket holds little beyond
 * its auth (shared by the sockets of one token): the rest is made on first use.
 */
export interface SocketData {
  auth: AuthContext;
  /**
   * From the first subscribe on, at most one per stream. A list, not a Map: most sockets hold
   * one or two, and a one-entry Map costs ~180 bytes more per socket (see bench/socket-heap.ts).
   */
  subscriptions?: SocketSubscription[];
  /** From the first command on. */
  limiter?: RateLimiter;
}

/** Pods talk through the backplane, never through Socket.IO's inter-server events. */
export type InterServerEvents = Record<string, never>;

export type GatewayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type GatewaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
