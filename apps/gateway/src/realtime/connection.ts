import type { ServerToClientEvents, StreamName } from '@app/protocol';
import type { AuthContext } from '../auth/auth-context';
import type { RateLimiter } from '../commands/rate-limiter';
import type { PendingSubscription } from '../streams/pending-subscription';

/**
 * One client connection, whatever carries it: a Socket.IO socket, a plain WebSocket (`/ws`)
 * or a compatibility endpoint (PROTOCOL.md §11, §13). Everything the contract promises —
 * auth and expiry, limits, validation, idempotency, subscriptions with replay and
 * snapshots, presence — is written once against this interface; a transport only turns
 * these calls into its own frames. A Socket.IO socket is one as it is.
 */
export interface Connection {
  readonly id: string;
  readonly data: ConnectionData;
  readonly disconnected: boolean;
  /** Sends one server event (PROTOCOL.md §1–§8 names) to this client. */
  emit<E extends keyof ServerToClientEvents>(event: E, ...args: Parameters<ServerToClientEvents[E]>): boolean;
  /** Starts receiving a stream's live events (rooms are per pod). */
  join(stream: string): unknown;
  leave(stream: string): unknown;
  /**
   * Ends the connection from the server side, saying why (a transport with close codes uses
   * it; Socket.IO takes only `close`).
   */
  disconnect(close?: boolean, why?: ServerCloseReason): unknown;
}

/** Why the core ends a connection: a command flood, or a token that expired (after `auth_expired`). */
export type ServerCloseReason = 'flood' | 'expired';

/** One stream a connection subscribed to: catching up (`pending`) or in the room (`live`). */
export interface ConnectionSubscription {
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
 * What the gateway keeps on each connection (Socket.IO's `socket.data`). An idle connection
 * holds little beyond its auth (shared by the connections of one token): the rest is made
 * on first use.
 */
export interface ConnectionData {
  auth: AuthContext;
  /**
   * From the first subscribe on, at most one per stream. A list, not a Map: most sockets hold
   * one or two, and a one-entry Map costs ~180 bytes more per socket (see bench/socket-heap.ts).
   */
  subscriptions?: ConnectionSubscription[];
  /** From the first command on. */
  limiter?: RateLimiter;
}
