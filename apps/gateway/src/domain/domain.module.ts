import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { DomainStore, QUEUE_PREFIX, QUEUES } from '@app/backplane';
import { RedisConnections } from '../redis/redis.providers';
import { StreamsModule } from '../streams/streams.module';
import { BotCommands } from './bot-commands.service';
import { DagCommands } from './dag-commands.service';
import { InboundService } from './inbound.service';
import { queueErrorLogging } from './queue-errors';
import { SessionsService } from './sessions.service';

/**
 * Completed jobs are kept a day: BullMQ dedupes a job id only while the job exists. A job
 * that failed on a fault (Redis away longer than a worker's retries) is tried again; every
 * processor is written to be safe to repeat.
 */
const defaultJobOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 24 * 3600, count: 50_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** The bot and DAG commands that start or steer work on workers. */
@Module({
  imports: [
    StreamsModule,
    BullModule.forRootAsync({
      inject: [RedisConnections],
      // Producers share the pod's command connection: a queued job is one round trip.
      useFactory: (redis: RedisConnections) => ({ connection: redis.commands, prefix: QUEUE_PREFIX, defaultJobOptions }),
    }),
    BullModule.registerQueue(...Object.values(QUEUES).map((name) => ({ name }))),
  ],
  providers: [
    { provide: DomainStore, inject: [RedisConnections], useFactory: (redis: RedisConnections) => new DomainStore(redis.commands) },
    SessionsService,
    BotCommands,
    DagCommands,
    InboundService,
    queueErrorLogging,
  ],
  exports: [SessionsService, BotCommands, DagCommands, InboundService, DomainStore],
})
export class DomainModule {}
