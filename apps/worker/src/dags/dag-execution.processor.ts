import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, type OnApplicationBootstrap } from '@nestjs/common';
import type { Job } from 'bullmq';
import { type DagExecutionJob, DomainStore, FINISHED_EXECUTION, QUEUES, StreamHistory } from '@app/backplane';
import { dagStream, type DagState } from '@app/protocol';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { sleep } from '../ops/abortable-sleep';
import { EventSink } from '../ops/event-sink';
import { handBack, HandedBack } from '../ops/hand-back';
import { WorkerMetrics } from '../ops/worker-metrics';
import { WorkerRedis } from '../ops/worker-redis';
import { EchoDagRunner } from './echo-dag-runner';

/**
 * Runs DAG executions from the `dag-executions` queue with the echo engine. An execution
 * found already running was handed back by a worker that shut down (or lost by one that
 * died): it resumes from its stream's state.
 */
@Processor(QUEUES.dagExecutions, { autorun: false })
export class DagExecutionProcessor extends WorkerHost implements OnApplicationBootstrap {
  private readonly history: StreamHistory;

  constructor(
    private readonly store: DomainStore,
    private readonly sink: EventSink,
    private readonly metrics: WorkerMetrics,
    redis: WorkerRedis,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    super();
    this.history = new StreamHistory(redis.commands, config.retention);
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.dagConcurrency;
  }

  /** BullMQ passes `signal` (aborted at the shutdown deadline) only to a processor that declares it. */
  async process(job: Job<DagExecutionJob>, token?: string, signal?: AbortSignal): Promise<string> {
    const { executionId } = job.data;
    const timer = this.metrics.jobDuration.startTimer({ queue: 'dag-executions' });
    try {
      const execution = await this.store.getExecution(executionId);
      if (!execution || FINISHED_EXECUTION.has(execution.status)) return 'skipped';
      const complete = { idempotencyKey: `execution-complete.${executionId}` };
      const started = await this.store.transitionExecution(executionId, 'running', ['queued']);
      const resumeFrom = started === null ? await this.resumePoint(executionId) : undefined;
      if (started === null && !resumeFrom && execution.status === 'cancelling') {
        // Cancelled while queued: end without running anything.
        await this.store.transitionExecution(executionId, 'cancelled', ['cancelling']);
        await this.sink.dag(executionId, { type: 'execution_complete', payload: { status: 'cancelled', results: {} } }, complete);
        this.metrics.jobs.inc({ queue: 'dag-executions', outcome: 'cancelled' });
        return 'cancelled';
      }
      const status = await this.runner(job, complete, signal).run(job.data, resumeFrom);
      this.metrics.jobs.inc({ queue: 'dag-executions', outcome: status });
      return status;
    } catch (error) {
      if (!(error instanceof HandedBack)) throw error;
      this.metrics.jobs.inc({ queue: 'dag-executions', outcome: 'handed_back' });
      return handBack(job, token);
    } finally {
      timer();
    }
  }

  /** The stream's state, when the execution got as far as announcing itself. */
  private async resumePoint(executionId: string): Promise<DagState | undefined> {
    const catchUp = await this.history.catchUp(dagStream(executionId));
    const state = catchUp.mode === 'snapshot' ? (catchUp.state as DagState) : undefined;
    return state?.executionId === executionId ? state : undefined;
  }

  private runner(job: Job<DagExecutionJob>, complete: { idempotencyKey: string }, signal?: AbortSignal): EchoDagRunner {
    const { executionId } = job.data;
    return new EchoDagRunner(
      {
        publish: (event) => this.sink.dag(executionId, event, event.type === 'execution_complete' ? complete : {}),
        status: async () => (await this.store.getExecution(executionId))?.status ?? null,
        finish: (status) => this.store.transitionExecution(executionId, status, ['running', 'paused', 'cancelling']),
        openGate: (nodeId) => this.store.openGate(executionId, nodeId),
        gate: (nodeId) => this.store.getGate(executionId, nodeId),
        sleep,
      },
      this.config.echoNodeMs,
      signal,
    );
  }
}
