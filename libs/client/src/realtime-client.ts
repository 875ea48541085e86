import {
  type Ack,
  type BotEventPayloads,
  type BotEventType,
  type ClientToServerEvents,
  type CommandPayload,
  type CommandResult,
  type CommandType,
  type DagEventPayloads,
  type DagEventType,
  type DrainingNotice,
  type Envelope,
  ErrorCode,
  type HelloPayload,
  type PresenceChange,
  ProtocolError,
  type ServerToClientEvents,
  type SessionHistory,
  type StreamKind,
  type StreamName,
  type CommandError,
} from '@app/protocol';
import { io, type Socket } from 'socket.io-client';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff';
import { TypedEmitter } from './emitter';
import { PendingCommands } from './pending-commands';
import { type ResyncReason, StreamStore } from './stream-store';

export type TokenSource = string | (() => string | Promise<string>);

export interface RealtimeClientOptions {
  /** Gateway URL, or several: each reconnect attempt takes the next one. */
  url: string | string[];
  /** The JWT, or a function giving a fresh one (called at every connect and before expiry). */
  token: TokenSource;
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

interface ClientEvents {
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

type RawSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** The store of a stream name: `subscribe('bot:demo')` gives a bot stream's store. */
export type StoreOf<S extends StreamName> = S extends `bot:${string}` ? StreamStore<'bot'> : S extends `dag:${string}` ? StreamStore<'dag'> : StreamStore;

/**
 * The typed SDK for dashboards and tests. It keeps one connection to a gateway alive
 * (reconnecting with full-jitter backoff capped at 30 s), resubscribes every stream from
 * its position after a reconnect, keeps a per-stream store folded with the protocol's
 * reducers, and resends unacknowledged commands with their id.
 */
export class RealtimeClient extends TypedEmitter<ClientEvents> {
  status: ConnectionStatus = 'idle';
  hello: HelloPayload | null = null;
  private socket: RawSocket | null = null;
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
    if (options.autoConnect !== false) this.connect();
  }

  /** Opens the connection (again, after `close()`). */
  connect(): void {
    if (this.socket || this.reconnectTimer) return;
    this.setStatus('connecting');
    this.open();
  }

  close(): void {
    this.setStatus('closed');
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.reconnectTimer = null;
    this.dropSocket();
    this.commands.failAll(new ProtocolError(ErrorCode.UNAVAILABLE, 'client closed'));
    for (const store of this.stores.values()) store.close();
    this.stores.clear();
  }

  /** Listens to stream events of one type, on every subscribed stream. */
  override on<T extends BotEventType | DagEventType>(type: T, listener: (envelope: EnvelopeOf<T>) => void): () => void;
  override on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void;
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
    const connection = ++this.connectionSeq;
    const socket: RawSocket = io(url, {
      transports: this.options.transports ?? ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: (cb) => {
        void resolveToken(this.options.token).then(
          (token) => cb({ token }),
          () => cb({ token: '' }),
        );
      },
      ...(this.options.resumeSession ? { query: { resume_session: this.options.resumeSession } } : {}),
    });
    this.socket = socket;

    socket.on('hello', (hello) => {
      this.hello = hello;
      this.attempt = 0;
      this.setStatus('connected');
      this.emit('hello', hello);
      this.commands.connected(connection, (request, onAck) => socket.emit('command', request, onAck as (ack: Ack) => void));
      for (const store of this.stores.values()) this.resubscribe(store, 'reconnect');
      this.scheduleTokenRefresh();
    });
    socket.on('event', (envelope) => this.stores.get(envelope.stream)?.receive(envelope));
    socket.on('presence', (change) => this.emit('presence', change));
    socket.on('session_history', (history) => this.emit('session_history', history));
    socket.on('command_error', (error) => this.emit('command_error', error));
    socket.on('draining', (notice: DrainingNotice) => this.reconnectSoon(socket, notice.reconnectInMs));
    socket.on('auth_expired', () => this.reconnectSoon(socket, 0));
    socket.on('connect_error', (error: Error & { data?: { code?: string; message?: string } }) => {
      if (error.data?.code === ErrorCode.UNAUTHORIZED && typeof this.options.token === 'string') {
        // A fixed token that is refused will never work: stop instead of hammering the server.
        this.close();
        this.emit('error', new ProtocolError(ErrorCode.UNAUTHORIZED, error.data.message ?? 'unauthorized'));
        return;
      }
      this.scheduleReconnect(socket);
    });
    socket.on('disconnect', () => this.scheduleReconnect(socket));
  }

  private reconnectSoon(socket: RawSocket, delayMs: number): void {
    if (this.socket !== socket) return;
    this.dropSocket();
    this.setStatus('reconnecting');
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.open();
    }, delayMs);
  }

  private scheduleReconnect(socket: RawSocket): void {
    if (this.socket !== socket || this.status === 'closed') return;
    this.reconnectSoon(socket, backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF));
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = null;
    this.hello = null;
    this.commands.disconnected();
    if (socket) {
      socket.removeAllListeners();
      socket.close();
    }
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
