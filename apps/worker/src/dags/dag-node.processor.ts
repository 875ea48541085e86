import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { DelayedError, type Job } from 'bullmq';
import { type DagNodeJob, QUEUES } from '@app/backplane';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { handBack, HandedBack } from '../ops/hand-back';
import { WorkerMetrics } from '../ops/worker-metrics';
import { DagEngine, NodeAttemptFailed } from './dag-engine';
import { NODE_ABORT_REASON, NodeAborts } from './node-aborts';

/** How often a node job held by a pause looks whether its execution was resumed. */
const HELD_RECHECK_MS = 500;

/**
 * Runs DAG node jobs (`{dag-nodes}`): one job per node execution, any worker. A job stalled
 * by a worker that died is picked up by another and replays what the first decided.
 */
@Processor(QUEUES.dagNodes, { autorun: false })
export class DagNodeProcessor extends WorkerHost implements OnApplicationBootstrap {
  private readonly logger = new Logger('DagNodes');

  constructor(
    private readonly engine: DagEngine,
    private readonly aborts: NodeAborts,
    private readonly metrics: WorkerMetrics,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.dagNodeConcurrency;
    this.worker.on('failed', (job, error) => {
      if (!job) return;
      this.engine
        .nodeLost(job as Job<DagNodeJob>, error)
        .catch((err: unknown) => this.logger.error({ msg: 'a lost node could not be failed', jobId: job.id, err: String(err) }));
    });
  }

  /** BullMQ passes `signal` (aborted on cancel and at the shutdown deadline) only to a processor that declares it. */
  async process(job: Job<DagNodeJob>, token?: string, signal?: AbortSignal): Promise<string> {
    const timer = this.metrics.jobDuration.startTimer({ queue: 'dag-nodes' });
    const jobId = job.id ?? job.name;
    const release = this.aborts.track(job.data.executionId, jobId, () => this.worker.cancelJob(jobId, NODE_ABORT_REASON));
    try {
      const outcome = await this.engine.runNode(job, signal ?? new AbortController().signal);
      this.metrics.jobs.inc({ queue: 'dag-nodes', outcome });
      if (outcome === 'held') return await this.hold(job, token);
      return outcome;
    } catch (error) {
      if (error instanceof NodeAttemptFailed) this.metrics.jobs.inc({ queue: 'dag-nodes', outcome: 'retried' });
      if (!(error instanceof HandedBack)) throw error;
      this.metrics.jobs.inc({ queue: 'dag-nodes', outcome: 'handed_back' });
      return handBack(job, token);
    } finally {
      release();
      timer();
    }
  }

  /**
   * A node of a paused execution holds no worker: its job waits in BullMQ's delayed set and
   * looks again after HELD_RECHECK_MS, then runs if the execution was resumed (or ends
   * cancelled if it was cancelled meanwhile).
   */
  private async hold(job: Job<DagNodeJob>, token: string | undefined): Promise<never> {
    if (token === undefined) throw new Error(`node job ${job.id} has no lock token; it cannot be held`);
    await job.moveToDelayed(Date.now() + HELD_RECHECK_MS, token);
    throw new DelayedError();
  }
}
