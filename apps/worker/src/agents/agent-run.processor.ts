import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { DelayedError, type Job } from 'bullmq';
import { type AgentRunJob, DomainStore, FINISHED_RUN, Producer, ProducerFencedError, producerIds, QUEUES, type RunRecord } from '@app/backplane';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { handBack, HandedBack } from '../ops/hand-back';
import { WorkerMetrics } from '../ops/worker-metrics';
import { BotCatalog } from './bots/bot-definition';
import { RunCancellation } from './run-cancellation';
import { RunWaker } from './run-waker';
import { AgentRuntime, type RunOutcome, type RunSignals } from './runtime/agent-runtime';
import type { RunState } from './runtime/run-state';

/** A run waiting its turn in a busy session looks again this often, should the wake-up of the run ahead be lost. */
const LINE_RECHECK_MS = 30_000;

type Step = RunOutcome | { kind: 'skipped' } | { kind: 'queued' };

/**
 * Runs agent runs from the `agent-runs` queue with the {@link AgentRuntime}. A run emits
 * exactly one `done`: one already finished is skipped, one cancelled before it started (or
 * while parked) ends `cancelled` at once, and one left half-done — handed back by a worker
 * past its shutdown deadline, or by a dead worker (re-delivered as stalled) — ends `failed`,
 * as does one whose job BullMQ fails without running it (stalled twice).
 *
 * A run never holds a worker slot while it waits: for its turn in a busy session (§9
 * `onBusy: enqueue`), or for an approval or a plan. Its job is moved to BullMQ's delayed set
 * until it is woken (RunWaker) or its wait expires, and any worker carries it on from there.
 */
@Processor(QUEUES.agentRuns, { autorun: false })
export class AgentRunProcessor extends WorkerHost implements OnApplicationBootstrap {
  private readonly logger = new Logger('AgentRuns');

  constructor(
    private readonly store: DomainStore,
    private readonly runtime: AgentRuntime,
    private readonly bots: BotCatalog,
    private readonly cancellation: RunCancellation,
    private readonly waker: RunWaker,
    private readonly metrics: WorkerMetrics,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.agentRunConcurrency;
    // Gateways read a bot's default busy policy from Redis: they do not know the worker's bot
    // definitions. Not awaited: a worker starting while Redis is away must not hang here.
    Promise.all(this.bots.all().map((bot) => this.store.setBotSettings(bot.botId, { onBusy: bot.onBusy }))).catch((error: unknown) =>
      this.logger.warn({ msg: 'bot settings not written; gateways apply their defaults', err: String(error) }),
    );
  }

  /** BullMQ passes `signal` (aborted at the shutdown deadline) only to a processor that declares it. */
  async process(job: Job<AgentRunJob>, token?: string, signal?: AbortSignal): Promise<string> {
    const timer = this.metrics.jobDuration.startTimer({ queue: 'agent-runs' });
    let step: Step;
    try {
      // One producer for this processing, whatever it goes through (see RunSignals.producer).
      step = await this.step(job.data, new Producer(producerIds.run(job.data.runId), job.attemptsStarted), signal);
    } catch (error) {
      timer();
      if (error instanceof HandedBack) {
        this.metrics.jobs.inc({ queue: 'agent-runs', outcome: 'handed_back' });
        return handBack(job, token);
      }
      this.metrics.jobs.inc({ queue: 'agent-runs', outcome: 'error' });
      throw error;
    }
    timer();
    if (step.kind === 'finished') {
      this.metrics.jobs.inc({ queue: 'agent-runs', outcome: step.status });
      return step.status;
    }
    if (step.kind === 'skipped') {
      this.metrics.jobs.inc({ queue: 'agent-runs', outcome: 'skipped' });
      return 'skipped';
    }
    this.metrics.jobs.inc({ queue: 'agent-runs', outcome: step.kind === 'parked' ? 'parked' : 'queued' });
    const until = step.kind === 'parked' ? step.until : Date.now() + LINE_RECHECK_MS;
    return this.park(job, token, until);
  }

