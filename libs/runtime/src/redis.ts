import Redis, { type RedisOptions } from 'ioredis';

/**
 * Redis connections of the gateway and workers. Every connection retries forever with a
 * capped backoff: a Redis restart is a pause, never a crash. `role` names the connection
 * in `CLIENT LIST` and in logs.
 */
export interface RedisConnectionOptions {
  url: string;
  role: string;
  /** BullMQ's blocking connections need `null` (never fail a command for retries). */
  maxRetriesPerRequest?: number | null;
  /** Fail commands at once while disconnected instead of queueing them. */
  failFastWhenDown?: boolean;
  lazyConnect?: boolean;
  /** Let ioredis resubscribe by itself after a reconnect (off where the owner does it). */
  autoResubscribe?: boolean;
}

export function redisOptions(options: RedisConnectionOptions): RedisOptions {
  return {
    connectionName: options.role,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 3 : options.maxRetriesPerRequest,
    enableOfflineQueue: !options.failFastWhenDown,
    lazyConnect: options.lazyConnect ?? false,
    autoResubscribe: options.autoResubscribe ?? true,
    retryStrategy: reconnectDelay,
    // A replica promoted after failover answers READONLY until we reconnect to the new primary.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  };
}

/** Capped exponential backoff between reconnect attempts: 100 ms doubling to 2 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
}

export function createRedis(options: RedisConnectionOptions): Redis {
  return new Redis(options.url, redisOptions(options));
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForReady(redis: Redis, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis (${redis.options.connectionName ?? 'connection'}) not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** True for errors that mean "Redis is not reachable right now" rather than a bug. */
export function isRedisUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|ECONNREFUSED|ECONNRESET|Stream isn't writeable|enableOfflineQueue options is false|LOADING/i.test(error.message)
  );
}

/**
 * Reports every error of these connections (ioredis reconnects by itself; an error only
 * needs counting and logging, never handling — but an unlistened 'error' would crash).
 */
export function reportRedisErrors(connections: Record<string, Redis>, report: (connection: string, error: Error) => void): void {
  for (const [name, connection] of Object.entries(connections)) connection.on('error', (error: Error) => report(name, error));
}

/**
 * A process's two own Redis connections: `commands` for scripts, reads and writes, and
 * `subscriber` for pub/sub only. Errors are reported (ioredis reconnects by itself).
 */
export class RedisPair {
  readonly commands: Redis;
  readonly subscriber: Redis;

  constructor(
    { url, owner, commandRetries, resubscribe = true }: { url: string; owner: string; commandRetries?: number; resubscribe?: boolean },
    report: (connection: string, error: Error) => void,
  ) {
    this.commands = createRedis({ url, role: `${owner}:commands`, maxRetriesPerRequest: commandRetries });
    this.subscriber = createRedis({ url, role: `${owner}:subscriber`, maxRetriesPerRequest: null, autoResubscribe: resubscribe });
    reportRedisErrors({ commands: this.commands, subscriber: this.subscriber }, report);
  }

  get ready(): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready';
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
  }
}
