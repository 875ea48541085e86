import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { type DagControlJob, type DagExecutionJob, derivedId, DomainStore, FINISHED_EXECUTION, QUEUES } from '@app/backplane';
import { checkDag, type CommandPayload, type CommandResult, dagStream, ErrorCode, ProtocolError } from '@app/protocol';
import { type AuthContext, requireAccess } from '../auth/auth-context';
import type { CommandIdentity } from './bot-commands.service';

type ControlKind = 'pause' | 'resume' | 'cancel';

/** DAG commands: validate and queue executions, and steer running ones. */
@Injectable()
export class DagCommands {
  constructor(
    private readonly store: DomainStore,
    @InjectQueue(QUEUES.dagExecutions) private readonly executions: Queue<DagExecutionJob>,
    @InjectQueue(QUEUES.dagControl) private readonly control: Queue<DagControlJob>,
  ) {}

  async start({ auth, commandId }: CommandIdentity, p: CommandPayload<'start_execution'>): Promise<CommandResult<'start_execution'>> {
    const executionId = derivedId('exec', auth.userId, commandId);
    requireScope(auth, executionId);
    const definition = p.dag ?? (p.dagId !== undefined ? await this.store.getDagDefinition(p.dagId) : null);
    if (!definition) throw new ProtocolError(ErrorCode.NOT_FOUND, `no stored DAG ${p.dagId}`);
    const violations = checkDag(definition, p.dag ? 'dag' : 'dagId');
    if (violations.length > 0)
      throw new ProtocolError(ErrorCode.VALIDATION_FAILED, `the DAG is not valid: ${violations.map((v) => v.message).join('; ')}`, violations);

    await this.store.createExecution(executionId, auth.userId);
    const job: DagExecutionJob = {
      executionId,
      definition,
      userId: auth.userId,
      ...(p.dagId !== undefined ? { dagId: p.dagId } : {}),
      ...(p.inputs !== undefined ? { inputs: p.inputs } : {}),
      ...(p.budgetUsd !== undefined ? { budgetUsd: p.budgetUsd } : {}),
    };
    await this.executions.add('execution', job, { jobId: executionId });
    return { executionId, jobId: executionId };
  }

  async steer({ auth, commandId }: CommandIdentity, kind: ControlKind, executionId: string): Promise<Record<string, never>> {
    const execution = await this.requireExecution(auth, executionId);
    if (kind === 'pause' && execution.status !== 'running')
      throw new ProtocolError(ErrorCode.CONFLICT, `execution ${executionId} is ${execution.status}, not running`);
    if (kind === 'resume' && execution.status !== 'paused') throw new ProtocolError(ErrorCode.CONFLICT, `execution ${executionId} is not paused`);
    await this.control.add(kind, { kind, executionId, userId: auth.userId }, { jobId: derivedId(kind, auth.userId, commandId) });
    return {};
  }

  async humanDecision({ auth, commandId }: CommandIdentity, p: CommandPayload<'human_decision'>): Promise<CommandResult<'human_decision'>> {
    const execution = await this.requireExecution(auth, p.executionId);
    // A stopping execution cancels its waiting gates once its running nodes stop: too late to decide.
    if (execution.status === 'cancelling' || execution.status === 'failing')
      throw new ProtocolError(ErrorCode.CONFLICT, `execution ${p.executionId} is ${execution.status}: its gates end cancelled`);
    const gate = await this.store.getGate(p.executionId, p.nodeId);
    if (gate === null) throw new ProtocolError(ErrorCode.NOT_FOUND, `node ${p.nodeId} of ${p.executionId} is not a human gate waiting for a decision`);
    const jobId = derivedId('decision', auth.userId, commandId);
    // Decided here, atomically, so of two racing decisions (on any pods) the second is CONFLICT;
    // the control job (same owner token) then finds the decision its own and carries it out.
    if (!(await this.store.decideGate(p.executionId, p.nodeId, p.decision, jobId))) {
      throw new ProtocolError(
        ErrorCode.CONFLICT,
        `the gate at ${p.nodeId} was already decided (${(await this.store.getGate(p.executionId, p.nodeId)) ?? gate})`,
      );
    }
    const job: DagControlJob = {
      kind: 'human_decision',
      executionId: p.executionId,
      nodeId: p.nodeId,
      decision: p.decision,
      userId: auth.userId,
      ...(p.feedback !== undefined ? { feedback: p.feedback } : {}),
    };
    await this.control.add('human_decision', job, { jobId });
    return {};
  }

  private async requireExecution(auth: AuthContext, executionId: string) {
    const execution = await this.store.getExecution(executionId);
    if (!execution) throw new ProtocolError(ErrorCode.NOT_FOUND, `no execution ${executionId}`);
    requireScope(auth, executionId);
    if (FINISHED_EXECUTION.has(execution.status))
      throw new ProtocolError(ErrorCode.CONFLICT, `execution ${executionId} already finished (${execution.status})`);
    return execution;
  }
}

function requireScope(auth: AuthContext, executionId: string): void {
  requireAccess(auth, dagStream(executionId));
}
