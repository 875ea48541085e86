import type { BotEvent, BotState, ErrorBody, MessageRole, PendingApproval, RiskLevel, RunStatus } from '@app/protocol';
import { type Fields, fieldsOf, optionalString, requiredBoolean, requiredString, unknownAction } from './client-frames';

/**
 * A CachiBot-style bot socket (PROTOCOL.md §13, `/compat/cachibot/ws?bot=<botId>`): every
 * frame is `{ type, payload }`, payload fields camelCase, as CachiBot's `WSMessage` and its
 * dashboard's `useWebSocket` hook have them. Where the contract knows more than CachiBot
 * sent, the payload carries it as an addition: `chatId` and `runId` on every run frame,
 * `status` on `done`, `durationMs` on `tool_end`.
 */
export type CachiBotFrame =
  | { type: 'thinking'; payload: RunRef & { content: string } }
  | { type: 'tool_start'; payload: RunRef & { id: string; tool: string; args: unknown } }
  | { type: 'tool_end'; payload: RunRef & { id: string; result: unknown; success: boolean; durationMs: number } }
  | { type: 'message'; payload: RunRef & { role: MessageRole; content: string; messageId: string; replyToId?: string } }
  | { type: 'usage'; payload: RunRef & { totalTokens: number; promptTokens: number; completionTokens: number; totalCost: number } }
  | { type: 'error'; payload: { message: string; code: string; chatId?: string; runId?: string } }
  | { type: 'done'; payload: RunRef & { status: RunStatus; replyToId?: string } }
  | {
      type: 'platform_message';
      payload: { botId: string; chatId: string; sessionId: string; role: MessageRole; content: string; messageId: string; platform: string };
    }
  | { type: 'approval_needed'; payload: RunRef & { id: string; tool: string; action: string; details: ApprovalDetails } };

interface RunRef {
  chatId: string;
  runId: string;
}

/** CachiBot's approval card shows `tool`, `action` (a sentence) and `details`; the contract's fields go in `details`. */
export interface ApprovalDetails {
  args: unknown;
  riskLevel: RiskLevel;
  expiresAt: number;
}

export type CachiBotRequest =
  | { type: 'chat'; content: string; chatId?: string; botId?: string; model?: string; systemPrompt?: string }
  | { type: 'cancel'; runId?: string }
  | { type: 'approval'; approvalId: string; approved: boolean; note?: string };

export const CACHIBOT_CLIENT_TYPES = ['chat', 'cancel', 'approval'] as const;

/** What a frame needs beyond its event: the bot, the chat id the dashboard knows a session by, the event's own id. */
export interface CachiBotContext {
  botId: string;
  eventId: string;
  chatIdOf?(sessionId: string): string;
}

/**
 * One bot-stream event as a CachiBot frame, or undefined for what CachiBot has no frame for
 * (`run_started`, `approval_resolved`, plans, `session_created`).
 */
