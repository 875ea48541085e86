import {
  type Ack,
  type BotEventPayloads,
  type BotEventType,
  type CommandPayload,
  type CommandRequest,
  type CommandResult,
  type CommandType,
  type DagEventPayloads,
  type DagEventType,
  type Envelope,
  ErrorCode,
  type HelloPayload,
  type PresenceChange,
  ProtocolError,
  type SessionHistory,
  type StreamKind,
  type StreamName,
  type CommandError,
} from '@app/protocol';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff';
import { TypedEmitter } from './emitter';
import { PendingCommands } from './pending-commands';
import { type ResyncReason, StreamStore } from './stream-store';
import type { TransportClose, TransportConnection, TransportFactory, TransportHandlers } from './transport';
import { type WebSocketConstructor, webSocketTransport } from './transports/websocket';

export type TokenSource = string | (() => string | Promise<string>);

export interface RealtimeClientOptions {
  /** Gateway URL, or several: each reconnect attempt takes the next one. */
  url: string | string[];
  /** The JWT, or a function giving a fresh one (called at every connect and before expiry). */
  token: TokenSource;
  /**
   * The wire: `'socket.io'` (PROTOCOL.md §1, the default; needs the `socket.io-client`
   * package, loaded only when chosen), `'websocket'` (the plain `/ws` of §11, no dependency),
   * or a transport factory of your own. Every transport gets the same reconnects,
   * resubscriptions and gapless stores.
   */
  transport?: 'socket.io' | 'websocket' | TransportFactory;
  /** For `transport: 'websocket'` where there is no global `WebSocket` (Node 20): the `ws` package's class. */
  WebSocket?: WebSocketConstructor;
  /** For `transport: 'socket.io'`: Socket.IO's own transports. @default ['websocket'] */
  transports?: Array<'websocket' | 'polling'>;
  /** How long `command()` keeps trying (resends included) before it fails with TIMEOUT. */
  commandTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Optional: see the history of this session right after connecting (`session_history`). */
  resumeSession?: string;
  /** Start connecting at once (default) or on `connect()`. */
  autoConnect?: boolean;
}

export type ConnectionStatus = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** The envelope type of an event type: `on('message', e => e.payload.messageId)` is typed. */
export type EnvelopeOf<T extends string> = T extends 'error'
  ? Envelope<'error', BotEventPayloads['error'] | DagEventPayloads['error']>
  : T extends BotEventType
    ? Envelope<T, BotEventPayloads[T]>
    : T extends DagEventType
      ? Envelope<T, DagEventPayloads[T]>
      : Envelope;

/** What a RealtimeClient emits besides stream events by type (`on('message', …)`). */
export interface ClientEvents {
  status: (status: ConnectionStatus) => void;
  hello: (hello: HelloPayload) => void;
  event: (envelope: Envelope) => void;
  presence: (change: PresenceChange) => void;
  session_history: (history: SessionHistory) => void;
  resync: (info: { stream: StreamName; reason: ResyncReason }) => void;
  command_error: (error: CommandError) => void;
  /** A fatal problem: the client stopped (e.g. the token is refused). */
  error: (error: ProtocolError) => void;
}

/** The store of a stream name: `subscribe('bot:demo')` gives a bot stream's store. */
export type StoreOf<S extends StreamName> = S extends `bot:${string}` ? StreamStore<'bot'> : S extends `dag:${string}` ? StreamStore<'dag'> : StreamStore;

/**
 * The typed SDK for dashboards and tests. It keeps one connection to a gateway alive, over
 * Socket.IO or the plain `/ws` (see `transport`), reconnecting with full-jitter backoff
 * capped at 30 s; resubscribes every stream from its position after a reconnect; keeps a
 * per-stream store folded with the protocol's reducers; and resends unacknowledged
 * commands with their id. None of that depends on the transport.
 */
export class RealtimeClient extends TypedEmitter<ClientEvents> {
  status: ConnectionStatus = 'idle';
  hello: HelloPayload | null = null;
  /** The connection being opened or open; its id tells its callbacks from a dropped one's. */
  private current: { id: number; transport: TransportConnection | null } | null = null;
  private readonly transportFactory: () => Promise<TransportFactory>;
  private connectionSeq = 0;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly urls: string[];
  private readonly stores = new Map<StreamName, StreamStore>();
  private readonly commands = new PendingCommands();
  private readonly typeListeners = new Map<string, Set<(envelope: Envelope) => void>>();
  private commandCounter = 0;

