import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, type OnApplicationBootstrap } from '@nestjs/common';
import type { Job } from 'bullmq';
import { type DagExecutionJob, QUEUES } from '@app/backplane';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { WorkerMetrics } from '../ops/worker-metrics';
import { DagEngine } from './dag-engine';

/**
 * Starts DAG executions from the `dag-executions` queue: a short job that announces the
 * execution and hands out its first nodes; the nodes run as jobs of their own (DagNodeProcessor).
 * Run again (its worker died), it lays nothing out twice.
 */
@Processor(QUEUES.dagExecutions, { autorun: false })
export class DagExecutionProcessor extends WorkerHost implements OnApplicationBootstrap {
  constructor(
    private readonly engine: DagEngine,
    private readonly metrics: WorkerMetrics,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.dagConcurrency;
  }

  async process(job: Job<DagExecutionJob>): Promise<string> {
    const timer = this.metrics.jobDuration.startTimer({ queue: 'dag-executions' });
    try {
      const outcome = await this.engine.startExecution(job.data);
      this.metrics.jobs.inc({ queue: 'dag-executions', outcome });
      return outcome;
    } finally {
      timer();
    }
  }
}