  /**
   * BullMQ failed the job for good while the run may not have ended: a job found stalled more
   * than once (its workers died twice) is failed by the next worker before any processor sees
   * it, and an error out of a step (Redis away) fails it once its attempts are spent. Nothing
   * else would publish the run's `done`: end it here (the `done` is idempotent, so one that did
   * end stays ended). A failure BullMQ retries (`finishedOn` unset: the job went back to
   * delayed) is left to the retry, which must not find the run ended.
   */
  @OnWorkerEvent('failed')
  async onFailed(job: Job<AgentRunJob> | undefined, error: Error): Promise<void> {
    if (!job?.finishedOn) return;
    try {
      const run = await this.store.getRun(job.data.runId);
      if (run && !FINISHED_RUN.has(run.status)) {
        const state = run.status === 'waiting' ? await this.store.loadRunState<RunState>(job.data.runId) : null;
        this.logger.warn({ msg: 'run job failed; ending the run', runId: job.data.runId, err: error.message });
        // As a processing after the last one BullMQ started: it fences that one off.
        const producer = new Producer(producerIds.run(job.data.runId), job.attemptsStarted + 1);
        await this.runtime.end(job.data, 'failed', state, `the run's job failed: ${error.message}`, producer);
      }
      await this.release(job.data);
    } catch (failure) {
      this.logger.error({ msg: 'a failed run could not be ended', runId: job.data.runId, err: failure instanceof Error ? failure.stack : String(failure) });
    }
  }

  /**
   * Lets the job go until `until`. The wake-up for an answer (or the turn) that came while the
   * job was still active found nothing to promote, so the run looks once more after moving.
   */
  private async park(job: Job<AgentRunJob>, token: string | undefined, until: number): Promise<never> {
    if (token === undefined) throw new Error(`job ${job.id} has no lock token; it cannot be parked`);
    await job.moveToDelayed(until, token);
    if (await this.readyToGoOn(job.data)) await this.waker.wake(job.data.runId);
    throw new DelayedError();
  }

  private async step(data: AgentRunJob, producer: Producer, handBackSignal?: AbortSignal): Promise<Step> {
    const run = await this.store.getRun(data.runId);
    if (!run || FINISHED_RUN.has(run.status)) {
      await this.release(data);
      return { kind: 'skipped' };
    }
    if (run.status === 'queued' && !run.cancelRequested && !(await this.hasTurn(data))) return { kind: 'queued' };

    const tracked = this.cancellation.track(data.runId);
    let outcome: RunOutcome;
    try {
      outcome = await this.advance(data, run, { cancel: tracked.signal, producer, ...(handBackSignal ? { handBack: handBackSignal } : {}) });
    } catch (error) {
      // Fenced: this worker lost the job (it stalled) and another one has taken the run on.
      if (error instanceof HandedBack || error instanceof ProducerFencedError) throw error;
      this.logger.error({ msg: 'run failed', runId: data.runId, err: error instanceof Error ? error.stack : String(error) });
      outcome = await this.runtime.end(data, 'failed', null, 'the run failed', producer);
    } finally {
      tracked.done();
    }
    if (outcome.kind === 'finished') await this.release(data);
    return outcome;
  }

  private async advance(data: AgentRunJob, run: RunRecord, signals: RunSignals): Promise<RunOutcome> {
    const state = run.status === 'waiting' ? await this.store.loadRunState<RunState>(data.runId) : null;
    if (run.cancelRequested) return this.runtime.end(data, 'cancelled', state, undefined, signals.producer);
    switch (run.status) {
      case 'running':
        return this.runtime.end(data, 'failed', null, 'the worker running this run stopped; it was not resumed', signals.producer);
      case 'waiting':
        return state
          ? this.runtime.resume(data, state, signals)
          : this.runtime.end(data, 'failed', null, 'the run lost its saved state while it waited', signals.producer);
      default:
        await this.store.setRunStatus(data.runId, 'running');
        return this.runtime.start(data, signals);
    }
  }

  /**
   * Whether the run is first in its session's line. Runs ahead that finished (or vanished)
   * without leaving the line are taken out. A run in no line (queued by a producer of its own)
   * always has its turn.
   */
  private async hasTurn(data: AgentRunJob): Promise<boolean> {
    for (;;) {
      const line = await this.store.sessionRuns(data.sessionId);
      if (!line.includes(data.runId) || line[0] === data.runId) return true;
      const ahead = await this.store.getRun(line[0]);
      if (ahead && !FINISHED_RUN.has(ahead.status)) return false;
      await this.store.releaseSessionRun(data.sessionId, line[0]);
    }
  }

  /** After parking: has what it waits for come meanwhile (an answer, a cancel, its turn)? */
  private async readyToGoOn(data: AgentRunJob): Promise<boolean> {
    const run = await this.store.getRun(data.runId);
    if (!run || run.cancelRequested) return true;
    if (run.status === 'queued') return this.hasTurn(data);
    const state = await this.store.loadRunState<RunState>(data.runId);
    const waiting = state?.waiting;
    if (!waiting) return true;
    const decision = await this.store.getDecision(waiting.kind, waiting.kind === 'approval' ? waiting.approvalId : waiting.planId);
    return decision?.status !== 'pending';
  }

  /** The run left its session's line: the next one in it may start. */
  private async release(data: AgentRunJob): Promise<void> {
    const next = await this.store.releaseSessionRun(data.sessionId, data.runId);
    if (next) await this.waker.wake(next);
  }
}
