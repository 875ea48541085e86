import { Inject, Injectable, Logger } from '@nestjs/common';
import { type PublishedEvent, type PublishOptions, StreamPublisher } from '@app/backplane';
import { type BotEvent, botStream, type DagEvent, dagStream } from '@app/protocol';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { DeltaCoalescer, type PublishEvent } from './delta-coalescer';
import { WorkerMetrics } from './worker-metrics';
import { WorkerRedis } from './worker-redis';

/** Typed publishing of bot and DAG events from jobs, through the shared StreamPublisher. */
@Injectable()
export class EventSink {
  private readonly logger = new Logger('EventSink');
  readonly publisher: StreamPublisher;
  private readonly messageCoalesceMs: number;

  constructor(
    redis: WorkerRedis,
    private readonly metrics: WorkerMetrics,
    @Inject(WORKER_CONFIG) config: WorkerConfig,
  ) {
    this.publisher = new StreamPublisher(
      redis.commands,
      config.retention,
      (error, stream) => this.logger.warn({ msg: 'checkpoint compaction failed', stream, err: String(error) }),
      config.publisher,
    );
    this.messageCoalesceMs = config.messageCoalesceMs;
  }

  /**
   * What a run publishes through, so its streamed `message` deltas leave merged per
   * `MESSAGE_COALESCE_MS` window (see DeltaCoalescer): one per run, around `send`, which
   * publishes one of its events (usually {@link bot} with the run's options).
   */
  coalescer(send: PublishEvent): DeltaCoalescer {
    return new DeltaCoalescer(send, { windowMs: this.messageCoalesceMs });
  }

  async bot(botId: string, event: BotEvent, options: PublishOptions = {}): Promise<PublishedEvent> {
    const published = await this.publisher.publish(botStream(botId), event, options);
    if (!published.duplicate) this.metrics.eventsPublished.inc();
    return published;
  }

  async dag(executionId: string, event: DagEvent, options: PublishOptions = {}): Promise<PublishedEvent> {
    const published = await this.publisher.publish(dagStream(executionId), event, options);
    if (!published.duplicate) this.metrics.eventsPublished.inc();
    return published;
  }
}
