import type { Envelope } from '../envelope';

/** Bot stream events (PROTOCOL.md §4). Every payload carries `sessionId`. */
export type MessageRole = 'user' | 'assistant' | 'system' | 'tool';
export type RiskLevel = 'low' | 'medium' | 'high' | 'critical';
export type RunStatus = 'completed' | 'cancelled' | 'failed';
export type PlanResponse = 'approve' | 'reject' | 'edit';

export interface BotEventPayloads {
  run_started: { sessionId: string; runId: string; model: string };
  thinking: { sessionId: string; runId: string; content: string };
  message: {
    sessionId: string;
    runId: string;
    messageId: string;
    role: MessageRole;
    content: string;
    /** `true` for a streamed chunk appended to `messageId`; `false` for the whole message. */
    delta: boolean;
    replyToId?: string;
  };
  tool_start: { sessionId: string; runId: string; toolCallId: string; tool: string; args: unknown };
  tool_end: {
    sessionId: string;
    runId: string;
    toolCallId: string;
    result: unknown;
    success: boolean;
    durationMs: number;
  };
  approval_needed: {
    sessionId: string;
    runId: string;
    approvalId: string;
    tool: string;
    args: unknown;
    riskLevel: RiskLevel;
    expiresAt: number;
  };
  approval_resolved: { sessionId: string; approvalId: string; approved: boolean; resolvedBy: string };
  plan_created: { sessionId: string; runId: string; planId: string; plan: string };
  plan_resolved: { sessionId: string; planId: string; response: PlanResponse; resolvedBy: string };
  usage: {
    sessionId: string;
    runId: string;
    promptTokens: number;
    completionTokens: number;
    totalTokens: number;
    totalCost: number;
  };
  error: { sessionId: string; runId?: string; code: string; message: string };
  done: { sessionId: string; runId: string; replyToId?: string; status: RunStatus };
  session_created: { sessionId: string; title: string };
  platform_message: { sessionId: string; platform: string; chatId: string; role: MessageRole; content: string };
}

export type BotEventType = keyof BotEventPayloads;

/** A bot event as a discriminated union on `type`: a `switch` narrows the payload. */
export type BotEvent = {
  [K in BotEventType]: { type: K; payload: BotEventPayloads[K] };
}[BotEventType];

export type BotEnvelope = {
  [K in BotEventType]: Envelope<K, BotEventPayloads[K]>;
}[BotEventType];

export const BOT_EVENT_TYPES: readonly BotEventType[] = [
  'run_started',
  'thinking',
  'message',
  'tool_start',
  'tool_end',
  'approval_needed',
  'approval_resolved',
  'plan_created',
  'plan_resolved',
  'usage',
  'error',
  'done',
  'session_created',
  'platform_message',
];
