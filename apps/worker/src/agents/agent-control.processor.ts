import { Processor, WorkerHost } from '@nestjs/bullmq';
import type { Job } from 'bullmq';
import { type AgentControlJob, DomainStore, QUEUES } from '@app/backplane';
import { EventSink } from '../ops/event-sink';
import { WorkerMetrics } from '../ops/worker-metrics';
import { RunCancellation } from './run-cancellation';

/**
 * Steering of runs from the `agent-control` queue: cancels (broadcast to the worker that
 * holds the run), and the answers to approvals and plans (the first answer wins and is
 * announced on the bot's stream).
 */
@Processor(QUEUES.agentControl, { concurrency: 16, autorun: false })
export class AgentControlProcessor extends WorkerHost {
  constructor(
    private readonly store: DomainStore,
    private readonly sink: EventSink,
    private readonly cancellation: RunCancellation,
    private readonly metrics: WorkerMetrics,
  ) {
    super();
  }

  async process(job: Job<AgentControlJob>): Promise<string> {
    const outcome = await this.handle(job.data, job.id ?? job.name);
    this.metrics.jobs.inc({ queue: 'agent-control', outcome });
    return outcome;
  }

  /**
   * A decision is recorded first (the first answer wins), then announced under an
   * idempotency key of this job: a retry after a failed publish announces it exactly once.
   */
  private async handle(data: AgentControlJob, jobId: string): Promise<string> {
    const once = { idempotencyKey: `control.${jobId}` };
    switch (data.kind) {
      case 'cancel':
        await this.store.requestCancel(data.runId);
        await this.cancellation.broadcast(data.runId);
        return 'cancel_requested';
      case 'approval': {
        const decision = await this.store.getDecision('approval', data.approvalId);
        if (!decision || !(await this.store.resolveDecision('approval', data.approvalId, jobId))) return 'already_resolved';
        await this.sink.bot(
          decision.botId,
          {
            type: 'approval_resolved',
            payload: { sessionId: decision.sessionId, approvalId: data.approvalId, approved: data.approved, resolvedBy: data.userId },
          },
          once,
        );
        return 'resolved';
      }
      case 'plan_response': {
        const decision = await this.store.getDecision('plan', data.planId);
        if (!decision || !(await this.store.resolveDecision('plan', data.planId, jobId))) return 'already_resolved';
        await this.sink.bot(
          decision.botId,
          {
            type: 'plan_resolved',
            payload: { sessionId: decision.sessionId, planId: data.planId, response: data.response, resolvedBy: data.userId },
          },
          once,
        );
        return 'resolved';
      }
    }
  }
}
