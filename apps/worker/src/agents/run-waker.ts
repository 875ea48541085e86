import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Job, type Queue } from 'bullmq';
import { type AgentRunJob, QUEUES } from '@app/backplane';

/**
 * Wakes a parked run: its job (id = run id) waits in BullMQ's delayed set until its decision's
 * expiry; an answer, a cancel, or the end of the run ahead of it in its session promotes it, so
 * a worker takes it at once.
 */
@Injectable()
export class RunWaker {
  constructor(@InjectQueue(QUEUES.agentRuns) private readonly runs: Queue<AgentRunJob>) {}

  /** True when the job was parked and now waits for a worker. */
  async wake(runId: string): Promise<boolean> {
    const job = await Job.fromId<AgentRunJob>(this.runs, runId);
    if (!job || (await job.getState()) !== 'delayed') return false;
    try {
      await job.promote();
      return true;
    } catch (error) {
      // It left the delayed set between the two reads (its expiry, or another waker): it runs anyway.
      if (error instanceof Error && /is not in the delayed state|Missing key for job/.test(error.message)) return false;
      throw error;
    }
  }
}
