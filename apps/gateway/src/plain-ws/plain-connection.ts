import type { ServerToClientEvents } from '@app/protocol';
import { WsCloseCode } from '@app/protocol';
import type WebSocket from 'ws';
import type { Connection, ConnectionData, ServerCloseReason } from '../realtime/connection';
import type { PlainEndpoint } from './plain-endpoint';

/** What a plain connection needs of its pod (kept on the router, shared by every connection). */
export interface PlainHost {
  joinRoom(connection: PlainConnection, stream: string): void;
  leaveRoom(connection: PlainConnection, stream: string): void;
  /** Unsent bytes beyond which the reader is taken for stuck and the connection closed. */
  readonly maxBufferedBytes: number;
  closedBy(reason: CloseReason): void;
  /** The socket closed, for whatever reason: the core lets the connection go. */
  forget(connection: PlainConnection): void;
}

/** Why the server closes a plain connection; each maps to one close code (see closeFrame). */
export type CloseReason =
  | 'unauthorized'
  | 'expired'
  | 'auth_timeout'
  | 'draining'
  | 'flood'
  | 'too_large'
  | 'internal'
  | 'unavailable'
  | 'closed'
  /** Cut off at once, with no close frame: it stopped reading, or stopped answering pings. */
  | 'slow_reader'
  | 'no_pong';

/**
 * One plain-WebSocket client (`/ws` or a compatibility endpoint) as a Connection of the core.
 * The endpoint decides what its frames look like; this class only carries them, bounds what
 * waits unsent (a reader that stopped reading is cut off, never buffered without bound), and
 * closes with the contract's codes.
 */
export class PlainConnection implements Connection {
  disconnected = false;
  /** Answered a ping since the last heartbeat round. */
  alive = true;
  /** The endpoint's own per-connection state (a compat endpoint's stream, ids…). */
  state: unknown = undefined;

  constructor(
    readonly id: string,
    readonly socket: WebSocket,
    readonly data: ConnectionData,
    readonly endpoint: PlainEndpoint,
    readonly host: PlainHost,
  ) {}

  emit<E extends keyof ServerToClientEvents>(event: E, ...args: Parameters<ServerToClientEvents[E]>): boolean {
    if (this.disconnected) return false;
    const text = this.endpoint.encode(this, event, args[0]);
    return text === undefined ? true : this.sendText(text);
  }

  /** Sends one already-encoded frame, unless the client stopped reading. */
  sendText(text: string): boolean {
    if (this.disconnected) return false;
    // What is already waiting counts, not this frame: one event larger than the bound still goes.
    if (this.socket.bufferedAmount > this.host.maxBufferedBytes) {
      this.end('slow_reader');
      return false;
    }
    this.socket.send(text);
    return true;
  }

  send(frame: unknown): boolean {
    return this.sendText(JSON.stringify(frame));
  }

  join(stream: string): void {
    this.host.joinRoom(this, stream);
  }

  leave(stream: string): void {
    this.host.leaveRoom(this, stream);
  }

  disconnect(_close?: boolean, why?: ServerCloseReason): void {
    this.end(why ?? 'closed');
  }

  /** Closes with the code the contract gives the reason; a stuck reader is cut off at once. */
  end(reason: CloseReason): void {
    if (this.disconnected) return;
    this.disconnected = true;
    this.host.closedBy(reason);
    if (reason === 'slow_reader' || reason === 'no_pong') return void this.socket.terminate();
    const { code, text } = closeFrame(reason);
    this.socket.close(code, text);
  }
}

/** The close code and reason text for a reason (PROTOCOL.md §11; 1000, 1011 and 1013 are WebSocket's own). */
export function closeFrame(reason: Exclude<CloseReason, 'slow_reader' | 'no_pong'>): { code: number; text: string } {
  return { code: CLOSE_CODES[reason], text: reason.toUpperCase() };
}

const CLOSE_CODES: Record<Exclude<CloseReason, 'slow_reader' | 'no_pong'>, number> = {
  unauthorized: WsCloseCode.UNAUTHORIZED,
  expired: WsCloseCode.UNAUTHORIZED,
  auth_timeout: WsCloseCode.AUTH_TIMEOUT,
  draining: WsCloseCode.DRAINING,
  flood: WsCloseCode.FLOOD,
  too_large: WsCloseCode.TOO_LARGE,
  internal: 1011,
  unavailable: 1013,
  closed: 1000,
};
