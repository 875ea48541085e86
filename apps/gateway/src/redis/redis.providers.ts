import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { RedisPair } from '@app/runtime';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../metrics/gateway-metrics';

/**
 * The pod's two Redis connections: `commands` for scripts, reads and BullMQ producers, and
 * `subscriber`, which only holds the backplane's sharded subscriptions (managed by the
 * BackplaneSubscriber, which resubscribes itself after a reconnect).
 */
@Injectable()
export class RedisConnections extends RedisPair implements OnApplicationShutdown {
  private static readonly logger = new Logger('Redis');

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig, metrics: GatewayMetrics) {
    super({ url: config.redisUrl, owner: `gateway:${config.serverId}`, resubscribe: false }, (connection, error) => {
      metrics.redisErrors.inc({ connection });
      RedisConnections.logger.warn({ msg: 'redis connection error', connection, err: error.message });
    });
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }
}
