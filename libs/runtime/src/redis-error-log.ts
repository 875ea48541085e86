import { isRedisUnavailable } from './redis';

/** Where the log lines go: Nest's `Logger` fits (its lines become pino JSON lines). */
export interface ErrorLogSink {
  error(fields: Record<string, unknown>): void;
  warn(fields: Record<string, unknown>): void;
}

/** Anything that emits a connection's errors: an ioredis client, a BullMQ Queue or Worker. */
export interface ErrorSource {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** A connection whose readiness tells Redis is back (an ioredis `Redis` or `Cluster`). */
export interface WatchedConnection {
  readonly status: string;
  on(event: 'ready', listener: () => void): unknown;
}

export interface RedisErrorLogOptions {
  /** At most one summary line of repeated errors per this many ms. Default 10 s. */
  windowMs?: number;
  /** Called for every error, logged or not (for a metric). */
  onError?: (source: string, error: Error) => void;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/**
 * The one place a process's Redis errors are logged. A Redis outage makes every connection
 * fail on every reconnect attempt (a dozen connections in a worker, several times a second),
 * so errors are told once and then counted:
 * - the first "Redis cannot be reached" error logs `redis unavailable`; the same kind of error
 *   from any connection is then only counted, until the process's own connections are all
 *   ready again, which logs `redis back` with the outage's length and the counts;
 * - any other error logs once per connection and kind; repeats within the window are counted;
 * - counted errors leave as one `redis errors repeated` line per window at most.
 * Every source needs an 'error' listener anyway: ioredis and BullMQ print unlistened errors
 * to stderr, outside the JSON logs.
 */
export class RedisErrorLog {
  private readonly windowMs: number;
  private readonly lastSeen = new Map<string, number>();
  private counts = new Map<string, { connection: string; kind: string; count: number }>();
  private readonly own = new Map<string, WatchedConnection>();
  private down: { since: number; errors: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly sink: ErrorLogSink,
    private readonly options: RedisErrorLogOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 10_000;
  }

  /** Logs this source's errors here (call before the source can fail: at its creation). */
  watch(source: string, emitter: ErrorSource): void {
    emitter.on('error', (error: Error) => this.report(source, error));
  }

  /**
   * The process's own connections: Redis is `back` when all of them are ready again. Their
   * errors must still be passed to {@link report} (or {@link watch}ed).
   */
  watchAvailability(connections: Record<string, WatchedConnection>): void {
    for (const [name, connection] of Object.entries(connections)) {
      this.own.set(name, connection);
      connection.on('ready', () => this.onReady());
    }
  }

  report(source: string, error: Error): void {
    this.options.onError?.(source, error);
    const kind = errorKind(error);
    const unreachable = isUnreachable(error);
    if (unreachable && this.closed) return; // connections closing on shutdown
    if (unreachable && this.down) {
      this.down.errors++;
      return this.count(source, kind);
    }
    if (unreachable && this.ownConnectionsDown(source)) {
      this.down = { since: Date.now(), errors: 1 };
      this.sink.error({ msg: 'redis unavailable', connection: source, kind, err: error.message });
      return;
    }
    const key = `${source} ${kind}`;
    const last = this.lastSeen.get(key);
    this.lastSeen.set(key, Date.now());
    if (last !== undefined && Date.now() - last < this.windowMs) return this.count(source, kind);
    this.sink.warn({ msg: 'redis connection error', connection: source, kind, err: unreachable ? error.message : (error.stack ?? error.message) });
  }

  /** Stops logging connection losses (the process is closing its connections). */
  close(): void {
    this.closed = true;
    this.flush();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private ownConnectionsDown(source: string): boolean {
    if (this.own.size === 0) return false;
    if (this.own.has(source)) return true;
    return [...this.own.values()].some((connection) => connection.status !== 'ready' && connection.status !== 'end');
  }

  private onReady(): void {
    if (!this.down || [...this.own.values()].some((connection) => connection.status !== 'ready')) return;
    const { since, errors } = this.down;
    this.down = null;
    const counted = this.takeCounts();
    this.sink.warn({ msg: 'redis back', downMs: Date.now() - since, errors, ...(counted.length > 0 ? { counted } : {}) });
  }

  private count(connection: string, kind: string): void {
    const key = `${connection} ${kind}`;
    const entry = this.counts.get(key);
    if (entry) entry.count++;
    else this.counts.set(key, { connection, kind, count: 1 });
    if (!this.timer && !this.closed) {
      this.timer = setInterval(() => this.flush(), this.windowMs);
      this.timer.unref();
    }
  }

  private flush(): void {
    const counted = this.takeCounts();
    if (counted.length > 0) this.sink.warn({ msg: 'redis errors repeated', windowMs: this.windowMs, counted });
    else if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private takeCounts(): Array<{ connection: string; kind: string; count: number }> {
    const counted = [...this.counts.values()];
    this.counts = new Map();
    return counted;
  }
}

/** A short, stable name for an error: its system code, a Redis reply's first word, or its name. */
export function errorKind(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && code.length > 0) return code;
  return /^[A-Z][A-Z_]{2,}\b/.exec(error.message)?.[0] ?? error.name;
}

function isUnreachable(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return (typeof code === 'string' && UNREACHABLE_CODES.has(code)) || isRedisUnavailable(error);
}
