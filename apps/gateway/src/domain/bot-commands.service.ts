import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { type AgentControlJob, type AgentRunJob, type DecisionAnswer, derivedId, DomainStore, FINISHED_RUN, QUEUES } from '@app/backplane';
import { botStream, type BusyPolicy, type CommandPayload, type CommandResult, ErrorCode, ProtocolError } from '@app/protocol';
import { type AuthContext, requireAccess } from '../auth/auth-context';
import { SessionsService } from './sessions.service';

export interface CommandIdentity {
  auth: AuthContext;
  commandId: string;
}

/**
 * Bot commands: check what the gateway can check (scope, existence, state), then hand
 * the work to workers as a BullMQ job; the ack follows once the job is queued.
 */
@Injectable()
export class BotCommands {
  constructor(
    private readonly store: DomainStore,
    private readonly sessions: SessionsService,
    @InjectQueue(QUEUES.agentRuns) private readonly runs: Queue<AgentRunJob>,
    @InjectQueue(QUEUES.agentControl) private readonly control: Queue<AgentControlJob>,
  ) {}

  async chat({ auth, commandId }: CommandIdentity, p: CommandPayload<'chat'>): Promise<CommandResult<'chat'>> {
    requireScope(auth, p.botId);
    let sessionId = p.sessionId;
    if (sessionId) {
      const session = await this.sessions.readable(auth, sessionId);
      if (session.botId !== p.botId) throw new ProtocolError(ErrorCode.NOT_FOUND, `session ${sessionId} belongs to another bot`);
    } else {
      sessionId = derivedId('session', auth.userId, commandId);
      await this.sessions.create(p.botId, sessionId, p.content.slice(0, 60), auth.userId);
    }
    const runId = derivedId('run', auth.userId, commandId);
    const onBusy = p.onBusy ?? (await this.store.botSettings(p.botId))?.onBusy ?? 'enqueue';
    await this.startRun(
      {
        runId,
        botId: p.botId,
        sessionId,
        userId: auth.userId,
        content: p.content,
        messageId: derivedId('msg', auth.userId, commandId),
        source: 'chat',
        ...(p.model !== undefined ? { model: p.model } : {}),
        ...(p.systemPrompt !== undefined ? { systemPrompt: p.systemPrompt } : {}),
      },
      onBusy,
      commandId,
    );
    return { runId, sessionId, jobId: runId };
  }

  /**
   * Records the run, puts it in its session's line (§9 `onBusy`) and queues it; the job id is
   * the run id, so a retry queues nothing new. A run behind another in its session waits,
   * parked, until the one ahead ends (workers see to that); `interrupt` cancels those ahead.
   */
  async startRun(job: AgentRunJob, onBusy: BusyPolicy = 'enqueue', commandId: string = job.runId): Promise<void> {
    await this.store.createRun(job.runId, { botId: job.botId, sessionId: job.sessionId, userId: job.userId });
    let admission = await this.store.admitSessionRun(job.sessionId, job.runId, onBusy);
    if (admission.outcome === 'busy' && (await this.dropFinished(job.sessionId, admission.ahead))) {
      admission = await this.store.admitSessionRun(job.sessionId, job.runId, onBusy);
    }
    if (admission.outcome === 'busy') {
      await this.store.setRunStatus(job.runId, 'cancelled');
      throw new ProtocolError(ErrorCode.CONFLICT, `session ${job.sessionId} has a run in progress (${admission.ahead[0]})`);
    }
    if (onBusy === 'interrupt') {
      for (const runId of admission.ahead) {
        await this.store.requestCancel(runId);
        await this.control.add(
          'cancel',
          { kind: 'cancel', runId, botId: job.botId, userId: job.userId },
          { jobId: derivedId('interrupt', job.userId, `${commandId}/${runId}`) },
        );
      }
    }
    await this.runs.add('run', job, { jobId: job.runId });
  }

  /** Takes runs that ended out of a session's line (their worker had not yet); true when any was. */
  private async dropFinished(sessionId: string, runIds: string[]): Promise<boolean> {
    let dropped = false;
    for (const runId of runIds) {
      const run = await this.store.getRun(runId);
      if (run && !FINISHED_RUN.has(run.status)) continue;
      await this.store.releaseSessionRun(sessionId, runId);
      dropped = true;
    }
    return dropped;
  }

