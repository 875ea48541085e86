import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { DomainModule } from '../domain/domain.module';
import { StreamsModule } from '../streams/streams.module';
import { BackplaneDeadline } from './backplane-deadline';
import { HealthController } from './health.controller';
import { PublishController } from './publish.controller';

/** The gateway's HTTP surface: health, readiness, metrics and the publish API. */
@Module({ imports: [AuthModule, StreamsModule, DomainModule], controllers: [HealthController, PublishController], providers: [BackplaneDeadline] })
export class HttpModule {}
