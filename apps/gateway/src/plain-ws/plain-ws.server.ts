import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { AUTH_FRAME_TIMEOUT_MS, type AuthFrame, ErrorCode, ProtocolError, WsCloseCode } from '@app/protocol';
import WebSocket, { type RawData, WebSocketServer } from 'ws';
import { ConnectionAuth } from '../auth/connection-auth.service';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { ConnectionCore } from '../realtime/connection-core';
import { SOCKET_IO_PATH } from '../realtime/socket.types';
import { closeFrame, type CloseReason, PlainConnection, type PlainHost } from './plain-connection';
import type { PlainEndpoint } from './plain-endpoint';

const CONNECTION = Symbol('plain-connection');
/** Frames a client may send before its authentication finished; one more is a flood. */
const EARLY_FRAMES_MAX = 16;
type TaggedSocket = WebSocket & { [CONNECTION]?: PlainConnection };

/**
 * The plain-WebSocket edge of a pod: one `ws` server on the HTTP server's upgrades, routing
 * each path to its endpoint (`/ws`, the compatibility endpoints), authenticating (token in the
 * query, or — where the endpoint allows — a first `auth` frame within 5 s), and opening the
 * connection in the ConnectionCore. Socket.IO keeps its own upgrades (`/socket.io/`).
 *
 * Every socket gets the same listener functions (the socket is `this`), and one heartbeat
 * timer pings them all, so an idle connection holds no closures or timers of its own.
 */
@Injectable()
export class PlainWsServer implements PlainHost, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('PlainWs');
  private readonly endpoints: PlainEndpoint[] = [];
  private readonly connections = new Set<PlainConnection>();
  private readonly wss: WebSocketServer;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly heartbeatMs: number;
  /** Whether Socket.IO runs websockets, i.e. engine.io answers the upgrades under its path. */
  private readonly socketIoUpgrades: boolean;
  readonly maxBufferedBytes: number;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly core: ConnectionCore,
    private readonly connectionAuth: ConnectionAuth,
    private readonly lifecycle: Lifecycle,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
  ) {
    this.maxBufferedBytes = config.wsMaxBufferedBytes;
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // As Socket.IO: frames up to twice the payload limit are read and answered
      // PAYLOAD_TOO_LARGE; larger ones close the connection 4413 (see ContractWebSocket).
      maxPayload: config.limits.maxPayloadBytes * 2 + 16 * 1024,
      WebSocket: ContractWebSocket,
    });
    this.heartbeatMs = config.heartbeatMs;
    this.socketIoUpgrades = config.transports.includes('websocket');
  }

  register(endpoint: PlainEndpoint): void {
    this.endpoints.push(endpoint);
  }

  onApplicationBootstrap(): void {
    const server = this.adapterHost.httpAdapter.getHttpServer() as import('node:http').Server;
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head));
    this.lifecycle.attach<PlainConnection>({
      count: () => this.connections.size,
      list: () => [...this.connections],
      drain: (connection, notice) => {
        connection.emit('draining', notice);
        connection.end('draining');
      },
    });
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.heartbeat);
    for (const connection of this.connections) connection.socket.terminate();
  }

  // PlainHost: what every PlainConnection calls back into.
  joinRoom(connection: PlainConnection, stream: string): void {
    this.core.joinPlain(connection, stream);
  }

  leaveRoom(connection: PlainConnection, stream: string): void {
    this.core.leavePlain(connection, stream);
  }

  closedBy(reason: CloseReason): void {
    this.metrics.plainClosed.inc({ reason });
    if (reason === 'slow_reader') this.metrics.slowReaders.inc({ transport: 'ws' });
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node takes its own 'error' listener off an upgraded socket: a reset before ws or
    // engine.io add theirs must not end the process.
    socket.on('error', ignoreError);
    if (request.url?.startsWith(`${SOCKET_IO_PATH}/`)) {
      // engine.io answers its own upgrades (exactly those under `/socket.io/`) when it runs
      // websockets; without them nothing else would ever answer this one.
      if (this.socketIoUpgrades) return;
      return refuseUpgrade(socket, '400 Bad Request');
    }
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://gateway');
    } catch {
      // A request target `new URL` cannot read (`//[`): nothing to route, nothing to throw.
      return refuseUpgrade(socket, '400 Bad Request');
    }
    for (const endpoint of this.endpoints) {
      const params = endpoint.match(url.pathname);
      if (!params) continue;
      this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws as TaggedSocket, endpoint, params, url.searchParams));
      return;
    }
    refuseUpgrade(socket, '404 Not Found');
  }

  /**
   * Authenticates an upgraded socket: by its query token, or (where the endpoint allows) by a
   * first `auth` frame within 5 s. Frames the client sends before authentication finished —
   * a browser sends its auth frame and its first subscribe in one go — wait (a few, bounded)
   * and are handled in order once the connection is open.
   */
  private accept(ws: TaggedSocket, endpoint: PlainEndpoint, params: Record<string, string>, query: URLSearchParams): void {
    ws.on('error', onSocketError);
    const token = query.get('token');
    if (token === null && !endpoint.acceptsAuthFrame) return refuse(ws, 'unauthorized', this);

    const early: Array<[RawData, boolean]> = [];
    let authenticating = token !== null;
    const timer = authenticating ? undefined : setTimeout(() => refuse(ws, 'auth_timeout', this), AUTH_FRAME_TIMEOUT_MS);
    const onEarlyFrame = (data: RawData, isBinary: boolean): void => {
      if (authenticating) {
        if (early.length < EARLY_FRAMES_MAX) early.push([data, isBinary]);
        else refuse(ws, 'flood', this);
        return;
      }
      clearTimeout(timer);
      const frame = isBinary ? undefined : parseJson(data.toString());
      if (!isAuthFrame(frame)) return refuse(ws, 'unauthorized', this);
      authenticating = true;
      void this.authenticate(ws, endpoint, params, query, frame.token, handOver);
    };
    const handOver = (): Array<[RawData, boolean]> => {
      ws.off('message', onEarlyFrame);
      return early;
    };
    ws.on('message', onEarlyFrame);
    ws.once('close', () => clearTimeout(timer));
    if (token !== null) void this.authenticate(ws, endpoint, params, query, token, handOver);
  }

  private async authenticate(
    ws: TaggedSocket,
    endpoint: PlainEndpoint,
    params: Record<string, string>,
    query: URLSearchParams,
    token: string,
    handOver: () => Array<[RawData, boolean]>,
  ): Promise<void> {
    let auth;
    try {
      auth = await this.connectionAuth.authenticate(token);
    } catch (error) {
      const draining = error instanceof ProtocolError && error.code === ErrorCode.UNAVAILABLE;
      return refuse(ws, draining ? 'draining' : 'unauthorized', this);
    }
    if (ws.readyState !== WebSocket.OPEN) return;
    // The drain may have listed its connections while this one was being checked.
    if (this.lifecycle.draining) return refuse(ws, 'draining', this);
    const early = handOver();
    const connection = new PlainConnection(randomBytes(12).toString('base64url'), ws, { auth }, endpoint, this);
    ws[CONNECTION] = connection;
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('close', onClose);
    this.connections.add(connection);
    this.metrics.plainConnections.inc({ endpoint: endpoint.name });
    this.core.opened(connection, endpoint.coreResumesSession ? (query.get('resume_session') ?? undefined) : undefined);
    try {
      endpoint.opened(connection, params, query);
    } catch (error) {
      this.logger.error({ msg: 'endpoint failed to open a connection', endpoint: endpoint.name, err: error instanceof Error ? error.stack : String(error) });
      return connection.end('internal');
    }
    for (const [data, isBinary] of early) onMessage.call(ws, data, isBinary);
  }

  forget(connection: PlainConnection): void {
    if (!this.connections.delete(connection)) return;
    connection.disconnected = true;
    this.metrics.plainConnections.dec({ endpoint: connection.endpoint.name });
    this.core.closed(connection);
  }

  /**
   * Pings every connection (one that did not answer the last ping is gone) and, where the
   * endpoint has one, sends its heartbeat frame for clients that cannot see pings.
   */
  private beat(): void {
    for (const connection of this.connections) {
      if (!connection.alive) {
        connection.end('no_pong');
        continue;
      }
      connection.alive = false;
      connection.socket.ping();
      if (connection.endpoint.heartbeatText !== undefined) connection.sendText(connection.endpoint.heartbeatText);
    }
  }
}

