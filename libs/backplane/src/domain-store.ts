import type { BusyPolicy, DagDefinition, PlanResponse, SessionHistoryMessage } from '@app/protocol';
import { domainKeys } from './keys';
import { type RedisClient, runScript } from './scripts';

/**
 * The small records of the bot/DAG domain that gateways check before queueing a command
 * and workers update as work progresses. Each is a Redis hash with a TTL; statuses only
 * move forward, through the `transition` helpers that check the current one atomically.
 * A run `waiting` is parked on an approval or a plan, holding no worker; its continuation is
 * kept apart (`saveRunState`).
 */
export type RunRecordStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'cancelled' | 'failed';
/** `failing`: a node failure (or the budget) ends the execution; it stops once its running nodes stop. */
export type ExecutionStatus = 'queued' | 'running' | 'paused' | 'cancelling' | 'failing' | 'completed' | 'failed' | 'cancelled';

export interface RunRecord {
  botId: string;
  sessionId: string;
  userId: string;
  status: RunRecordStatus;
  cancelRequested: boolean;
}

export interface SessionRecord {
  botId: string;
  title: string;
  createdBy: string;
  createdAt: number;
}

export interface PendingDecisionRecord {
  botId: string;
  runId: string;
  sessionId: string;
  status: 'pending' | 'resolved';
  /** Answers after this time (ms since the epoch) are refused; the run applies its default. */
  expiresAt?: number;
  /** The winning answer, once resolved. */
  answer?: DecisionAnswer;
}

/**
 * How a decision was settled. `resolvedBy` is the deciding user's `sub`, or `system` when the
 * decision expired or its run ended first (`expired` / `closed`).
 */
export type DecisionAnswer =
  | { kind: 'approval'; approved: boolean; note?: string; resolvedBy: string; expired?: boolean; closed?: boolean }
  | { kind: 'plan'; response: PlanResponse; plan?: string; feedback?: string; resolvedBy: string; expired?: boolean; closed?: boolean };

export type DecideOutcome = 'resolved' | 'missing' | 'expired' | 'conflict';

/** What `admitSessionRun` did: `busy` only under `reject`. `ahead` lists the unfinished runs before it. */
export interface SessionAdmission {
  outcome: 'admitted' | 'busy';
  ahead: string[];
}

export interface ExecutionRecord {
  userId: string;
  status: ExecutionStatus;
}

export interface BotSettings {
  onBusy: BusyPolicy;
}

export const FINISHED_RUN: ReadonlySet<RunRecordStatus> = new Set(['completed', 'cancelled', 'failed']);
export const FINISHED_EXECUTION: ReadonlySet<ExecutionStatus> = new Set(['completed', 'failed', 'cancelled']);

const DAY = 24 * 3600;
const TTL = { run: 7 * DAY, session: 30 * DAY, decision: 7 * DAY, execution: 7 * DAY };
export const SESSION_HISTORY_MAX = 200;

export class DomainStore {
  constructor(private readonly redis: RedisClient) {}

  async createRun(runId: string, run: Omit<RunRecord, 'status' | 'cancelRequested'>): Promise<void> {
    const key = domainKeys.run(runId);
    await this.redis.multi().hsetnx(key, 'status', 'queued').hset(key, run).expire(key, TTL.run).exec();
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const h = await this.redis.hgetall(domainKeys.run(runId));
    if (!h.botId) return null;
    return { botId: h.botId, sessionId: h.sessionId, userId: h.userId, status: h.status as RunRecordStatus, cancelRequested: h.cancelRequested === '1' };
  }

  async setRunStatus(runId: string, status: RunRecordStatus): Promise<void> {
    await this.redis.hset(domainKeys.run(runId), 'status', status);
  }

  async requestCancel(runId: string): Promise<void> {
    await this.redis.hset(domainKeys.run(runId), 'cancelRequested', '1');
  }

