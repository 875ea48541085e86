import { type BotEvent, foldEvents, initialBotState } from '@app/protocol';
import { withTimestamps } from '@app/protocol/testing/arbitraries';
import { cachiBotFrame, cachiBotRequestOf, cachiBotResyncFrames } from './cachibot.frames';

const run = { sessionId: 's1', runId: 'r1' };
const context = { botId: 'b1', eventId: 'ev-1' };
const approval: BotEvent = {
  type: 'approval_needed',
  payload: { ...run, approvalId: 'a1', tool: 'delete_file', args: { path: '/tmp/x' }, riskLevel: 'high', expiresAt: 99 },
};

describe('CachiBot frames', () => {
  it("maps the contract's bot events to CachiBot's { type, payload } frames", () => {
    expect(
      cachiBotFrame({ type: 'message', payload: { ...run, messageId: 'm1', role: 'assistant', content: 'Hi', delta: true, replyToId: 'u1' } }, context),
    ).toEqual({
      type: 'message',
      payload: { chatId: 's1', runId: 'r1', role: 'assistant', content: 'Hi', messageId: 'm1', replyToId: 'u1' },
    });
    expect(cachiBotFrame({ type: 'tool_start', payload: { ...run, toolCallId: 't1', tool: 'clock', args: {} } }, context)).toEqual({
      type: 'tool_start',
      payload: { chatId: 's1', runId: 'r1', id: 't1', tool: 'clock', args: {} },
    });
    expect(cachiBotFrame({ type: 'tool_end', payload: { ...run, toolCallId: 't1', result: 'noon', success: true, durationMs: 2 } }, context)).toEqual({
      type: 'tool_end',
      payload: { chatId: 's1', runId: 'r1', id: 't1', result: 'noon', success: true, durationMs: 2 },
    });
    expect(cachiBotFrame({ type: 'usage', payload: { ...run, promptTokens: 3, completionTokens: 4, totalTokens: 7, totalCost: 0.5 } }, context)).toEqual({
      type: 'usage',
      payload: { chatId: 's1', runId: 'r1', totalTokens: 7, promptTokens: 3, completionTokens: 4, totalCost: 0.5 },
    });
    expect(cachiBotFrame({ type: 'done', payload: { ...run, replyToId: 'u1', status: 'cancelled' } }, context)).toEqual({
      type: 'done',
      payload: { chatId: 's1', runId: 'r1', status: 'cancelled', replyToId: 'u1' },
    });
    expect(cachiBotFrame(approval, context)).toEqual({
      type: 'approval_needed',
      payload: {
        chatId: 's1',
        runId: 'r1',
        id: 'a1',
        tool: 'delete_file',
        action: 'run delete_file (risk high)',
        details: { args: { path: '/tmp/x' }, riskLevel: 'high', expiresAt: 99 },
      },
    });
    expect(
      cachiBotFrame({ type: 'platform_message', payload: { sessionId: 's2', platform: 'telegram', chatId: 'tg-1', role: 'user', content: 'yo' } }, context),
    ).toEqual({
      type: 'platform_message',
      payload: { botId: 'b1', chatId: 'tg-1', sessionId: 's2', role: 'user', content: 'yo', messageId: 'ev-1', platform: 'telegram' },
    });
    expect(cachiBotFrame({ type: 'plan_created', payload: { ...run, planId: 'p1', plan: '1.' } }, context)).toBeUndefined();
  });

  it('names a session by the chat id its dashboard made, where it made one', () => {
    const frame = cachiBotFrame({ type: 'thinking', payload: { ...run, content: 'x' } }, { ...context, chatIdOf: (id) => (id === 's1' ? 'chat-7' : id) });
    expect(frame).toEqual({ type: 'thinking', payload: { chatId: 'chat-7', runId: 'r1', content: 'x' } });
  });

  it('resyncs with the approvals still waiting', () => {
    const state = foldEvents(
      'bot',
      initialBotState(),
      withTimestamps<BotEvent>([
        { type: 'run_started', payload: { ...run, model: 'demo' } },
        approval,
        { ...approval, payload: { ...approval.payload, approvalId: 'a2' } } as BotEvent,
        { type: 'approval_resolved', payload: { sessionId: 's1', approvalId: 'a1', approved: true, resolvedBy: 'u' } },
      ]),
    );
    expect(cachiBotResyncFrames(state).map((f) => (f.payload as { id: string }).id)).toEqual(['a2']);
  });

  it('reads chat, cancel and approval, naming a bad field by its place in the frame', () => {
    expect(cachiBotRequestOf({ type: 'chat', payload: { message: 'hi', chatId: 'c1', capabilities: {} } })).toEqual({
      type: 'chat',
      content: 'hi',
      chatId: 'c1',
    });
    expect(cachiBotRequestOf({ type: 'cancel' })).toEqual({ type: 'cancel' });
    expect(cachiBotRequestOf({ type: 'approval', payload: { id: 'a1', approved: false } })).toEqual({ type: 'approval', approvalId: 'a1', approved: false });
    expect(() => cachiBotRequestOf({ type: 'chat', payload: {} })).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED', details: [expect.objectContaining({ field: 'payload.message' })] }),
    );
    expect(() => cachiBotRequestOf({ type: 'approval', payload: { id: 'a1', approved: 'yes' } })).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED' }),
    );
    expect(() => cachiBotRequestOf({ type: 'chat', payload: 'hi' })).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => cachiBotRequestOf({ type: 'settings' })).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMMAND' }));
  });
});
