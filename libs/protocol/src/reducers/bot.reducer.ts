import type { Envelope } from '../envelope';
import type { BotEventPayloads, MessageRole, RiskLevel, RunStatus } from '../events/bot';
import { capped, filterValues, own, withEntry, without } from './records';

/**
 * The state of a bot stream: what a dashboard needs to draw it without history. It is
 * plain JSON (no Maps, no undefined-valued keys) because it travels as a snapshot and is
 * stored as a checkpoint; the fold is pure, so server snapshots and client stores agree.
 */
export interface BotState {
  activeRuns: Record<string, BotRun>;
  pendingApprovals: Record<string, PendingApproval>;
  pendingPlans: Record<string, PendingPlan>;
  /** Most recently active sessions, oldest first, at most {@link BOT_RECENT_SESSIONS}. */
  sessions: SessionSummary[];
  /** Runs that ended, oldest first, at most {@link BOT_RECENT_RUNS}. */
  recentRuns: FinishedRun[];
  /** Errors not tied to an active run, oldest first, at most {@link BOT_RECENT_ERRORS}. */
  recentErrors: StreamError[];
}

export interface BotRun {
  runId: string;
  sessionId: string;
  model: string;
  startedAt: number;
  thinking: string;
  /** Messages of this run in arrival order; streamed chunks are joined per `messageId`. */
  messages: RunMessage[];
  tools: Record<string, ToolCall>;
  usage?: RunUsage;
  error?: StreamError;
}

export interface RunMessage {
  messageId: string;
  role: MessageRole;
  content: string;
  replyToId?: string;
}

export interface ToolCall {
  tool: string;
  args: unknown;
  status: 'running' | 'succeeded' | 'failed';
  result?: unknown;
  durationMs?: number;
}

export interface RunUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  totalCost: number;
}

export interface PendingApproval {
  approvalId: string;
  runId: string;
  sessionId: string;
  tool: string;
  args: unknown;
  riskLevel: RiskLevel;
  expiresAt: number;
}

export interface PendingPlan {
  planId: string;
  runId: string;
  sessionId: string;
  plan: string;
}

export interface SessionSummary {
  sessionId: string;
  title?: string;
  lastActivityAt: number;
  /** The session's runs added up (each run's `usage` totals), once any run of it reported usage. */
  usage?: RunUsage;
}

export interface FinishedRun {
  runId: string;
  sessionId: string;
  status: RunStatus;
  endedAt: number;
  usage?: RunUsage;
}

export interface StreamError {
  code: string;
  message: string;
  at: number;
  runId?: string;
  nodeId?: string;
}

export const BOT_RECENT_SESSIONS = 50;
export const BOT_RECENT_RUNS = 20;
export const BOT_RECENT_ERRORS = 20;

export function initialBotState(): BotState {
  return { activeRuns: {}, pendingApprovals: {}, pendingPlans: {}, sessions: [], recentRuns: [], recentErrors: [] };
}

type Handler<K extends keyof BotEventPayloads> = (state: BotState, payload: BotEventPayloads[K], ts: number) => BotState;