  constructor(private readonly options: RealtimeClientOptions) {
    super();
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (this.urls.length === 0) throw new Error('RealtimeClient needs at least one url');
    this.transportFactory = chooseTransport(options);
    if (options.autoConnect !== false) this.connect();
  }

  /** Opens the connection (again, after `close()`). */
  connect(): void {
    if (this.current || this.reconnectTimer) return;
    this.setStatus('connecting');
    this.open();
  }

  close(): void {
    this.setStatus('closed');
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.reconnectTimer = null;
    this.dropConnection();
    this.commands.failAll(new ProtocolError(ErrorCode.UNAVAILABLE, 'client closed'));
    for (const store of this.stores.values()) store.close();
    this.stores.clear();
  }

  /** Listens to stream events of one type, on every subscribed stream. */
  override on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void;
  // `error` is the client's own event (a ProtocolError): stream `error` events come through `event`.
  override on<T extends Exclude<BotEventType | DagEventType, keyof ClientEvents>>(type: T, listener: (envelope: EnvelopeOf<T>) => void): () => void;
  override on(event: string, listener: (...args: never[]) => void): () => void {
    if (event in CLIENT_EVENT_NAMES) return super.on(event as keyof ClientEvents, listener as ClientEvents[keyof ClientEvents]);
    const set = this.typeListeners.get(event) ?? new Set();
    set.add(listener as unknown as (envelope: Envelope) => void);
    this.typeListeners.set(event, set);
    return () => set.delete(listener as unknown as (envelope: Envelope) => void);
  }

  /** Sends a command; resolves with its result, rejects with a ProtocolError. */
  command<T extends CommandType>(type: T, payload: CommandPayload<T>, options: { id?: string; timeoutMs?: number } = {}): Promise<CommandResult<T>> {
    if (this.status === 'closed') return Promise.reject(new ProtocolError(ErrorCode.UNAVAILABLE, 'client closed'));
    const id = options.id ?? newCommandId(++this.commandCounter);
    return this.commands.send(type, payload, id, options.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000);
  }

  /**
   * Subscribes to a stream and resolves once its store is live. The subscription is kept
   * across reconnects: every new connection resubscribes from the store's position.
   */
  subscribe(stream: `bot:${string}`): Promise<StreamStore<'bot'>>;
  subscribe(stream: `dag:${string}`): Promise<StreamStore<'dag'>>;
  subscribe(stream: StreamName): Promise<StreamStore>;
  /**
   * Subscribes to a stream (once; later calls give the same store) and resolves with its store
   * once live: the snapshot folded, deltas applied as they come (`store.state`, `'change'`).
   */
  async subscribe<S extends StreamName>(stream: S): Promise<StoreOf<S>> {
    let store = this.stores.get(stream);
    if (!store) {
      store = new StreamStore(
        stream,
        (s, reason) => this.resubscribe(s, reason),
        (envelope) => this.dispatchEvent(envelope),
      );
      this.stores.set(stream, store);
      if (this.status === 'connected') this.sendSubscribe(store);
    }
    await store.whenLive();
    return store as StoreOf<S>;
  }

  async unsubscribe(stream: StreamName): Promise<void> {
    const store = this.stores.get(stream);
    if (!store) return;
    this.stores.delete(stream);
    store.close();
    await this.command('unsubscribe', { stream });
  }

  store<K extends StreamKind>(stream: StreamName): StreamStore<K> | undefined {
    return this.stores.get(stream) as unknown as StreamStore<K> | undefined;
  }

  /**
   * Subscribes on the current connection only: if it drops, the next connection's `hello`
   * resubscribes every store anyway, from a fresher position than this request had.
   */
  private sendSubscribe(store: StreamStore): void {
    store.beginSubscribe();
    const payload: CommandPayload<'subscribe'> = { stream: store.stream, ...(store.resumePoint() ?? {}) };
    const timeoutMs = this.options.commandTimeoutMs ?? 30_000;
    // The answer is applied inside the ack callback: the replay that follows it may be in the
    // same read, and must find the store live, not still holding (which drops a replay's copies).
    const apply = (result: CommandResult<'subscribe'>) => {
      if (this.stores.get(store.stream) === store) store.applySubscribeResult(result);
    };
    this.commands
      .send('subscribe', payload, newCommandId(++this.commandCounter), timeoutMs, false, apply)
      .catch((error: unknown) => this.subscribeFailed(store, error));
  }

