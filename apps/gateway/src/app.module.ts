import { type DynamicModule, Module } from '@nestjs/common';
import { CompatModule } from './compat/compat.module';
import { ConfigModule } from './config/config.module';
import type { GatewayConfig } from './config/gateway-config';
import { HttpModule } from './http/http.module';
import { HttpReadsModule } from './http-reads/http-reads.module';
import { LifecycleModule } from './lifecycle/lifecycle.module';
import { MetricsModule } from './metrics/metrics.module';
import { PlainWsModule } from './plain-ws/plain-ws.module';
import { RealtimeModule } from './realtime/realtime.module';
import { RedisModule } from './redis/redis.module';

/** The gateway pod: only imports; each feature lives in its own module. */
@Module({})
export class AppModule {
  static forRoot(config: GatewayConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        MetricsModule,
        LifecycleModule,
        RedisModule,
        RealtimeModule,
        PlainWsModule,
        CompatModule,
        HttpModule,
        HttpReadsModule,
      ],
    };
  }
}
