import { RedisClusterProcess } from './redis-cluster';
import { RedisServerProcess, type RedisServerOptions } from './redis-server';
import { redisUrlFromEnv } from './redis-target';

/**
 * Finds a Redis for tests and for the embedded default, in this order:
 *   1. `REDIS_URL` or `REDIS_CLUSTER_NODES`, if set (nothing is started, nothing is stopped);
 *   2. a private `redis-server` from PATH on a free loopback port;
 *   3. a `@testcontainers/redis` container, where a Docker engine answers;
 *   4. otherwise an error that says how to get one.
 * Only 2 and 3 can be restarted on purpose (`restart`), which fault tests need.
 */
export interface AcquiredRedis {
  /** `redis://…`, or `redis+cluster://…` for a cluster. */
  url: string;
  kind: 'url' | 'process' | 'container' | 'cluster';
  /** The private cluster, for tests that fail masters over (kind `cluster` only). */
  cluster?: RedisClusterProcess;
  /** Restarts the server keeping (default) or wiping its data; absent for `REDIS_URL`. */
  restart?: (options?: { wipe?: boolean }) => Promise<void>;
  /** Stops the server until `start` (for tests of a Redis outage); absent for `REDIS_URL`. */
  stop?: () => Promise<void>;
  start?: () => Promise<void>;
  release(): Promise<void>;
}

export interface AcquireOptions extends RedisServerOptions {
  /** Ignore `REDIS_URL` (a test that must own its server). */
  ownServer?: boolean;
  /**
   * `cluster`: a private 3-master Redis Cluster with a replica each (loopback ports)
   * instead of one server. Tests choose it by `TEST_REDIS_TOPOLOGY=cluster`.
   */
  topology?: 'single' | 'cluster';
  env?: NodeJS.ProcessEnv;
}

export async function acquireRedis(options: AcquireOptions = {}): Promise<AcquiredRedis> {
  const env = options.env ?? process.env;
  const configured = redisUrlFromEnv(env);
  if (configured && !options.ownServer) {
    return { url: configured, kind: 'url', release: async () => undefined };
  }
  if (options.topology === 'cluster') {
    // A 3 s node timeout: a whole-cluster restart does not promote replicas of masters that
    // are merely slow to load, and a killed master stays visibly down for a few seconds.
    const cluster = await RedisClusterProcess.start({ persistent: options.persistent, nodeTimeoutMs: 3000 });
    return {
      url: cluster.url,
      kind: 'cluster',
      cluster,
      restart: (o) => cluster.restart(o),
      stop: () => cluster.stop(),
      start: () => cluster.start(),
      release: () => cluster.dispose(),
    };
  }
  if (RedisServerProcess.isAvailable(options.binary)) {
    const server = await RedisServerProcess.start(options);
    return {
      url: server.url,
      kind: 'process',
      restart: (o) => server.restart(o),
      stop: () => server.stop(),
      start: () => server.restart(),
      release: () => server.dispose(),
    };
  }
  const container = await startContainer();
  if (container) return container;
  throw new Error(
    'No Redis available: set REDIS_URL to a Redis 7 server, or install redis-server ' +
      '(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis), ' +
      'or run a Docker engine for @testcontainers/redis.',
  );
}

async function startContainer(): Promise<AcquiredRedis | null> {
  let RedisContainer: typeof import('@testcontainers/redis').RedisContainer;
  try {
    ({ RedisContainer } = await import('@testcontainers/redis'));
  } catch {
    return null; // not installed (production images leave dev dependencies out)
  }
  try {
    let started = await new RedisContainer('redis:7-alpine').start();
    return {
      url: started.getConnectionUrl(),
      kind: 'container',
      restart: async () => {
        await started.restart();
      },
      stop: async () => {
        await started.stop({ remove: false });
      },
      start: async () => {
        started = await new RedisContainer('redis:7-alpine').start();
      },
      release: async () => {
        await started.stop();
      },
    };
  } catch {
    return null; // no Docker engine answered
  }
}
