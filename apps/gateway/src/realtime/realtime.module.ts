import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { CommandsModule } from '../commands/commands.module';
import { DomainModule } from '../domain/domain.module';
import { StreamsModule } from '../streams/streams.module';
import { ConnectionCore } from './connection-core';
import { RealtimeGateway } from './realtime.gateway';

@Module({ imports: [AuthModule, CommandsModule, StreamsModule, DomainModule], providers: [ConnectionCore, RealtimeGateway], exports: [ConnectionCore] })
export class RealtimeModule {}
