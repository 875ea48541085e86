import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DAG_ABORT_CHANNEL } from '@app/backplane';
import { WorkerRedis } from '../ops/worker-redis';

/** The reason a node job is cancelled with when its execution stops (cancel, fail_execution, budget). */
export const NODE_ABORT_REASON = 'the execution is stopping';

/**
 * Aborts running node jobs of an execution wherever they run. BullMQ has no queue-wide
 * cancel, so the step that stops an execution broadcasts its id and each worker cancels its
 * own jobs of it (BullMQ job cancellation: the processor's signal aborts). A node that
 * misses the broadcast runs to its end and is then settled as it ended: nothing after it starts.
 */
@Injectable()
export class NodeAborts implements OnModuleInit {
  private readonly running = new Map<string, Map<string, () => void>>();

  constructor(private readonly redis: WorkerRedis) {}

  async onModuleInit(): Promise<void> {
    this.redis.subscriber.on('message', (channel: string, executionId: string) => {
      if (channel !== DAG_ABORT_CHANNEL) return;
      for (const cancel of this.running.get(executionId)?.values() ?? []) cancel();
    });
    await this.redis.subscriber.subscribe(DAG_ABORT_CHANNEL);
  }

  /** Registers a node job running here; `cancel` is called if its execution stops. Returns the release. */
  track(executionId: string, jobId: string, cancel: () => void): () => void {
    let jobs = this.running.get(executionId);
    if (!jobs) this.running.set(executionId, (jobs = new Map()));
    jobs.set(jobId, cancel);
    return () => {
      jobs.delete(jobId);
      if (jobs.size === 0) this.running.delete(executionId);
    };
  }

  async broadcast(executionId: string): Promise<void> {
    await this.redis.commands.publish(DAG_ABORT_CHANNEL, executionId);
  }
}
