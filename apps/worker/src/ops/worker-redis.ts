import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { RedisPair } from '@app/runtime';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { WorkerMetrics } from './worker-metrics';

/**
 * The worker's own Redis connections (BullMQ opens its queue connections itself):
 * `commands` publishes events and updates records; `subscriber` hears control broadcasts.
 */
@Injectable()
export class WorkerRedis extends RedisPair implements OnApplicationShutdown {
  private static readonly logger = new Logger('Redis');

  constructor(@Inject(WORKER_CONFIG) config: WorkerConfig, metrics: WorkerMetrics) {
    // Publishing waits out a short Redis restart rather than failing the run.
    super({ url: config.redisUrl, owner: `worker:${config.workerId}`, commandRetries: 20 }, (connection, error) => {
      metrics.redisErrors.inc({ connection });
      WorkerRedis.logger.warn({ msg: 'redis connection error', connection, err: error.message });
    });
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }
}