  private resubscribe(store: StreamStore, reason: ResyncReason): void {
    this.emit('resync', { stream: store.stream, reason });
    if (this.status === 'connected') this.sendSubscribe(store);
  }

  private subscribeFailed(store: StreamStore, error: unknown): void {
    if (this.stores.get(store.stream) !== store || !(error instanceof ProtocolError)) return;
    if (error.code === ErrorCode.FORBIDDEN || error.code === ErrorCode.VALIDATION_FAILED) {
      // Never going to work: give the stream up and tell whoever waits on it.
      this.stores.delete(store.stream);
      store.close(error);
      this.emit('error', error);
      return;
    }
    // Lost connection: the next hello resubscribes. Superseded (CONFLICT): a newer request is on its way.
    // Anything else (TIMEOUT, UNAVAILABLE, RATE_LIMITED) on a live connection: try again shortly.
    if (error.code === ErrorCode.CONFLICT || this.status !== 'connected') return;
    setTimeout(() => {
      if (this.stores.get(store.stream) === store && this.status === 'connected' && store.status !== 'live') this.sendSubscribe(store);
    }, error.retryAfterMs ?? 1000);
  }

  private dispatchEvent(envelope: Envelope): void {
    this.emit('event', envelope);
    for (const listener of this.typeListeners.get(envelope.type) ?? []) listener(envelope);
  }

  private open(): void {
    const url = this.urls[this.attempt % this.urls.length];
    const current = { id: ++this.connectionSeq, transport: null as TransportConnection | null };
    this.current = current;
    void Promise.all([this.transportFactory(), resolveToken(this.options.token)]).then(
      ([factory, token]) => {
        if (this.current !== current) return;
        try {
          current.transport = factory({ url, token, resumeSession: this.options.resumeSession }, this.handlersFor(current.id));
        } catch (error) {
          // A URL the WebSocket constructor refuses (no scheme, a blocked port) is a mistake,
          // not a passing fault: retrying would only repeat it.
          this.fail(new ProtocolError(ErrorCode.VALIDATION_FAILED, `cannot connect to ${url}: ${error instanceof Error ? error.message : String(error)}`));
        }
      },
      (error: unknown) => {
        if (this.current !== current) return;
        if (error instanceof TransportUnavailable) return this.fail(new ProtocolError(ErrorCode.UNAVAILABLE, error.message));
        // The token function failed: try again later, as after a refused handshake.
        this.scheduleReconnect(current.id);
      },
    );
  }

  /** What the transport reports, for one connection: anything from a dropped one is ignored. */
  private handlersFor(id: number): TransportHandlers {
    const live = () => this.current?.id === id;
    return {
      hello: (hello) => {
        if (!live()) return;
        this.hello = hello;
        this.attempt = 0;
        this.setStatus('connected');
        this.emit('hello', hello);
        if (this.current?.transport) this.commands.connected(id, this.sender(this.current.transport, hello));
        for (const store of this.stores.values()) this.resubscribe(store, 'reconnect');
        this.scheduleTokenRefresh();
      },
      event: (envelope) => {
        if (live()) this.stores.get(envelope.stream)?.receive(envelope);
      },
      presence: (change) => live() && this.emit('presence', change),
      sessionHistory: (history) => live() && this.emit('session_history', history),
      commandError: (error) => live() && this.emit('command_error', error),
      draining: (notice) => live() && this.reconnectSoon(notice.reconnectInMs),
      authExpired: () => live() && this.reconnectSoon(0),
      closed: (close) => live() && this.connectionClosed(id, close),
    };
  }

  /**
   * Sends on the current transport. A command too large for the server even to read (over
   * twice `maxPayloadBytes`, PROTOCOL.md §3) would get the connection closed, and be resent
   * on the next one, and so on: it is answered here, as the server answers a smaller excess.
   */
  private sender(transport: TransportConnection, hello: HelloPayload): (request: CommandRequest, onAck: (ack: Ack) => void) => void {
    const maxFrameBytes = hello.limits.maxPayloadBytes * 2;
    return (request, onAck) => {
      const bytes = frameBytes(request, maxFrameBytes);
      if (bytes > maxFrameBytes) {
        const message = `command ${request.type} is ${bytes} bytes; the server reads at most ${maxFrameBytes}`;
        return onAck({ ok: false, error: { code: ErrorCode.PAYLOAD_TOO_LARGE, message } });
      }
      transport.send(request, onAck);
    };
  }

