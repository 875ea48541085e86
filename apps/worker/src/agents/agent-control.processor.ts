import { Processor, WorkerHost } from '@nestjs/bullmq';
import type { Job } from 'bullmq';
import { type AgentControlJob, type DecisionAnswer, DomainStore, QUEUES } from '@app/backplane';
import { EventSink } from '../ops/event-sink';
import { WorkerMetrics } from '../ops/worker-metrics';
import { RunCancellation } from './run-cancellation';
import { RunWaker } from './run-waker';
import { publishResolution } from './runtime/agent-runtime';

/**
 * Steering of runs from the `agent-control` queue: cancels (broadcast to the worker that
 * holds the run, and a wake-up for a parked one), and the answers to approvals and plans
 * (the first answer wins, is announced on the bot's stream and wakes the parked run).
 */
@Processor(QUEUES.agentControl, { concurrency: 16, autorun: false })
export class AgentControlProcessor extends WorkerHost {
  constructor(
    private readonly store: DomainStore,
    private readonly sink: EventSink,
    private readonly cancellation: RunCancellation,
    private readonly waker: RunWaker,
    private readonly metrics: WorkerMetrics,
  ) {
    super();
  }

  async process(job: Job<AgentControlJob>): Promise<string> {
    const outcome = await this.handle(job.data, job.id ?? job.name);
    this.metrics.jobs.inc({ queue: 'agent-control', outcome });
    return outcome;
  }

  private async handle(data: AgentControlJob, jobId: string): Promise<string> {
    switch (data.kind) {
      case 'cancel':
        await this.store.requestCancel(data.runId);
        await this.cancellation.broadcast(data.runId);
        await this.waker.wake(data.runId);
        return 'cancel_requested';
      case 'approval': {
        const note = data.note !== undefined ? { note: data.note } : {};
        return this.answer(data.approvalId, { kind: 'approval', approved: data.approved, ...note, resolvedBy: data.userId }, jobId);
      }
      case 'plan_response': {
        const plan = data.plan !== undefined ? { plan: data.plan } : {};
        const feedback = data.feedback !== undefined ? { feedback: data.feedback } : {};
        return this.answer(data.planId, { kind: 'plan', response: data.response, ...plan, ...feedback, resolvedBy: data.userId }, jobId);
      }
    }
  }

  /**
   * Gateways record the answer before they queue this job (so a second answer is refused at
   * once); the job's id owns it, which makes `decide` succeed here again. A producer that did
   * not record it gets it recorded now, first answer winning.
   */
  private async answer(id: string, answer: DecisionAnswer, jobId: string): Promise<string> {
    const outcome = await this.store.decide(id, answer, jobId, Date.now());
    if (outcome !== 'resolved') return 'already_resolved';
    const decision = await this.store.getDecision(answer.kind, id);
    if (!decision) return 'already_resolved';
    await publishResolution((botId, event, options) => this.sink.bot(botId, event, options), decision.botId, decision.sessionId, id, decision.answer ?? answer);
    await this.waker.wake(decision.runId);
    return 'resolved';
  }
}
