import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { CommandsModule } from '../commands/commands.module';
import { DomainModule } from '../domain/domain.module';
import { StreamsModule } from '../streams/streams.module';
import { RealtimeGateway } from './realtime.gateway';

@Module({ imports: [AuthModule, CommandsModule, StreamsModule, DomainModule], providers: [RealtimeGateway] })
export class RealtimeModule {}
