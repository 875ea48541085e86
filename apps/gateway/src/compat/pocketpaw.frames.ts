import type { BotEvent, BotState, ErrorBody, MessageRole, PlanResponse, RunStatus, RunUsage, SessionHistory } from '@app/protocol';
import { type Fields, oneOf, optionalString, requiredString, unknownAction } from './client-frames';

/**
 * A PocketPaw-style session socket (PROTOCOL.md §13, `/compat/pocketpaw/ws`). PocketPaw's
 * dashboard sends `{ action, ...fields }` and reads flat `{ type, ...fields }` frames with
 * snake_case fields; its text travels in `content` (`message`, `error`, `notification`), its
 * session ids in `session_id`, its tool events carry `tool`/`input`/`output`, its token usage
 * `input_tokens`/`output_tokens`. The event names are the contract's §13 list.
 */
export type PocketPawFrame =
  | { type: 'response_chunk'; session_id: string; run_id: string; message_id: string; content: string; is_stream_chunk: boolean }
  | { type: 'stream_end'; session_id: string; run_id: string; status: RunStatus; usage?: PocketPawUsage }
  | { type: 'thinking'; session_id: string; run_id: string; content: string }
  | { type: 'tool_start'; session_id: string; run_id: string; tool_call_id: string; tool: string; input: unknown }
  | {
      type: 'tool_result';
      session_id: string;
      run_id: string;
      tool_call_id: string;
      tool?: string;
      output: string;
      status: 'success' | 'error';
      duration_ms: number;
    }
  | { type: 'plan_created'; session_id: string; run_id: string; plan_id: string; plan: string }
  | { type: 'session_switched'; session_id: string; messages: PocketPawMessage[] }
  | { type: 'inbox_update'; session_id: string; platform: string; chat_id: string; role: MessageRole; content: string }
  | { type: 'error'; code: string; content: string; session_id?: string; run_id?: string; action?: string };

export interface PocketPawUsage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
}

export interface PocketPawMessage {
  id: string;
  role: MessageRole;
  content: string;
  timestamp: string;
  run_id?: string;
}

export type PocketPawAction =
  | { action: 'message'; content: string }
  | { action: 'new_session'; title?: string }
  | { action: 'switch_session'; sessionId: string }
  | { action: 'plan_response'; planId: string; response: PlanResponse; plan?: string; feedback?: string };

/** `chat` is PocketPaw's own name for sending a message (its text in `message`); taken as `message`. */
export const POCKETPAW_ACTIONS = ['message', 'chat', 'new_session', 'switch_session', 'plan_response'] as const;
const PLAN_RESPONSES: readonly PlanResponse[] = ['approve', 'reject', 'edit'];

/** What the mapping of one event needs to know beyond it: the tool a `tool_end` ends, the run's last usage. */
export interface PocketPawContext {
  toolOf?(toolCallId: string): string | undefined;
  usageOf?(runId: string): RunUsage | undefined;
}

/**
 * One bot-stream event as a PocketPaw frame, or undefined for what PocketPaw has no frame for
 * (`run_started`, `usage` — it rides on `stream_end` —, approvals, resolutions, `session_created`,
 * and messages that are not the assistant's: the dashboard shows its user's own text itself).
 */
export function pocketPawFrame(event: BotEvent, context: PocketPawContext = {}): PocketPawFrame | undefined {
  switch (event.type) {
    case 'message': {
      const p = event.payload;
      if (p.role !== 'assistant') return undefined;
      return { type: 'response_chunk', session_id: p.sessionId, run_id: p.runId, message_id: p.messageId, content: p.content, is_stream_chunk: p.delta };
    }
    case 'thinking':
      return { type: 'thinking', session_id: event.payload.sessionId, run_id: event.payload.runId, content: event.payload.content };
    case 'tool_start': {
      const p = event.payload;
      return { type: 'tool_start', session_id: p.sessionId, run_id: p.runId, tool_call_id: p.toolCallId, tool: p.tool, input: p.args };
    }
    case 'tool_end': {
      const p = event.payload;
      const tool = context.toolOf?.(p.toolCallId);
      return {
        type: 'tool_result',
        session_id: p.sessionId,
        run_id: p.runId,
        tool_call_id: p.toolCallId,
        ...(tool !== undefined ? { tool } : {}),
        output: typeof p.result === 'string' ? p.result : JSON.stringify(p.result ?? null),
        status: p.success ? 'success' : 'error',
        duration_ms: p.durationMs,
      };
    }
    case 'plan_created': {
      const p = event.payload;
      return { type: 'plan_created', session_id: p.sessionId, run_id: p.runId, plan_id: p.planId, plan: p.plan };
    }
    case 'done': {
      const p = event.payload;
      const usage = context.usageOf?.(p.runId);
      return { type: 'stream_end', session_id: p.sessionId, run_id: p.runId, status: p.status, ...(usage ? { usage: pocketPawUsage(usage) } : {}) };
    }
    case 'error': {
      const p = event.payload;
      return { type: 'error', code: p.code, content: p.message, session_id: p.sessionId, ...(p.runId !== undefined ? { run_id: p.runId } : {}) };
    }
    case 'platform_message': {
      const p = event.payload;
      return { type: 'inbox_update', session_id: p.sessionId, platform: p.platform, chat_id: p.chatId, role: p.role, content: p.content };
    }
    default:
      return undefined;
  }
}

