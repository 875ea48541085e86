import type { IncomingMessage } from 'node:http';
import { Socket as NetSocket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type GatewayServer, type GatewaySocket, SOCKET_IO_PATH } from './socket.types';

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

/**
 * An upgrade's `101 Switching Protocols` and engine.io's `open` packet in one write, as the
 * connection's next frames are above: `ws` writes the 101 at once and engine.io the `open`
 * packet a microtask later (its handshake awaits the socket id), a syscall on the pod and a
 * wake-up on the client each. The TCP socket stays corked from the upgrade event until the
 * event loop's next check phase, after that handshake's microtasks: whatever the handshake
 * wrote by then leaves in one writev. An upgrade engine.io refuses is uncorked at once (its
 * `connection_error` comes just before it writes the 400 and destroys the socket, which
 * would discard a corked write). Prepended, so it runs before engine.io's own listener;
 * other paths' upgrades are left alone.
 */
export function joinUpgradeWrites(server: GatewayServer): void {
  const prefix = `${SOCKET_IO_PATH}/`;
  const uncorkers = new WeakMap<IncomingMessage, () => void>();
  server.httpServer.prependListener('upgrade', (request: IncomingMessage, socket: Duplex) => {
    if (!(socket instanceof NetSocket) || !request.url?.startsWith(prefix)) return;
    socket.cork();
    let corked = true;
    const uncork = () => {
      if (!corked) return;
      corked = false;
      socket.uncork();
      // engine.io keeps the request for the connection's life: hold nothing of ours with it.
      uncorkers.delete(request);
    };
    uncorkers.set(request, uncork);
    setImmediate(uncork);
  });
  server.engine.on('connection_error', ({ req }: { req: IncomingMessage }) => uncorkers.get(req)?.());
}
