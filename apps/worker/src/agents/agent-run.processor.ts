import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { Job } from 'bullmq';
import { type AgentRunJob, DomainStore, FINISHED_RUN, QUEUES } from '@app/backplane';
import type { BotEvent } from '@app/protocol';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { sleep } from '../ops/abortable-sleep';
import { EventSink } from '../ops/event-sink';
import { handBack, HandedBack } from '../ops/hand-back';
import { WorkerMetrics } from '../ops/worker-metrics';
import { EchoBot } from './echo-bot';
import { RunCancellation } from './run-cancellation';

/**
 * Runs agent runs from the `agent-runs` queue with the echo bot. A run emits exactly one
 * `done`: one already finished is skipped, one cancelled before it started ends at once,
 * and one left half-done — handed back by a worker past its shutdown deadline, or by a dead
 * worker (re-delivered as stalled) — ends `failed` (the echo bot cannot resume).
 */
@Processor(QUEUES.agentRuns, { autorun: false })
export class AgentRunProcessor extends WorkerHost implements OnApplicationBootstrap {
  private readonly logger = new Logger('AgentRuns');

  constructor(
    private readonly store: DomainStore,
    private readonly sink: EventSink,
    private readonly cancellation: RunCancellation,
    private readonly metrics: WorkerMetrics,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.agentRunConcurrency;
  }

  /** BullMQ passes `signal` (aborted at the shutdown deadline) only to a processor that declares it. */
  async process(job: Job<AgentRunJob>, token?: string, signal?: AbortSignal): Promise<string> {
    const timer = this.metrics.jobDuration.startTimer({ queue: 'agent-runs' });
    try {
      const status = await this.runOnce(job.data, signal);
      this.metrics.jobs.inc({ queue: 'agent-runs', outcome: status });
      return status;
    } catch (error) {
      if (error instanceof HandedBack) {
        this.metrics.jobs.inc({ queue: 'agent-runs', outcome: 'handed_back' });
        return handBack(job, token);
      }
      this.metrics.jobs.inc({ queue: 'agent-runs', outcome: 'error' });
      throw error;
    } finally {
      timer();
    }
  }

  private async runOnce(data: AgentRunJob, handBackSignal?: AbortSignal): Promise<string> {
    const run = await this.store.getRun(data.runId);
    if (!run || FINISHED_RUN.has(run.status)) return 'skipped';
    // `done` is published under an idempotency key: whatever retries happen, a run ends once.
    // Every event of the run goes through one coalescer, so its streamed chunks leave merged and in order.
    const out = this.sink.coalescer((event: BotEvent) =>
      this.sink.bot(data.botId, event, event.type === 'done' ? { idempotencyKey: `run-done.${data.runId}` } : {}),
    );
    const publish = (event: BotEvent) => out.publish(event);
    const end = async (status: 'cancelled' | 'failed', message?: string) => {
      if (message) await publish({ type: 'error', payload: { sessionId: data.sessionId, runId: data.runId, code: 'RUN_FAILED', message } });
      await publish({ type: 'done', payload: { sessionId: data.sessionId, runId: data.runId, replyToId: data.messageId, status } });
      await this.store.setRunStatus(data.runId, status);
      return status;
    };
    if (run.cancelRequested) return end('cancelled');
    if (run.status === 'running') return end('failed', 'the worker running this run stopped; it was not resumed');

    await this.store.setRunStatus(data.runId, 'running');
    const tracked = this.cancellation.track(data.runId);
    try {
      const bot = new EchoBot(
        {
          publish,
          remember: (m) => this.store.appendSessionMessage(data.sessionId, m),
          sleep,
        },
        this.config.echoChunkDelayMs,
      );
      const status = await bot.run(data, tracked.signal, handBackSignal);
      await this.store.setRunStatus(data.runId, status);
      return status;
    } catch (error) {
      if (error instanceof HandedBack) {
        // The text streamed so far leaves before the job does: the next worker's `done` must come after it.
        await out
          .flush()
          .catch((flushError: unknown) => this.logger.warn({ msg: 'streamed text lost at hand-back', runId: data.runId, err: String(flushError) }));
        throw error;
      }
      this.logger.error({ msg: 'run failed', runId: data.runId, err: error instanceof Error ? error.stack : String(error) });
      return end('failed', 'the run failed');
    } finally {
      tracked.done();
    }
  }
}
