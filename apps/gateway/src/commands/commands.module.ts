import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { DomainModule } from '../domain/domain.module';
import { StreamsModule } from '../streams/streams.module';
import { CommandDispatcher } from './command-dispatcher';
import { CommandHandlers } from './command-handlers';
import { IdempotencyStore } from './idempotency.store';

/** The `command` pipeline: limits, validation, idempotency, one handler per type. */
@Module({
  imports: [AuthModule, StreamsModule, DomainModule],
  providers: [CommandDispatcher, CommandHandlers, IdempotencyStore],
  exports: [CommandDispatcher],
})
export class CommandsModule {}
