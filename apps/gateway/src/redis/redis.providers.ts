import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { type RedisClient, RedisErrorLog, RedisPair } from '@app/runtime';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';

/**
 * The pod's two Redis connections: `commands` for scripts, reads and BullMQ producers, and
 * `subscriber`, which only holds the backplane's sharded subscriptions (managed by the
 * BackplaneSubscriber, which resubscribes itself after a reconnect, and replaces the
 * connection when a reconnect does not bring its probe back).
 */
@Injectable()
export class RedisConnections extends RedisPair implements OnApplicationShutdown {
  constructor(
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    private readonly errors: RedisErrorLog,
  ) {
    super({ url: config.redisUrl, owner: `gateway:${config.serverId}`, resubscribe: false }, (connection, error) => errors.report(connection, error));
    errors.watchAvailability({ commands: this.commands, subscriber: this.subscriber });
  }

  override renewSubscriber(): RedisClient {
    const subscriber = super.renewSubscriber();
    this.errors.watchAvailability({ subscriber });
    return subscriber;
  }

  onApplicationShutdown(): Promise<void> {
    this.errors.close();
    return this.close();
  }
}
