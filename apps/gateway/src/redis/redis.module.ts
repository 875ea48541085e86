import { Global, Logger, Module } from '@nestjs/common';
import { RedisErrorLog } from '@app/runtime';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { RedisConnections } from './redis.providers';

/** Every Redis error of the pod (its own connections and its BullMQ queues') goes to one log. */
const redisErrorLog = {
  provide: RedisErrorLog,
  inject: [GatewayMetrics],
  useFactory: (metrics: GatewayMetrics) => new RedisErrorLog(new Logger('Redis'), { onError: (connection: string) => metrics.redisErrors.inc({ connection }) }),
};

@Global()
@Module({ providers: [redisErrorLog, RedisConnections], exports: [RedisErrorLog, RedisConnections] })
export class RedisModule {}
