import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DomainStore, RUN_CANCEL_CHANNEL } from '@app/backplane';
import { WorkerRedis } from '../ops/worker-redis';

/** How often a running run re-reads its record for a cancel it may have missed. */
const POLL_MS = 500;

/**
 * Cancels runs wherever they execute. BullMQ has no queue-wide cancel, so the control
 * job broadcasts the run id; the worker holding that run aborts it. A run also re-reads
 * its record now and then, so a broadcast lost in a reconnect only delays the cancel.
 */
@Injectable()
export class RunCancellation implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('RunCancellation');
  private readonly running = new Map<string, AbortController>();
  private poller: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: WorkerRedis,
    private readonly store: DomainStore,
  ) {}

  async onModuleInit(): Promise<void> {
    this.redis.subscriber.on('message', (channel: string, runId: string) => {
      if (channel === RUN_CANCEL_CHANNEL) this.running.get(runId)?.abort('cancelled');
    });
    await this.redis.subscriber.subscribe(RUN_CANCEL_CHANNEL);
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    this.poller.unref();
  }

  /** Not onModuleDestroy: runs still finishing during a graceful stop keep their cancel poll. */
  onApplicationShutdown(): void {
    if (this.poller) clearInterval(this.poller);
  }

  /** Registers a run that starts on this worker; the signal fires when it is cancelled. */
  track(runId: string): { signal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    this.running.set(runId, controller);
    return { signal: controller.signal, done: () => this.running.delete(runId) };
  }

  async broadcast(runId: string): Promise<void> {
    await this.redis.commands.publish(RUN_CANCEL_CHANNEL, runId);
  }

  private async poll(): Promise<void> {
    for (const [runId, controller] of this.running) {
      try {
        const run = await this.store.getRun(runId);
        if (run?.cancelRequested) controller.abort('cancelled');
      } catch (error) {
        this.logger.debug({ msg: 'cancel poll failed', runId, err: String(error) });
        return;
      }
    }
  }
}
