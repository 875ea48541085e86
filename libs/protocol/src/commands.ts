import type { ErrorBody } from './errors';
import type { DagDefinition, HumanDecision } from './events/dag';
import type { PlanResponse } from './events/bot';
import type { StreamName } from './streams';
import type { ProtocolVersion } from './version';
import type { BotState } from './reducers/bot.reducer';
import type { DagState } from './reducers/dag.reducer';

/**
 * What a `chat` does when its session already has a run in progress (PROTOCOL.md §9):
 * `reject` acks CONFLICT, `enqueue` runs after it, `interrupt` cancels it and runs now.
 */
export type BusyPolicy = 'reject' | 'enqueue' | 'interrupt';
export const BUSY_POLICIES: readonly BusyPolicy[] = ['reject', 'enqueue', 'interrupt'];

/** Command payloads and results (PROTOCOL.md §3), one entry per command type. */
export interface CommandMap {
  subscribe: {
    payload: { stream: StreamName; sinceSeq?: number; epoch?: string; lastId?: string };
    result: SubscribeResult;
  };
  unsubscribe: { payload: { stream: StreamName }; result: Record<string, never> };
  presence: { payload: { stream: StreamName }; result: { members: PresenceMember[] } };
  refresh_token: { payload: { token: string }; result: { expiresAt: number } };
  chat: {
    payload: { botId: string; content: string; sessionId?: string; model?: string; systemPrompt?: string; onBusy?: BusyPolicy };
    result: { runId: string; sessionId: string; jobId: string };
  };
  cancel: { payload: { runId: string }; result: Record<string, never> };
  approval: { payload: { approvalId: string; approved: boolean; note?: string }; result: Record<string, never> };
  plan_response: {
    payload: { planId: string; response: PlanResponse; plan?: string; feedback?: string };
    result: Record<string, never>;
  };
  new_session: { payload: { botId: string; title?: string }; result: { sessionId: string } };
  switch_session: { payload: { sessionId: string }; result: SessionHistory };
  start_execution: {
    payload: { dag?: DagDefinition; dagId?: string; inputs?: Record<string, unknown>; budgetUsd?: number };
    result: { executionId: string; jobId: string };
  };
  human_decision: {
    payload: { executionId: string; nodeId: string; decision: HumanDecision; feedback?: string };
    result: Record<string, never>;
  };
  pause_execution: { payload: { executionId: string }; result: Record<string, never> };
  resume_execution: { payload: { executionId: string }; result: Record<string, never> };
  cancel_execution: { payload: { executionId: string }; result: Record<string, never> };
}

export type CommandType = keyof CommandMap;
export type CommandPayload<T extends CommandType> = CommandMap[T]['payload'];
export type CommandResult<T extends CommandType> = CommandMap[T]['result'];

export const COMMAND_TYPES: readonly CommandType[] = [
  'subscribe',
  'unsubscribe',
  'presence',
  'refresh_token',
  'chat',
  'cancel',
  'approval',
  'plan_response',
  'new_session',
  'switch_session',
  'start_execution',
  'human_decision',
  'pause_execution',
  'resume_execution',
  'cancel_execution',
];

export function isCommandType(type: unknown): type is CommandType {
  return typeof type === 'string' && (COMMAND_TYPES as readonly string[]).includes(type);
}

/** The `command` frame a client emits, with an acknowledgement callback. */
export interface CommandRequest<T extends CommandType = CommandType> {
  v: ProtocolVersion;
  /** Chosen by the client; the idempotency key of the command. */
  id: string;
  type: T;
  payload: CommandPayload<T>;
}

export type Ack<TResult = unknown> = { ok: true; result: TResult } | { ok: false; error: ErrorBody };

/** Command ids are client-chosen keys: printable, bounded, safe inside Redis keys. */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

export interface SubscribeResult {
  stream: StreamName;
  epoch: string;
  /** The stream position the client is at once this result is handled: live events follow from `seq + 1`. */
  seq: number;
  /** Present when the server answered with state instead of a replay. */
  snapshot?: BotState | DagState;
  /** How many events with `seq > sinceSeq` follow as `event` frames (0 with a snapshot). */
  replayed: number;
}

export interface PresenceMember {
  userId: string;
  connections: number;
}

export interface SessionHistoryMessage {
  messageId: string;
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: string;
  runId?: string;
  ts: number;
}

export interface SessionHistory {
  sessionId: string;
  botId?: string;
  messages: SessionHistoryMessage[];
}
