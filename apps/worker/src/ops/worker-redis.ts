import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { RedisErrorLog, RedisPair } from '@app/runtime';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';

/**
 * The worker's own Redis connections (BullMQ opens its queue connections itself):
 * `commands` publishes events and updates records; `subscriber` hears control broadcasts.
 */
@Injectable()
export class WorkerRedis extends RedisPair implements OnApplicationShutdown {
  constructor(
    @Inject(WORKER_CONFIG) config: WorkerConfig,
    private readonly errors: RedisErrorLog,
  ) {
    // Publishing waits out a short Redis restart rather than failing the run.
    super({ url: config.redisUrl, owner: `worker:${config.workerId}`, commandRetries: 20 }, (connection, error) => errors.report(connection, error));
    errors.watchAvailability({ commands: this.commands, subscriber: this.subscriber });
  }

  onApplicationShutdown(): Promise<void> {
    this.errors.close();
    return this.close();
  }
}
