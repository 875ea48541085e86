import type { IncomingMessage } from 'node:http';
import type { GatewaySocket } from './socket.types';

/** Shared by every socket's forgotten handshake fields. */
const FORGOTTEN = Object.freeze({});
const NO_RAW_HEADERS: string[] = Object.freeze([]) as unknown as string[];

/**
 * Lets go of what Socket.IO keeps of a connection's handshake for the socket's whole life,
 * once it is connected: the gateway reads the handshake only while connecting (the token in
 * the auth middleware, `resume_session` in handleConnection).
 *
 * Kept until now: `socket.handshake`, whose `auth` holds the raw JWT and whose `headers` and
 * `query` are the upgrade request's, and that request (an IncomingMessage with its headers,
 * raw headers and parsed query), referenced by the engine socket (`conn.request`) and by the
 * response object engine.io 6 builds for its middlewares, which a `close` listener on the TCP
 * socket holds to the end. That last reference is out of reach, so the request is emptied
 * of its header data instead; what stays of it is the small IncomingMessage shell.
 * `handshake.address`, `time` and `issued` stay.
 */
export function forgetHandshake(socket: GatewaySocket): void {
  const conn = socket.conn as unknown as { request: (IncomingMessage & { _query?: unknown }) | null };
  const request = conn.request;
  if (request) {
    // `headers` is an accessor over the parsed headers; `_query` is engine.io's parsed query.
    request.headers = FORGOTTEN;
    request.rawHeaders = NO_RAW_HEADERS;
    request._query = FORGOTTEN;
    conn.request = null;
  }
  socket.handshake.headers = FORGOTTEN;
  socket.handshake.query = FORGOTTEN;
  socket.handshake.auth = FORGOTTEN;
}