  async cancel({ auth, commandId }: CommandIdentity, p: CommandPayload<'cancel'>): Promise<CommandResult<'cancel'>> {
    const run = await this.store.getRun(p.runId);
    if (!run) throw new ProtocolError(ErrorCode.NOT_FOUND, `no run ${p.runId}`);
    requireScope(auth, run.botId);
    if (FINISHED_RUN.has(run.status)) throw new ProtocolError(ErrorCode.CONFLICT, `run ${p.runId} already finished (${run.status})`);
    await this.store.requestCancel(p.runId);
    await this.control.add(
      'cancel',
      { kind: 'cancel', runId: p.runId, botId: run.botId, userId: auth.userId },
      { jobId: derivedId('cancel', auth.userId, commandId) },
    );
    return {};
  }

  async approval({ auth, commandId }: CommandIdentity, p: CommandPayload<'approval'>): Promise<CommandResult<'approval'>> {
    const jobId = derivedId('approval', auth.userId, commandId);
    const note = p.note !== undefined ? { note: p.note } : {};
    await this.decide(p.approvalId, { kind: 'approval', approved: p.approved, ...note, resolvedBy: auth.userId }, jobId, auth);
    const job: AgentControlJob = {
      kind: 'approval',
      approvalId: p.approvalId,
      approved: p.approved,
      userId: auth.userId,
      ...(p.note !== undefined ? { note: p.note } : {}),
    };
    await this.control.add('approval', job, { jobId });
    return {};
  }

  async planResponse({ auth, commandId }: CommandIdentity, p: CommandPayload<'plan_response'>): Promise<CommandResult<'plan_response'>> {
    const jobId = derivedId('plan', auth.userId, commandId);
    const plan = p.plan !== undefined ? { plan: p.plan } : {};
    const feedback = p.feedback !== undefined ? { feedback: p.feedback } : {};
    await this.decide(p.planId, { kind: 'plan', response: p.response, ...plan, ...feedback, resolvedBy: auth.userId }, jobId, auth);
    const job: AgentControlJob = {
      kind: 'plan_response',
      planId: p.planId,
      response: p.response,
      userId: auth.userId,
      ...(p.plan !== undefined ? { plan: p.plan } : {}),
      ...(p.feedback !== undefined ? { feedback: p.feedback } : {}),
    };
    await this.control.add('plan_response', job, { jobId });
    return {};
  }

  async newSession({ auth, commandId }: CommandIdentity, p: CommandPayload<'new_session'>): Promise<CommandResult<'new_session'>> {
    requireScope(auth, p.botId);
    const sessionId = derivedId('session', auth.userId, commandId);
    await this.sessions.create(p.botId, sessionId, p.title ?? 'New session', auth.userId);
    return { sessionId };
  }

  /**
   * Records the answer here, atomically, before the control job is queued: of two answers
   * racing on two pods exactly one wins and the other is told CONFLICT at once. The control
   * job's id owns the answer, so a retried command (same id) is answered as the first time.
   */
  private async decide(id: string, answer: DecisionAnswer, jobId: string, auth: AuthContext): Promise<void> {
    const decision = await this.store.getDecision(answer.kind, id);
    if (!decision) throw new ProtocolError(ErrorCode.NOT_FOUND, `no ${answer.kind} ${id}`);
    requireScope(auth, decision.botId);
    const outcome = await this.store.decide(id, answer, jobId, Date.now());
    if (outcome === 'missing') throw new ProtocolError(ErrorCode.NOT_FOUND, `no ${answer.kind} ${id}`);
    if (outcome === 'expired') throw new ProtocolError(ErrorCode.CONFLICT, `${answer.kind} ${id} expired`);
    if (outcome === 'conflict') throw new ProtocolError(ErrorCode.CONFLICT, `${answer.kind} ${id} was already resolved`);
  }
}

function requireScope(auth: AuthContext, botId: string): void {
  requireAccess(auth, botStream(botId));
}