/** `platform_message` is the bot's inbox: it reaches every session socket of the bot; the rest only the socket of its session. */
export function concernsSession(event: BotEvent, sessionId: string | undefined): boolean {
  return event.type === 'platform_message' || event.payload.sessionId === sessionId;
}

export function sessionSwitchedFrame(history: SessionHistory): PocketPawFrame {
  const messages = history.messages.map(
    (m): PocketPawMessage => ({
      id: m.messageId,
      role: m.role,
      content: m.content,
      timestamp: new Date(m.ts).toISOString(),
      ...(m.runId !== undefined ? { run_id: m.runId } : {}),
    }),
  );
  return { type: 'session_switched', session_id: history.sessionId, messages };
}

/**
 * What a socket resyncing into a session gets after its `session_switched`, from the bot
 * snapshot: the replies its runs are still streaming, so far (those the history already
 * holds whole excepted), and the plans waiting for a `plan_response`.
 */
export function sessionResyncFrames(state: BotState, sessionId: string, inHistory: ReadonlySet<string>): PocketPawFrame[] {
  const frames: PocketPawFrame[] = [];
  for (const run of Object.values(state.activeRuns)) {
    if (run.sessionId !== sessionId) continue;
    for (const m of run.messages) {
      if (m.role !== 'assistant' || inHistory.has(m.messageId) || m.content === '') continue;
      frames.push({ type: 'response_chunk', session_id: sessionId, run_id: run.runId, message_id: m.messageId, content: m.content, is_stream_chunk: true });
    }
  }
  for (const plan of Object.values(state.pendingPlans)) {
    if (plan.sessionId !== sessionId) continue;
    frames.push({ type: 'plan_created', session_id: sessionId, run_id: plan.runId, plan_id: plan.planId, plan: plan.plan });
  }
  return frames;
}

export function pocketPawErrorFrame(error: ErrorBody, action?: string): PocketPawFrame {
  return { type: 'error', code: error.code, content: error.message, ...(action !== undefined ? { action } : {}) };
}

export function pocketPawActionOf(fields: Fields): PocketPawAction {
  switch (fields.action) {
    case 'message':
      // The text in `content`, or in `message` as PocketPaw's own `chat` frame carries it.
      return { action: 'message', content: fields.content !== undefined ? requiredString(fields, 'content') : requiredString(fields, 'message') };
    case 'chat':
      return { action: 'message', content: requiredString(fields, 'message') };
    case 'new_session': {
      const title = optionalString(fields, 'title');
      return { action: 'new_session', ...(title !== undefined ? { title } : {}) };
    }
    case 'switch_session':
      return { action: 'switch_session', sessionId: requiredString(fields, 'session_id') };
    case 'plan_response': {
      const plan = optionalString(fields, 'plan');
      const feedback = optionalString(fields, 'feedback');
      return {
        action: 'plan_response',
        planId: requiredString(fields, 'plan_id'),
        response: oneOf(fields, 'response', PLAN_RESPONSES),
        ...(plan !== undefined ? { plan } : {}),
        ...(feedback !== undefined ? { feedback } : {}),
      };
    }
    default:
      throw unknownAction('action', fields.action, POCKETPAW_ACTIONS);
  }
}

function pocketPawUsage(usage: RunUsage): PocketPawUsage {
  return { input_tokens: usage.promptTokens, output_tokens: usage.completionTokens, total_tokens: usage.totalTokens, cost_usd: usage.totalCost };
}
