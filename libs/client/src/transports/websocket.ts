import { type Ack, PLAIN_WS_PATH, type PlainServerFrame, WsCloseCode } from '@app/protocol';
import type { TransportClose, TransportFactory, TransportHandlers, TransportTarget } from '../transport';

/**
 * What the plain transport needs of a WebSocket: the browser's (and Node ≥ 22's global)
 * `WebSocket` and the `ws` package's class both fit, so neither is imported here.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WebSocketTransportOptions {
  /**
   * The WebSocket class. Default: the global `WebSocket` (browsers, Node ≥ 22). On Node 20
   * pass the `ws` package's class.
   */
  WebSocket?: WebSocketConstructor;
  /**
   * A connection with no `hello` by then is given up and retried (the browser API has no
   * connect timeout of its own). @default 20000, as socket.io-client's `timeout`.
   */
  helloTimeoutMs?: number;
  /**
   * Silence after which a connection is taken for dead (the server sends at least a heartbeat
   * frame every `hello.heartbeatMs`). @default twice `heartbeatMs` plus 5 s
   */
  deadAfterMs?: number;
}

const OPEN = 1;

/**
 * The plain-WebSocket transport (PROTOCOL.md §11): `/ws` with the token in the query, JSON
 * text frames `{ kind, … }` from the server, command envelopes from the client, each answered
 * by one `ack` frame with the command's id.
 */
export function webSocketTransport(options: WebSocketTransportOptions = {}): TransportFactory {
  const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!WebSocketClass) {
    throw new Error(
      'no global WebSocket here (Node < 22): pass the class of the `ws` package as `WebSocket` (a client option, or webSocketTransport({ WebSocket }))',
    );
  }
  const helloTimeoutMs = options.helloTimeoutMs ?? 20_000;

  return (target, handlers) => {
    const socket = new WebSocketClass(plainWsUrl(target));
    const acks = new Map<string, (ack: Ack) => void>();
    let done = false;
    let greeted = false;
    let lastFrameAt = Date.now();
    let watchdog: ReturnType<typeof setInterval> | undefined;

    const stopTimers = (): void => {
      clearTimeout(helloTimer);
      clearInterval(watchdog);
    };
    const finish = (close: TransportClose): void => {
      if (done) return;
      done = true;
      stopTimers();
      acks.clear();
      handlers.closed(close);
    };
    /**
     * The server sends something at least every `heartbeatMs` (a heartbeat frame when there is
     * nothing else); silence for twice that means the connection is gone without a close —
     * a laptop that slept, a NAT that forgot — which the browser API would never report.
     */
    const watch = (heartbeatMs: number): void => {
      const limit = options.deadAfterMs ?? 2 * heartbeatMs + 5_000;
      clearInterval(watchdog);
      watchdog = setInterval(
        () => {
          if (Date.now() - lastFrameAt <= limit) return;
          finish({ reason: 'lost', message: `nothing from the server for ${limit} ms` });
          socket.close();
        },
        Math.max(50, Math.min(heartbeatMs, limit / 2)),
      );
      (watchdog as { unref?: () => void }).unref?.();
    };
    const helloTimer = setTimeout(() => {
      finish({ reason: 'lost', message: `no hello within ${helloTimeoutMs} ms` });
      socket.close();
    }, helloTimeoutMs);

    // Browsers and `ws` report a failure as `error` then `close`; the close carries the code.
    socket.addEventListener('error', () => undefined);
    socket.addEventListener('close', (event) => finish(classifyClose(event.code, event.reason)));
    socket.addEventListener('message', (event) => {
      if (done) return;
      lastFrameAt = Date.now();
      const frame = typeof event.data === 'string' ? parseFrame(event.data) : undefined;
      if (!frame) {
        // A server we cannot read is one we cannot follow: start over on a new connection.
        finish({ reason: 'lost', message: 'the server sent a frame that is not a JSON object with a kind' });
        socket.close();
        return;
      }
      if (frame.kind === 'hello') {
        greeted = true;
        clearTimeout(helloTimer);
        watch(frame.heartbeatMs);
      }
      dispatch(frame, handlers, acks);
    });

    return {
      send(request, onAck) {
        if (done || !greeted || socket.readyState !== OPEN) return; // its `closed` is coming; the client resends
        acks.set(request.id, onAck);
        socket.send(JSON.stringify(request));
      },
      close() {
        done = true;
        stopTimers();
        acks.clear();
        socket.close(1000);
      },
    };
  };
}

/**
 * `http(s)://host` or `ws(s)://host` → `ws(s)://host/ws?token=…`. A URL with a path of its
 * own (a gateway behind a prefix) is taken as the full `/ws` address.
 */
export function plainWsUrl({ url, token, resumeSession }: TransportTarget): string {
  const target = new URL(url);
  if (target.protocol === 'http:') target.protocol = 'ws:';
  else if (target.protocol === 'https:') target.protocol = 'wss:';
  if (target.pathname === '' || target.pathname === '/') target.pathname = PLAIN_WS_PATH;
  target.searchParams.set('token', token);
  if (resumeSession !== undefined) target.searchParams.set('resume_session', resumeSession);
  return target.toString();
}

/** The contract's close codes (PROTOCOL.md §11) as the client's reconnect policy sees them. */
export function classifyClose(code: number, reason: string): TransportClose {
  if (code === WsCloseCode.UNAUTHORIZED) return { reason: 'unauthorized', message: reason || 'UNAUTHORIZED' };
  if (code === WsCloseCode.DRAINING) return { reason: 'elsewhere' };
  return { reason: 'lost', message: `closed ${code}${reason ? ` ${reason}` : ''}` };
}

function dispatch(frame: PlainServerFrame, handlers: TransportHandlers, acks: Map<string, (ack: Ack) => void>): void {
  switch (frame.kind) {
    case 'ack': {
      const { kind: _kind, id, ...ack } = frame;
      const onAck = acks.get(id);
      acks.delete(id);
      return onAck?.(ack as Ack);
    }
    case 'event': {
      const { kind: _kind, ...envelope } = frame;
      return handlers.event(envelope);
    }
    case 'hello': {
      const { kind: _kind, ...hello } = frame;
      return handlers.hello(hello);
    }
    case 'presence': {
      const { kind: _kind, ...change } = frame;
      return handlers.presence(change);
    }
    case 'session_history': {
      const { kind: _kind, ...history } = frame;
      return handlers.sessionHistory(history);
    }
    case 'command_error': {
      const { kind: _kind, ...error } = frame;
      return handlers.commandError(error);
    }
    case 'draining': {
      const { kind: _kind, ...notice } = frame;
      return handlers.draining(notice);
    }
    case 'auth_expired':
      return handlers.authExpired();
    case 'heartbeat':
      return; // it counted as a frame: the connection lives
    default:
      // A kind added to the protocol after this client was built: nothing here knows it.
      return;
  }
}

function parseFrame(text: string): PlainServerFrame | undefined {
  try {
    const frame: unknown = JSON.parse(text);
    return typeof frame === 'object' && frame !== null && typeof (frame as { kind?: unknown }).kind === 'string' ? (frame as PlainServerFrame) : undefined;
  } catch {
    return undefined;
  }
}