/** One handler per event type; each returns a new state and never mutates its input. */
const handlers: { [K in keyof BotEventPayloads]: Handler<K> } = {
  run_started: (s, p, ts) =>
    touchSession(
      {
        ...s,
        activeRuns: withEntry(s.activeRuns, p.runId, {
          runId: p.runId,
          sessionId: p.sessionId,
          model: p.model,
          startedAt: ts,
          thinking: '',
          messages: [],
          tools: {},
        }),
      },
      p.sessionId,
      ts,
    ),
  thinking: (s, p) => updateRun(s, p.runId, (run) => ({ ...run, thinking: run.thinking + p.content })),
  message: (s, p) =>
    updateRun(s, p.runId, (run) => {
      const index = run.messages.findIndex((m) => m.messageId === p.messageId);
      const previous = index >= 0 ? run.messages[index] : undefined;
      const next: RunMessage = {
        messageId: p.messageId,
        role: p.role,
        content: p.delta && previous ? previous.content + p.content : p.content,
      };
      const replyToId = p.replyToId ?? previous?.replyToId;
      if (replyToId !== undefined) next.replyToId = replyToId;
      const messages = index >= 0 ? run.messages.map((m, i) => (i === index ? next : m)) : [...run.messages, next];
      return { ...run, messages };
    }),
  tool_start: (s, p) =>
    updateRun(s, p.runId, (run) => ({
      ...run,
      tools: withEntry(run.tools, p.toolCallId, { tool: p.tool, args: p.args, status: 'running' }),
    })),
  tool_end: (s, p) =>
    updateRun(s, p.runId, (run) => {
      const started = own(run.tools, p.toolCallId);
      const call: ToolCall = {
        tool: started?.tool ?? 'unknown',
        args: started?.args ?? null,
        status: p.success ? 'succeeded' : 'failed',
        result: p.result,
        durationMs: p.durationMs,
      };
      return { ...run, tools: withEntry(run.tools, p.toolCallId, call) };
    }),
  approval_needed: (s, p) => ({
    ...s,
    pendingApprovals: withEntry(s.pendingApprovals, p.approvalId, {
      approvalId: p.approvalId,
      runId: p.runId,
      sessionId: p.sessionId,
      tool: p.tool,
      args: p.args,
      riskLevel: p.riskLevel,
      expiresAt: p.expiresAt,
    }),
  }),
  approval_resolved: (s, p) => ({ ...s, pendingApprovals: without(s.pendingApprovals, p.approvalId) }),
  plan_created: (s, p) => ({
    ...s,
    pendingPlans: withEntry(s.pendingPlans, p.planId, { planId: p.planId, runId: p.runId, sessionId: p.sessionId, plan: p.plan }),
  }),
  plan_resolved: (s, p) => ({ ...s, pendingPlans: without(s.pendingPlans, p.planId) }),
  usage: (s, p) => {
    const run = own(s.activeRuns, p.runId);
    if (!run) return s;
    const usage: RunUsage = { promptTokens: p.promptTokens, completionTokens: p.completionTokens, totalTokens: p.totalTokens, totalCost: p.totalCost };
    // `usage` carries a run's totals so far: the session gains what is new since the run's last one.
    const added = subtractUsage(usage, run.usage);
    const sessions = s.sessions.map((x) => (x.sessionId === run.sessionId ? { ...x, usage: addUsage(x.usage, added) } : x));
    return { ...updateRun(s, p.runId, (r) => ({ ...r, usage })), sessions };
  },
  error: (s, p, ts) => {
    const error: StreamError = { code: p.code, message: p.message, at: ts };
    if (p.runId !== undefined) error.runId = p.runId;
    if (p.runId !== undefined && own(s.activeRuns, p.runId)) {
      return updateRun(s, p.runId, (run) => ({ ...run, error }));
    }
    return { ...s, recentErrors: capped([...s.recentErrors, error], BOT_RECENT_ERRORS) };
  },
  done: (s, p, ts) => {
    const run = own(s.activeRuns, p.runId);
    const finished: FinishedRun = { runId: p.runId, sessionId: p.sessionId, status: p.status, endedAt: ts };
    if (run?.usage) finished.usage = run.usage;
    const next: BotState = {
      ...s,
      activeRuns: without(s.activeRuns, p.runId),
      // A run's open approvals and plans die with it.
      pendingApprovals: filterValues(s.pendingApprovals, (a) => a.runId !== p.runId),
      pendingPlans: filterValues(s.pendingPlans, (a) => a.runId !== p.runId),
      recentRuns: capped([...s.recentRuns.filter((r) => r.runId !== p.runId), finished], BOT_RECENT_RUNS),
    };
    return touchSession(next, p.sessionId, ts);
  },
  session_created: (s, p, ts) => touchSession(s, p.sessionId, ts, p.title),
  platform_message: (s, p, ts) => touchSession(s, p.sessionId, ts),
};

/**
 * Folds one bot-stream envelope into the state. Unknown event types (future additions to
 * the contract) leave the state unchanged.
 */
export function foldBot(state: BotState, event: Pick<Envelope, 'type' | 'payload' | 'ts'>): BotState {
  const handler = (handlers as Record<string, Handler<keyof BotEventPayloads> | undefined>)[event.type];
  if (!handler) return state;
  return handler(state, event.payload as never, event.ts);
}

function updateRun(state: BotState, runId: string, update: (run: BotRun) => BotRun): BotState {
  const run = own(state.activeRuns, runId);
  // Events of a run this state never saw start (or saw end) carry nothing to keep.
  if (!run) return state;
  return { ...state, activeRuns: withEntry(state.activeRuns, runId, update(run)) };
}

function touchSession(state: BotState, sessionId: string, ts: number, title?: string): BotState {
  const existing = state.sessions.find((x) => x.sessionId === sessionId);
  const summary: SessionSummary = { sessionId, lastActivityAt: ts };
  const keptTitle = title ?? existing?.title;
  if (keptTitle !== undefined) summary.title = keptTitle;
  if (existing?.usage) summary.usage = existing.usage;
  const others = state.sessions.filter((x) => x.sessionId !== sessionId);
  return { ...state, sessions: capped([...others, summary], BOT_RECENT_SESSIONS) };
}

function addUsage(total: RunUsage | undefined, more: RunUsage): RunUsage {
  return {
    promptTokens: (total?.promptTokens ?? 0) + more.promptTokens,
    completionTokens: (total?.completionTokens ?? 0) + more.completionTokens,
    totalTokens: (total?.totalTokens ?? 0) + more.totalTokens,
    totalCost: roundUsd((total?.totalCost ?? 0) + more.totalCost),
  };
}

function subtractUsage(usage: RunUsage, earlier: RunUsage | undefined): RunUsage {
  if (!earlier) return usage;
  return {
    promptTokens: usage.promptTokens - earlier.promptTokens,
    completionTokens: usage.completionTokens - earlier.completionTokens,
    totalTokens: usage.totalTokens - earlier.totalTokens,
    totalCost: usage.totalCost - earlier.totalCost,
  };
}

/** Sums of tiny prices give 0.30000000000000004: costs (run totals, session totals) are kept to 1e-9 USD. */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}
