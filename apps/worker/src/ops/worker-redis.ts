import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { createRedis, reportRedisErrors } from '@app/runtime';
import type Redis from 'ioredis';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { WorkerMetrics } from './worker-metrics';

/**
 * The worker's own Redis connections (BullMQ opens its queue connections itself):
 * `commands` publishes events and updates records; `subscriber` hears control broadcasts.
 */
@Injectable()
export class WorkerRedis implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  readonly commands: Redis;
  readonly subscriber: Redis;

  constructor(@Inject(WORKER_CONFIG) config: WorkerConfig, metrics: WorkerMetrics) {
    // Publishing waits out a short Redis restart rather than failing the run.
    this.commands = createRedis({ url: config.redisUrl, role: `worker:${config.workerId}:commands`, maxRetriesPerRequest: 20 });
    this.subscriber = createRedis({ url: config.redisUrl, role: `worker:${config.workerId}:subscriber`, maxRetriesPerRequest: null });
    reportRedisErrors({ commands: this.commands, subscriber: this.subscriber }, (connection, error) => {
      metrics.redisErrors.inc({ connection });
      this.logger.warn({ msg: 'redis connection error', connection, err: error.message });
    });
  }

  get ready(): boolean {
    return this.commands.status === 'ready' && this.subscriber.status === 'ready';
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.commands.quit(), this.subscriber.quit()]);
  }
}