  private connectionClosed(id: number, close: TransportClose): void {
    if (close.reason === 'unauthorized' && typeof this.options.token === 'string') {
      // A fixed token that is refused will never work: stop instead of hammering the server.
      return this.fail(new ProtocolError(ErrorCode.UNAUTHORIZED, close.message));
    }
    if (close.reason === 'elsewhere' && (this.attempt === 0 || this.attempt + 1 < this.urls.length)) {
      // A draining pod: the next URL at once while one is untried since the last hello (a
      // single URL, behind a load balancer, once), then backoff, never a tight loop.
      return this.reconnectSoon(0);
    }
    // Lost, or refused with a token function (asked again for the next attempt): back off.
    this.scheduleReconnect(id);
  }

  private fail(error: ProtocolError): void {
    this.close();
    this.emit('error', error);
  }

  private reconnectSoon(delayMs: number): void {
    this.dropConnection();
    this.setStatus('reconnecting');
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.open();
    }, delayMs);
  }

  private scheduleReconnect(id: number): void {
    if (this.current?.id !== id || this.status === 'closed') return;
    this.reconnectSoon(backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF));
  }

  private dropConnection(): void {
    const current = this.current;
    this.current = null;
    this.hello = null;
    this.commands.disconnected();
    current?.transport?.close();
  }

  /** With a token function, refresh a minute before expiry so the connection never lapses. */
  private scheduleTokenRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (typeof this.options.token !== 'function') return;
    void resolveToken(this.options.token).then((token) => {
      const expiresAt = tokenExpiry(token);
      if (expiresAt === null) return;
      const wait = Math.max(0, expiresAt - Date.now() - 60_000);
      this.refreshTimer = setTimeout(
        async () => {
          try {
            await this.command('refresh_token', { token: await resolveToken(this.options.token) });
            this.scheduleTokenRefresh();
          } catch {
            // The server will send auth_expired; the reconnect then fetches a fresh token.
          }
        },
        Math.min(wait, 2 ** 31 - 1),
      );
    });
  }

  private setStatus(status: ConnectionStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.emit('status', status);
  }
}

const CLIENT_EVENT_NAMES: Record<keyof ClientEvents, true> = {
  status: true,
  hello: true,
  event: true,
  presence: true,
  session_history: true,
  resync: true,
  command_error: true,
  error: true,
};

async function resolveToken(source: TokenSource): Promise<string> {
  return typeof source === 'function' ? source() : source;
}

/** Reads `exp` from a JWT without verifying it (the server verifies). */
export function tokenExpiry(token: string): number | null {
  try {
    const part = token.split('.')[1];
    const json = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown };
    return typeof json.exp === 'number' ? json.exp * 1000 : null;
  } catch {
    return null;
  }
}

function newCommandId(counter: number): string {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `c-${random}-${counter}`;
}

/** The transport could not be had at all (a missing optional package): retrying will not help. */
class TransportUnavailable extends Error {}

/**
 * The transport factory the options ask for. The plain one is made at once (a missing global
 * `WebSocket` throws from the constructor); Socket.IO is imported on first use, so an
 * application on `/ws` alone never loads `socket.io-client` and need not install it.
 */
function chooseTransport(options: RealtimeClientOptions): () => Promise<TransportFactory> {
  const choice = options.transport ?? 'socket.io';
  if (typeof choice === 'function') return () => Promise.resolve(choice);
  if (choice === 'websocket') {
    const factory = webSocketTransport({ WebSocket: options.WebSocket });
    return () => Promise.resolve(factory);
  }
  if (choice !== 'socket.io') throw new Error(`unknown transport ${String(choice)}: use 'socket.io', 'websocket' or a transport factory`);
  let loading: Promise<TransportFactory> | undefined;
  return () =>
    (loading ??= import('./transports/socket-io').then(
      ({ socketIoTransport }) => socketIoTransport({ transports: options.transports }),
      (error: unknown) => {
        throw new TransportUnavailable(`the socket.io transport needs the socket.io-client package: ${error instanceof Error ? error.message : String(error)}`);
      },
    ));
}

/** The UTF-8 size of a command frame, counted exactly only when it might matter. */
function frameBytes(request: CommandRequest, limit: number): number {
  const text = JSON.stringify(request);
  // A UTF-16 unit is at most 3 UTF-8 bytes: far below the limit, nobody needs the exact count.
  return text.length * 3 <= limit ? text.length : new TextEncoder().encode(text).length;
}
