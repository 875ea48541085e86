import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { createRedis, reportRedisErrors } from '@app/runtime';
import type Redis from 'ioredis';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../metrics/gateway-metrics';

/**
 * The pod's two Redis connections: `commands` for scripts, reads and BullMQ producers, and
 * `subscriber`, which only holds the backplane's sharded subscriptions (managed by the
 * BackplaneSubscriber, which resubscribes itself after a reconnect).
 */
@Injectable()
export class RedisConnections implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  readonly commands: Redis;
  readonly subscriber: Redis;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig, metrics: GatewayMetrics) {
    this.commands = createRedis({ url: config.redisUrl, role: `gateway:${config.serverId}:commands` });
    this.subscriber = createRedis({
      url: config.redisUrl,
      role: `gateway:${config.serverId}:subscriber`,
      maxRetriesPerRequest: null,
      autoResubscribe: false,
    });
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
