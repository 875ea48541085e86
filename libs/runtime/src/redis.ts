import Redis, { Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';
import { parseRedisUrl } from './redis-target';
import { withTimeout } from './with-timeout';

/** A connection to a single Redis or to a Redis Cluster: both speak every command we use. */
export type RedisClient = Redis | Cluster;

/**
 * Redis connections of the gateway and workers. Every connection retries forever with a
 * capped backoff: a Redis restart is a pause, never a crash. `role` names the connection
 * in `CLIENT LIST` and in logs.
 */
export interface RedisConnectionOptions {
  /** `redis://`, `rediss://` or `redis+cluster://host:port,…` (see redis-target.ts). */
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

/**
 * How often a cluster connection re-reads the slot map. Without it a sharded subscription
 * was silently lost in 3 of 18 manual failovers here (0 of 32 with it): ioredis moves a
 * subscription to the new master only when it notices the topology change.
 */
export const CLUSTER_SLOTS_REFRESH_MS = 2000;

export function clusterOptions(options: RedisConnectionOptions, auth: { username?: string; password?: string; tls: boolean }): ClusterOptions {
  const perNode = redisOptions(options);
  return {
    // SSUBSCRIBE goes to the node that owns the channel's slot, on a connection of its own.
    shardedSubscribers: true,
    slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
    enableOfflineQueue: perNode.enableOfflineQueue,
    lazyConnect: perNode.lazyConnect,
    maxRedirections: 16,
    // A failover takes the cluster a few seconds: keep trying, as a single connection does.
    clusterRetryStrategy: reconnectDelay,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    redisOptions: {
      connectionName: perNode.connectionName,
      maxRetriesPerRequest: perNode.maxRetriesPerRequest,
      username: auth.username,
      password: auth.password,
      tls: auth.tls ? {} : undefined,
      reconnectOnError: perNode.reconnectOnError,
    },
  };
}

/** A connection to the Redis the URL names: a single server or a cluster. */
export function createRedis(options: RedisConnectionOptions): RedisClient {
  const target = parseRedisUrl(options.url);
  if (target.kind === 'single') return new Redis(target.url, redisOptions(options));
  const cluster = new Cluster(target.nodes, clusterOptions(options, target));
  // While the whole cluster is unreachable, ioredis keeps commands in its offline queue with
  // no retry limit, so a request would hang instead of failing UNAVAILABLE as it does on one
  // server (maxRetriesPerRequest). Connections with a retry limit queue only until the
  // cluster is first ready (start-up), then fail fast; ioredis reads the option per command.
  if (options.maxRetriesPerRequest !== null) cluster.once('ready', () => (cluster.options.enableOfflineQueue = false));
  return cluster;
}

/**
 * The connection BullMQ's queues and workers are built from. For one server: options, so
 * each queue and worker opens (and closes) its own connections. For a cluster: one shared
 * `Cluster` (BullMQ cannot build a cluster from options); each worker duplicates it for its
 * blocking connection, and the owner quits it after the workers closed.
 */
export function bullConnection(url: string, role: string): ConnectionOptions {
  const target = parseRedisUrl(url);
  // Workers block on their queues: BullMQ needs maxRetriesPerRequest null there.
  if (target.kind === 'cluster') return createRedis({ url, role, maxRetriesPerRequest: null });
  // BullMQ reads `url` itself (ioredis options have no such field).
  return { url: target.url, connectionName: role, maxRetriesPerRequest: null, retryStrategy: reconnectDelay } as ConnectionOptions;
}

/** The name a connection was given (`role`), for messages. */
export function connectionNameOf(redis: RedisClient): string {
  return (redis instanceof Cluster ? redis.options.redisOptions?.connectionName : redis.options.connectionName) ?? 'connection';
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForReady(redis: RedisClient, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis (${connectionNameOf(redis)}) not ready after ${timeoutMs} ms`));
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
    error.name === 'ClusterAllFailedError' ||
    /Connection is closed|ECONNREFUSED|ECONNRESET|Stream isn't writeable|enableOfflineQueue options is false|LOADING|CLUSTERDOWN|TRYAGAIN|Too many Cluster redirections|Cluster is ended|Failed to refresh slots cache|None of startup nodes is available/i.test(
      error.message,
    )
  );
}

/**
 * Reports every error of these connections (ioredis reconnects by itself; an error only
 * needs counting and logging, never handling — but an unlistened 'error' would crash).
 */
export function reportRedisErrors(connections: Record<string, RedisClient>, report: (connection: string, error: Error) => void): void {
  for (const [name, connection] of Object.entries(connections)) connection.on('error', (error: Error) => report(name, error));
}

/**
 * A process's two own Redis connections: `commands` for scripts, reads and writes, and
 * `subscriber` for pub/sub only. Errors are reported (ioredis reconnects by itself).
 */
export class RedisPair {
  readonly commands: RedisClient;
  private subscriberConnection: RedisClient;
  private readonly subscriberOptions: RedisConnectionOptions;
  /** Cluster only: whether every master answered the last health check (see {@link ready}). */
  private mastersAnswer = true;
  private readonly healthTimer: NodeJS.Timeout | null = null;

  constructor(
    { url, owner, commandRetries, resubscribe = true }: { url: string; owner: string; commandRetries?: number; resubscribe?: boolean },
    private readonly report: (connection: string, error: Error) => void,
  ) {
    this.commands = createRedis({ url, role: `${owner}:commands`, maxRetriesPerRequest: commandRetries });
    this.subscriberOptions = { url, role: `${owner}:subscriber`, maxRetriesPerRequest: null, autoResubscribe: resubscribe };
    this.subscriberConnection = createRedis(this.subscriberOptions);
    reportRedisErrors({ commands: this.commands, subscriber: this.subscriberConnection }, report);
    // A cluster connection stays `ready` while its nodes are down (it only reroutes), so
    // readiness there also needs every master to answer a PING.
    const commands = this.commands;
    if (commands instanceof Cluster) {
      this.healthTimer = setInterval(() => void this.checkMasters(commands), CLUSTER_HEALTH_CHECK_MS);
      this.healthTimer.unref();
    }
  }

  /** The pub/sub connection (a new one after {@link renewSubscriber}: read it when needed, do not keep it). */
  get subscriber(): RedisClient {
    return this.subscriberConnection;
  }

  /**
   * Closes the subscriber connection and opens a new one, for an owner that found the old one
   * beyond repair: a reconnect keeps the client object and whatever state of it went wrong
   * (ioredis 6.0.0's cluster subscriber group can wait forever on a shard subscriber that was
   * stopped while it connected, and then never subscribes that shard again). The new
   * connection subscribes to nothing: the owner subscribes again once it is `ready`.
   */
  renewSubscriber(): RedisClient {
    const old = this.subscriberConnection;
    this.subscriberConnection = createRedis(this.subscriberOptions);
    reportRedisErrors({ subscriber: this.subscriberConnection }, this.report);
    // What the old one says while it winds down is not the subscriber's state any more
    // (an 'error' must still have a listener, or it would crash the process).
    old.removeAllListeners('error');
    old.on('error', () => undefined);
    old.disconnect();
    return this.subscriberConnection;
  }

  /** Both connections are up (and, on a cluster, every master answered the last check). */
  get ready(): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready' && this.mastersAnswer;
  }

  async close(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
  }

  /**
   * Every master the slot table names answers a PING. The slot table, not the connections
   * ioredis holds: a killed master's connection ends and ioredis drops it from `nodes()` at
   * once, while its slots (which answer nothing until a replica takes over) still name it
   * until the next slots refresh after the failover — checking `nodes()` alone kept a pod
   * ready through a master's death whenever the PING missed that short window.
   */
  private async checkMasters(cluster: Cluster): Promise<void> {
    const connected = new Map(cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
    const named = new Set(cluster.slots.map((owners) => owners?.[0]).filter((key): key is string => typeof key === 'string'));
    const pings = [...named].map((key) => {
      const node = connected.get(key);
      if (!node) return Promise.resolve(false);
      return withTimeout(node.ping(), CLUSTER_HEALTH_CHECK_MS, 'a PING answer').then(
        (reply) => reply === 'PONG',
        () => false,
      );
    });
    this.mastersAnswer = pings.length > 0 && (await Promise.all(pings)).every(Boolean);
  }
}

/** How often a cluster pair checks that every master answers (its readiness). */
const CLUSTER_HEALTH_CHECK_MS = 1000;