  /** Creates the session; false when it existed already (a retried command). */
  async createSession(sessionId: string, session: SessionRecord): Promise<boolean> {
    const key = domainKeys.session(sessionId);
    const created = await this.redis.hsetnx(key, 'botId', session.botId);
    if (created === 1) {
      await this.redis
        .multi()
        .hset(key, { ...session })
        .expire(key, TTL.session)
        .exec();
    }
    return created === 1;
  }

  async getSession(sessionId: string): Promise<(SessionRecord & { announced: boolean }) | null> {
    const h = await this.redis.hgetall(domainKeys.session(sessionId));
    if (!h.botId) return null;
    return { botId: h.botId, title: h.title ?? '', createdBy: h.createdBy ?? '', createdAt: Number(h.createdAt ?? 0), announced: h.announced === '1' };
  }

  /** The session's `session_created` event is out (a retry then need not publish it again). */
  async markSessionAnnounced(sessionId: string): Promise<void> {
    await this.redis.hset(domainKeys.session(sessionId), 'announced', '1');
  }

  async appendSessionMessage(sessionId: string, message: SessionHistoryMessage): Promise<void> {
    const key = domainKeys.sessionMessages(sessionId);
    await this.redis
      .multi()
      .rpush(key, JSON.stringify(message))
      .ltrim(key, -SESSION_HISTORY_MAX, -1)
      .expire(key, TTL.session)
      .expire(domainKeys.session(sessionId), TTL.session)
      .exec();
  }

  async sessionMessages(sessionId: string): Promise<SessionHistoryMessage[]> {
    const raw = await this.redis.lrange(domainKeys.sessionMessages(sessionId), 0, -1);
    return raw.map((m) => JSON.parse(m) as SessionHistoryMessage);
  }

  /** Opens a decision once: a retry (the run resumed after a crash) leaves an answered one as it is. */
  async createDecision(kind: 'approval' | 'plan', id: string, record: Omit<PendingDecisionRecord, 'status' | 'answer'>): Promise<void> {
    const key = decisionKey(kind, id);
    const { expiresAt, ...fields } = record;
    await this.redis
      .multi()
      .hsetnx(key, 'status', 'pending')
      .hset(key, { ...fields, ...(expiresAt !== undefined ? { expiresAt: String(expiresAt) } : {}) })
      .expire(key, TTL.decision)
      .exec();
  }

  async getDecision(kind: 'approval' | 'plan', id: string): Promise<PendingDecisionRecord | null> {
    const h = await this.redis.hgetall(decisionKey(kind, id));
    if (!h.botId) return null;
    const record: PendingDecisionRecord = { botId: h.botId, runId: h.runId, sessionId: h.sessionId, status: h.status as PendingDecisionRecord['status'] };
    if (h.expiresAt) record.expiresAt = Number(h.expiresAt);
    if (h.answer) record.answer = JSON.parse(h.answer) as DecisionAnswer;
    return record;
  }

  /**
   * Answers a pending decision (first answer wins, kept with it). `now` refuses an answer past
   * `expiresAt`; the expiry itself passes `now: 0`. `owner` (the control job's id) makes a
   * retry of the winning answer `resolved` again.
   */
  async decide(id: string, answer: DecisionAnswer, owner: string, now: number): Promise<DecideOutcome> {
    return (await runScript(this.redis, 'rtDecideV1', [decisionKey(answer.kind, id)], [owner, JSON.stringify(answer), now])) as DecideOutcome;
  }

  /** A parked run's continuation, kept as long as its run record. */
  async saveRunState(runId: string, state: unknown): Promise<void> {
    await this.redis.set(domainKeys.runState(runId), JSON.stringify(state), 'EX', TTL.run);
  }

  async loadRunState<T>(runId: string): Promise<T | null> {
    const raw = await this.redis.get(domainKeys.runState(runId));
    return raw ? (JSON.parse(raw) as T) : null;
  }

  async deleteRunState(runId: string): Promise<void> {
    await this.redis.del(domainKeys.runState(runId));
  }

