import { Processor, WorkerHost } from '@nestjs/bullmq';
import type { Job } from 'bullmq';
import { type DagControlJob, DomainStore, type ExecutionStatus, QUEUES } from '@app/backplane';
import type { ExecutionControlStatus } from '@app/protocol';
import { EventSink } from '../ops/event-sink';
import { WorkerMetrics } from '../ops/worker-metrics';
import { DagEngine } from './dag-engine';

/** What each control moves the execution to, and from which statuses it may. */
const TRANSITIONS: Record<'pause' | 'resume' | 'cancel', { to: ExecutionControlStatus; from: ExecutionStatus[] }> = {
  pause: { to: 'paused', from: ['running'] },
  resume: { to: 'running', from: ['paused'] },
  cancel: { to: 'cancelling', from: ['queued', 'running', 'paused'] },
};

/**
 * Steering of executions from the `dag-control` queue. It changes the execution's record
 * first (the engine's steps read it: a paused execution hands out no node), announces the
 * change, then lets the engine act on it: resume hands out the ready nodes, cancel aborts the
 * running ones and sweeps the rest, a gate's decision ends the gate node.
 */
@Processor(QUEUES.dagControl, { concurrency: 16, autorun: false })
export class DagControlProcessor extends WorkerHost {
  constructor(
    private readonly store: DomainStore,
    private readonly engine: DagEngine,
    private readonly sink: EventSink,
    private readonly metrics: WorkerMetrics,
  ) {
    super();
  }

  async process(job: Job<DagControlJob>): Promise<string> {
    const outcome = await this.handle(job.data, job.id ?? job.name);
    this.metrics.jobs.inc({ queue: 'dag-control', outcome });
    return outcome;
  }

  /** Record first (the first change wins; a retry of the winner goes on), then announce under this job's idempotency key. */
  private async handle(data: DagControlJob, jobId: string): Promise<string> {
    const once = { idempotencyKey: `control.${jobId}` };
    if (data.kind === 'human_decision') {
      if (!(await this.store.decideGate(data.executionId, data.nodeId, data.decision, jobId))) return 'already_decided';
      await this.engine.decideGate(data.executionId, data.nodeId, data.decision, data.feedback, data.userId, jobId);
      return 'decided';
    }
    const { to, from } = TRANSITIONS[data.kind];
    if ((await this.store.transitionExecution(data.executionId, to, from, jobId)) === null) return 'not_applicable';
    await this.sink.dag(data.executionId, { type: 'execution_state', payload: { status: to } }, once);
    if (data.kind !== 'pause') await this.engine.advance(data.executionId, jobId, data.kind === 'cancel');
    return to;
  }
}
