import type { Socket as NetSocket } from 'node:net';
import type { GatewaySocket } from './socket.types';

/**
 * A connection's first server frames in one write: Socket.IO's CONNECT and the gateway's
 * `hello` (PROTOCOL.md §1) leave together, in one syscall and one TCP segment, where engine.io
 * would write CONNECT at once and `hello` only after that write completed — a second write on
 * the pod and a second wake-up on the client for every connect (measured in `npm run load`,
 * with the Nest bypass of realtime.gateway.ts: −7 % pod and −6 % client CPU per connect +
 * subscribe, +7 % connect rate).
 *
 * {@link holdFirstFlush} is the last Socket.IO middleware: it marks the websocket transport
 * busy, so CONNECT waits in engine.io's write buffer. {@link releaseFirstFlush}, after the
 * connection handler queued `hello`, flushes the buffer with the TCP socket corked, so ws'
 * frames are written as one. Long-polling is left alone (its writes are HTTP responses).
 */
interface EngineInternals {
  transport: { name: string; writable: boolean; socket?: { _socket?: NetSocket } };
  flush(): void;
}

const held = new WeakSet<object>();

export function holdFirstFlush(socket: GatewaySocket, next: (error?: Error) => void): void {
  const conn = socket.conn as unknown as EngineInternals;
  if (conn.transport.name === 'websocket' && conn.transport.writable) {
    conn.transport.writable = false;
    held.add(conn);
  }
  next();
}

/** Writes what waits since {@link holdFirstFlush}; a no-op for a connection it did not hold. */
export function releaseFirstFlush(socket: GatewaySocket): void {
  const conn = socket.conn as unknown as EngineInternals;
  if (!held.delete(conn)) return;
  const tcp = conn.transport.socket?._socket;
  tcp?.cork();
  try {
    conn.transport.writable = true;
    conn.flush();
  } finally {
    // Never left corked: engine.io's flush runs 'flush'/'drain' listeners, which could throw.
    tcp?.uncork();
  }
}
