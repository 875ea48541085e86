import { DEFAULT_RETENTION, type RetentionPolicy, StreamPublisher } from '@app/backplane';
import { acquireRedis, type AcquiredRedis, createRedis } from '@app/runtime';
import type { RedisClient } from '@app/runtime';
import { type AppProcess, startGateway, startWorker } from './processes';
import { testTopology } from './topology';

/**
 * A whole system for one test file: a private Redis (one server, or a cluster in the
 * `e2e-cluster` project), N gateway pods and M workers, each a separate process started
 * from the build. `stop()` tears everything down.
 */
export interface TestSystem {
  redis: AcquiredRedis;
  gateways: AppProcess[];
  workers: AppProcess[];
  /** A Redis connection for the test itself (reads, direct publishes). */
  client: RedisClient;
  publisher(retention?: RetentionPolicy): StreamPublisher;
  stop(): Promise<void>;
}

export async function startSystem({
  gateways = 2,
  workers = 1,
  env = {},
  workerEnv = {},
}: { gateways?: number; workers?: number; env?: Record<string, string>; workerEnv?: Record<string, string> } = {}): Promise<TestSystem> {
  const redis = await acquireRedis({ ownServer: true, topology: testTopology() });
  const connections: RedisClient[] = [];
  const started: AppProcess[] = [];
  try {
    const pods = await Promise.all(Array.from({ length: gateways }, (_, i) => startGateway({ redisUrl: redis.url, env }, `pod-${i + 1}`)));
    started.push(...pods);
    const runners = await Promise.all(Array.from({ length: workers }, () => startWorker({ redisUrl: redis.url, env: { ...env, ...workerEnv } })));
    started.push(...runners);
    const client = createRedis({ url: redis.url, role: 'test' });
    connections.push(client);
    return {
      redis,
      gateways: pods,
      workers: runners,
      client,
      publisher: (retention = DEFAULT_RETENTION) => {
        const connection = createRedis({ url: redis.url, role: 'test-publisher' });
        connections.push(connection);
        return new StreamPublisher(connection, retention);
      },
      stop: async () => {
        await Promise.all(started.map((p) => p.kill()));
        await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
        await redis.release();
      },
    };
  } catch (error) {
    await Promise.all(started.map((p) => p.kill()));
    await redis.release();
    throw error;
  }
}