/**
 * `ws` closes a connection whose frame is beyond `maxPayload` with 1009; the contract's code
 * for it is 4413 (PROTOCOL.md §11).
 */
class ContractWebSocket extends WebSocket {
  override close(code?: number, reason?: string | Buffer): void {
    if (code === 1009) return super.close(WsCloseCode.TOO_LARGE, 'TOO_LARGE');
    super.close(code, reason);
  }
}

/** Closes a socket that never became a connection (once: a refused socket is closing). */
function refuse(ws: WebSocket, reason: 'unauthorized' | 'auth_timeout' | 'draining' | 'flood', host: PlainHost): void {
  if (ws.readyState !== WebSocket.OPEN) return;
  host.closedBy(reason);
  const { code, text } = closeFrame(reason);
  ws.close(code, text);
}

function onMessage(this: TaggedSocket, data: RawData, isBinary: boolean): void {
  const connection = this[CONNECTION];
  if (!connection || connection.disconnected) return;
  connection.alive = true;
  if (isBinary) return connection.endpoint.binaryFrame(connection);
  const raw = data.toString();
  connection.endpoint.frame(connection, parseJson(raw), raw);
}

function onClose(this: TaggedSocket): void {
  const connection = this[CONNECTION];
  if (connection) connection.host.forget(connection);
}

function onPong(this: TaggedSocket): void {
  const connection = this[CONNECTION];
  if (connection) connection.alive = true;
}

/** One listener for every upgraded socket: its errors end it, and nothing else needs telling. */
function ignoreError(): void {}

/** Answers an upgrade no one takes with an empty HTTP error and closes the connection. */
function refuseUpgrade(socket: Duplex, status: '400 Bad Request' | '404 Not Found'): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Protocol errors of one socket (a frame too large, a bad opcode): `ws` closes it already. */
function onSocketError(this: TaggedSocket, error: Error & { code?: string }): void {
  const connection = this[CONNECTION];
  if (connection && error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') connection.end('too_large');
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function isAuthFrame(frame: unknown): frame is AuthFrame {
  return (
    typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'auth' && typeof (frame as { token?: unknown }).token === 'string'
  );
}
