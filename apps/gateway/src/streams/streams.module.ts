import { Logger, Module } from '@nestjs/common';
import { StreamHistory, StreamPublisher } from '@app/backplane';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { RedisConnections } from '../redis/redis.providers';
import { BackplaneSubscriber } from './backplane-subscriber';
import { PresenceService } from './presence.service';
import { SubscriptionService } from './subscription.service';

/** Streams on the pod: the backplane subscription, subscribe/replay/snapshot, presence. */
@Module({
  providers: [
    {
      provide: StreamHistory,
      inject: [RedisConnections, GATEWAY_CONFIG],
      useFactory: (redis: RedisConnections, config: GatewayConfig) => new StreamHistory(redis.commands, config.retention),
    },
    {
      provide: StreamPublisher,
      inject: [RedisConnections, GATEWAY_CONFIG],
      useFactory: (redis: RedisConnections, config: GatewayConfig) => {
        const logger = new Logger('Publisher');
        return new StreamPublisher(
          redis.commands,
          config.retention,
          (error, stream) => logger.warn({ msg: 'checkpoint compaction failed', stream, err: String(error) }),
          config.publisher,
        );
      },
    },
    BackplaneSubscriber,
    PresenceService,
    SubscriptionService,
  ],
  exports: [StreamHistory, StreamPublisher, BackplaneSubscriber, PresenceService, SubscriptionService],
})
export class StreamsModule {}
