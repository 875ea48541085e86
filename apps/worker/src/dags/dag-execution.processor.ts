import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, type OnApplicationBootstrap } from '@nestjs/common';
import type { Job } from 'bullmq';
import { type DagExecutionJob, DomainStore, FINISHED_EXECUTION, QUEUES } from '@app/backplane';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { sleep } from '../ops/abortable-sleep';
import { EventSink } from '../ops/event-sink';
import { WorkerMetrics } from '../ops/worker-metrics';
import { EchoDagRunner } from './echo-dag-runner';

/** Runs DAG executions from the `dag-executions` queue with the echo engine. */
@Processor(QUEUES.dagExecutions)
export class DagExecutionProcessor extends WorkerHost implements OnApplicationBootstrap {
  constructor(
    private readonly store: DomainStore,
    private readonly sink: EventSink,
    private readonly metrics: WorkerMetrics,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.dagConcurrency;
  }

  async process(job: Job<DagExecutionJob>): Promise<string> {
    const { executionId } = job.data;
    const timer = this.metrics.jobDuration.startTimer({ queue: 'dag-executions' });
    try {
      const execution = await this.store.getExecution(executionId);
      if (!execution || FINISHED_EXECUTION.has(execution.status)) return 'skipped';
      const complete = { idempotencyKey: `execution-complete.${executionId}` };
      const started = await this.store.transitionExecution(executionId, 'running', ['queued']);
      if (started === null) {
        // Cancelled while queued: end without running anything. Already running: this is a
        // retry after a worker died mid-way; the echo engine cannot resume, so it fails.
        const ending = execution.status === 'cancelling' ? 'cancelled' : 'failed';
        await this.store.transitionExecution(executionId, ending, ['cancelling', 'running', 'paused']);
        if (ending === 'failed') {
          await this.sink.dag(executionId, { type: 'error', payload: { code: 'EXECUTION_LOST', message: 'the worker running this execution stopped' } });
        }
        await this.sink.dag(executionId, { type: 'execution_complete', payload: { status: ending, results: {} } }, complete);
        this.metrics.jobs.inc({ queue: 'dag-executions', outcome: ending });
        return ending;
      }
      const runner = new EchoDagRunner(
        {
          publish: (event) => this.sink.dag(executionId, event, event.type === 'execution_complete' ? complete : {}),
          status: async () => (await this.store.getExecution(executionId))?.status ?? null,
          finish: (status) => this.store.transitionExecution(executionId, status, ['running', 'paused', 'cancelling']),
          openGate: (nodeId) => this.store.openGate(executionId, nodeId),
          gate: (nodeId) => this.store.getGate(executionId, nodeId),
          sleep: (ms) => sleep(ms),
        },
        this.config.echoNodeMs,
      );
      const status = await runner.run(job.data);
      this.metrics.jobs.inc({ queue: 'dag-executions', outcome: status });
      return status;
    } finally {
      timer();
    }
  }
}