  /** Puts the run in its session's line (see `rtAdmitSessionRunV1`). */
  async admitSessionRun(sessionId: string, runId: string, policy: BusyPolicy): Promise<SessionAdmission> {
    const reply = (await runScript(this.redis, 'rtAdmitSessionRunV1', [domainKeys.sessionRuns(sessionId)], [runId, policy, TTL.session])) as string[];
    const [outcome, ...ahead] = reply;
    return { outcome: outcome as SessionAdmission['outcome'], ahead };
  }

  /** The session's unfinished runs, oldest (the one allowed to run) first. */
  async sessionRuns(sessionId: string): Promise<string[]> {
    return this.redis.lrange(domainKeys.sessionRuns(sessionId), 0, -1);
  }

  /** Takes a run out of its session's line (it finished); returns the run now at the head, if any. */
  async releaseSessionRun(sessionId: string, runId: string): Promise<string | null> {
    const key = domainKeys.sessionRuns(sessionId);
    const [, head] = (await this.redis.multi().lrem(key, 0, runId).lindex(key, 0).exec()) ?? [];
    const value = head?.[1];
    return typeof value === 'string' ? value : null;
  }

  /** Settings gateways apply for a bot without asking a worker (written by workers at start; `*` is every other bot). */
  async setBotSettings(botId: string, settings: BotSettings): Promise<void> {
    await this.redis.hset(domainKeys.botSettings(), botId, JSON.stringify(settings));
  }

  async botSettings(botId: string): Promise<BotSettings | null> {
    const [own, fallback] = await this.redis.hmget(domainKeys.botSettings(), botId, '*');
    const raw = own ?? fallback;
    return raw ? (JSON.parse(raw) as BotSettings) : null;
  }

  async createExecution(executionId: string, userId: string): Promise<boolean> {
    const key = domainKeys.execution(executionId);
    const created = await this.redis.hsetnx(key, 'status', 'queued');
    await this.redis.multi().hset(key, 'userId', userId).expire(key, TTL.execution).exec();
    return created === 1;
  }

  async getExecution(executionId: string): Promise<ExecutionRecord | null> {
    const h = await this.redis.hgetall(domainKeys.execution(executionId));
    if (!h.status) return null;
    return { userId: h.userId ?? '', status: h.status as ExecutionStatus };
  }

  /** Moves the execution to `status` if it is in one of `from`; returns the previous status or null. */
  async transitionExecution(executionId: string, status: ExecutionStatus, from: readonly ExecutionStatus[], owner = ''): Promise<ExecutionStatus | null> {
    return (await this.transition(domainKeys.execution(executionId), 'status', status, from, owner)) as ExecutionStatus | null;
  }

  /** Human gates of an execution: `waiting` until a decision, then the decision (a gate opened again keeps it). */
  async openGate(executionId: string, nodeId: string): Promise<void> {
    await this.redis.hsetnx(domainKeys.execution(executionId), `gate:${nodeId}`, 'waiting');
  }

  /** Records the decision if the gate still waits; false when another decision came first. */
  async decideGate(executionId: string, nodeId: string, decision: string, owner = ''): Promise<boolean> {
    return (await this.transition(domainKeys.execution(executionId), `gate:${nodeId}`, decision, ['waiting'], owner)) !== null;
  }

  async getGate(executionId: string, nodeId: string): Promise<string | null> {
    return this.redis.hget(domainKeys.execution(executionId), `gate:${nodeId}`);
  }

  private async transition(key: string, field: string, value: string, from: readonly string[], owner = ''): Promise<string | null> {
    const previous = await runScript(this.redis, 'rtTransitionV1', [key], [field, value, owner, ...from]);
    return typeof previous === 'string' ? previous : null;
  }

  async saveDagDefinition(dagId: string, definition: DagDefinition): Promise<void> {
    await this.redis.set(domainKeys.dagDefinition(dagId), JSON.stringify(definition));
  }

  async getDagDefinition(dagId: string): Promise<DagDefinition | null> {
    const raw = await this.redis.get(domainKeys.dagDefinition(dagId));
    return raw ? (JSON.parse(raw) as DagDefinition) : null;
  }
}

function decisionKey(kind: 'approval' | 'plan', id: string): string {
  return kind === 'approval' ? domainKeys.approval(id) : domainKeys.plan(id);
}
