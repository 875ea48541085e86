import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DAG_ABORT_CHANNEL, DomainStore, type ExecutionStatus } from '@app/backplane';
import { WorkerRedis } from '../ops/worker-redis';

/** The reason a node job is cancelled with when its execution stops (cancel, fail_execution, budget). */
export const NODE_ABORT_REASON = 'the execution is stopping';

/** How often the executions with node jobs running here are re-read for a stop a broadcast missed. */
const POLL_MS = 500;
const STOPPING: ReadonlySet<ExecutionStatus> = new Set(['cancelling', 'failing']);

/**
 * Aborts running node jobs of an execution wherever they run. BullMQ has no queue-wide
 * cancel, so the step that stops an execution broadcasts its id and each worker cancels its
 * own jobs of it (BullMQ job cancellation: the processor's signal aborts). Each worker also
 * re-reads the executions it runs nodes of twice a second, so a broadcast lost in a
 * reconnect only delays the abort, as for agent runs (RunCancellation).
 */
@Injectable()
export class NodeAborts implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('NodeAborts');
  private readonly running = new Map<string, Map<string, () => void>>();
  private poller: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: WorkerRedis,
    private readonly store: DomainStore,
  ) {}

  async onModuleInit(): Promise<void> {
    this.redis.subscriber.on('message', (channel: string, executionId: string) => {
      if (channel === DAG_ABORT_CHANNEL) this.abortAll(executionId);
    });
    await this.redis.subscriber.subscribe(DAG_ABORT_CHANNEL);
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    this.poller.unref();
  }

  /** Not onModuleDestroy: nodes still finishing during a graceful stop keep their abort poll. */
  onApplicationShutdown(): void {
    if (this.poller) clearInterval(this.poller);
  }

  /** Registers a node job running here; `cancel` is called (once) if its execution stops. Returns the release. */
  track(executionId: string, jobId: string, cancel: () => void): () => void {
    let jobs = this.running.get(executionId);
    if (!jobs) this.running.set(executionId, (jobs = new Map()));
    let cancelled = false;
    jobs.set(jobId, () => {
      if (cancelled) return;
      cancelled = true;
      cancel();
    });
    return () => {
      jobs.delete(jobId);
      if (jobs.size === 0) this.running.delete(executionId);
    };
  }

  async broadcast(executionId: string): Promise<void> {
    await this.redis.commands.publish(DAG_ABORT_CHANNEL, executionId);
  }

  private abortAll(executionId: string): void {
    for (const cancel of [...(this.running.get(executionId)?.values() ?? [])]) cancel();
  }

  private async poll(): Promise<void> {
    for (const executionId of [...this.running.keys()]) {
      try {
        const execution = await this.store.getExecution(executionId);
        if (execution && STOPPING.has(execution.status)) this.abortAll(executionId);
      } catch (error) {
        this.logger.debug({ msg: 'abort poll failed', executionId, err: String(error) });
        return;
      }
    }
  }
}