export function cachiBotFrame(event: BotEvent, context: CachiBotContext): CachiBotFrame | undefined {
  const chatId = (sessionId: string) => context.chatIdOf?.(sessionId) ?? sessionId;
  switch (event.type) {
    case 'thinking':
      return { type: 'thinking', payload: { chatId: chatId(event.payload.sessionId), runId: event.payload.runId, content: event.payload.content } };
    case 'tool_start': {
      const p = event.payload;
      return { type: 'tool_start', payload: { chatId: chatId(p.sessionId), runId: p.runId, id: p.toolCallId, tool: p.tool, args: p.args } };
    }
    case 'tool_end': {
      const p = event.payload;
      return {
        type: 'tool_end',
        payload: { chatId: chatId(p.sessionId), runId: p.runId, id: p.toolCallId, result: p.result, success: p.success, durationMs: p.durationMs },
      };
    }
    case 'message': {
      const p = event.payload;
      const replyTo = p.replyToId !== undefined ? { replyToId: p.replyToId } : {};
      return {
        type: 'message',
        payload: { chatId: chatId(p.sessionId), runId: p.runId, role: p.role, content: p.content, messageId: p.messageId, ...replyTo },
      };
    }
    case 'usage': {
      const p = event.payload;
      return {
        type: 'usage',
        payload: {
          chatId: chatId(p.sessionId),
          runId: p.runId,
          totalTokens: p.totalTokens,
          promptTokens: p.promptTokens,
          completionTokens: p.completionTokens,
          totalCost: p.totalCost,
        },
      };
    }
    case 'error': {
      const p = event.payload;
      return {
        type: 'error',
        payload: { message: p.message, code: p.code, chatId: chatId(p.sessionId), ...(p.runId !== undefined ? { runId: p.runId } : {}) },
      };
    }
    case 'done': {
      const p = event.payload;
      return {
        type: 'done',
        payload: { chatId: chatId(p.sessionId), runId: p.runId, status: p.status, ...(p.replyToId !== undefined ? { replyToId: p.replyToId } : {}) },
      };
    }
    case 'platform_message': {
      const p = event.payload;
      return {
        type: 'platform_message',
        payload: {
          botId: context.botId,
          chatId: p.chatId,
          sessionId: p.sessionId,
          role: p.role,
          content: p.content,
          messageId: context.eventId,
          platform: p.platform,
        },
      };
    }
    case 'approval_needed':
      return approvalNeeded(event.payload, chatId(event.payload.sessionId));
    default:
      return undefined;
  }
}

/** On every (re)connect, from the snapshot: the approvals still waiting, so the dashboard can show their cards again. */
export function cachiBotResyncFrames(state: BotState, chatIdOf?: (sessionId: string) => string): CachiBotFrame[] {
  return Object.values(state.pendingApprovals).map((approval) => approvalNeeded(approval, chatIdOf?.(approval.sessionId) ?? approval.sessionId));
}

export function cachiBotErrorFrame(error: ErrorBody): CachiBotFrame {
  return { type: 'error', payload: { message: error.message, code: error.code } };
}

export function cachiBotRequestOf(fields: Fields): CachiBotRequest {
  const payload = fields.payload === undefined ? {} : fieldsOf(fields.payload, 'payload');
  switch (fields.type) {
    case 'chat': {
      // CachiBot's other chat fields (models, capabilities, toolConfigs, enabledSkills, replyToId) have no contract counterpart.
      const request: Extract<CachiBotRequest, { type: 'chat' }> = { type: 'chat', content: requiredString(payload, 'message', 'payload.message') };
      for (const name of ['chatId', 'botId', 'model', 'systemPrompt'] as const) {
        const value = optionalString(payload, name, `payload.${name}`);
        if (value !== undefined) request[name] = value;
      }
      return request;
    }
    case 'cancel': {
      const runId = optionalString(payload, 'runId', 'payload.runId');
      return { type: 'cancel', ...(runId !== undefined ? { runId } : {}) };
    }
    case 'approval': {
      const note = optionalString(payload, 'note', 'payload.note');
      return {
        type: 'approval',
        approvalId: requiredString(payload, 'id', 'payload.id'),
        approved: requiredBoolean(payload, 'approved', 'payload.approved'),
        ...(note !== undefined ? { note } : {}),
      };
    }
    default:
      throw unknownAction('type', fields.type, CACHIBOT_CLIENT_TYPES);
  }
}

function approvalNeeded(approval: PendingApproval, chatId: string): CachiBotFrame {
  return {
    type: 'approval_needed',
    payload: {
      chatId,
      runId: approval.runId,
      id: approval.approvalId,
      tool: approval.tool,
      action: `run ${approval.tool} (risk ${approval.riskLevel})`,
      details: { args: approval.args, riskLevel: approval.riskLevel, expiresAt: approval.expiresAt },
    },
  };
}
