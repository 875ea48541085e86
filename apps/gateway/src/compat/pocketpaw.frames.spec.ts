import { type BotEvent, foldEvents, initialBotState } from '@app/protocol';
import { withTimestamps } from '@app/protocol/testing/arbitraries';
import { concernsSession, pocketPawActionOf, pocketPawFrame, sessionResyncFrames, sessionSwitchedFrame } from './pocketpaw.frames';

const run = { sessionId: 's1', runId: 'r1' };

describe('PocketPaw frames', () => {
  it("maps the assistant's chunks, thinking, tools, plans and the run's end to PocketPaw's frames", () => {
    expect(pocketPawFrame({ type: 'message', payload: { ...run, messageId: 'm1', role: 'assistant', content: 'Hel', delta: true } })).toEqual({
      type: 'response_chunk',
      session_id: 's1',
      run_id: 'r1',
      message_id: 'm1',
      content: 'Hel',
      is_stream_chunk: true,
    });
    expect(pocketPawFrame({ type: 'thinking', payload: { ...run, content: 'hmm' } })).toEqual({
      type: 'thinking',
      session_id: 's1',
      run_id: 'r1',
      content: 'hmm',
    });
    expect(pocketPawFrame({ type: 'tool_start', payload: { ...run, toolCallId: 't1', tool: 'calculator', args: { expression: '2+2' } } })).toEqual({
      type: 'tool_start',
      session_id: 's1',
      run_id: 'r1',
      tool_call_id: 't1',
      tool: 'calculator',
      input: { expression: '2+2' },
    });
    const toolEnd: BotEvent = { type: 'tool_end', payload: { ...run, toolCallId: 't1', result: { value: 4 }, success: false, durationMs: 3 } };
    expect(pocketPawFrame(toolEnd, { toolOf: (id) => (id === 't1' ? 'calculator' : undefined) })).toEqual({
      type: 'tool_result',
      session_id: 's1',
      run_id: 'r1',
      tool_call_id: 't1',
      tool: 'calculator',
      output: '{"value":4}',
      status: 'error',
      duration_ms: 3,
    });
    expect(pocketPawFrame({ type: 'plan_created', payload: { ...run, planId: 'p1', plan: '1. a' } })).toEqual({
      type: 'plan_created',
      session_id: 's1',
      run_id: 'r1',
      plan_id: 'p1',
      plan: '1. a',
    });
    const usage = { promptTokens: 10, completionTokens: 5, totalTokens: 15, totalCost: 0.01 };
    expect(pocketPawFrame({ type: 'done', payload: { ...run, status: 'completed' } }, { usageOf: () => usage })).toEqual({
      type: 'stream_end',
      session_id: 's1',
      run_id: 'r1',
      status: 'completed',
      usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15, cost_usd: 0.01 },
    });
    expect(pocketPawFrame({ type: 'error', payload: { ...run, code: 'MODEL_FAILED', message: 'no' } })).toEqual({
      type: 'error',
      code: 'MODEL_FAILED',
      content: 'no',
      session_id: 's1',
      run_id: 'r1',
    });
    expect(pocketPawFrame({ type: 'platform_message', payload: { sessionId: 's9', platform: 'telegram', chatId: 'c1', role: 'user', content: 'hi' } })).toEqual(
      {
        type: 'inbox_update',
        session_id: 's9',
        platform: 'telegram',
        chat_id: 'c1',
        role: 'user',
        content: 'hi',
      },
    );
  });

  it("sends nothing for the user's own message and for what PocketPaw has no frame for", () => {
    expect(pocketPawFrame({ type: 'message', payload: { ...run, messageId: 'u1', role: 'user', content: 'hi', delta: false } })).toBeUndefined();
    expect(pocketPawFrame({ type: 'run_started', payload: { ...run, model: 'demo' } })).toBeUndefined();
    expect(pocketPawFrame({ type: 'plan_resolved', payload: { sessionId: 's1', planId: 'p1', response: 'approve', resolvedBy: 'u' } })).toBeUndefined();
  });

  it("shows a socket its session's events and the bot's inbox from any session", () => {
    const thinking: BotEvent = { type: 'thinking', payload: { ...run, content: 'x' } };
    expect(concernsSession(thinking, 's1')).toBe(true);
    expect(concernsSession(thinking, 's2')).toBe(false);
    expect(concernsSession(thinking, undefined)).toBe(false);
    expect(concernsSession({ type: 'platform_message', payload: { sessionId: 's2', platform: 'p', chatId: 'c', role: 'user', content: 'x' } }, 's1')).toBe(
      true,
    );
  });

  it('resyncs a session with its history, then the replies still streaming (less those the history holds) and the plans waiting', () => {
    expect(sessionSwitchedFrame({ sessionId: 's1', messages: [{ messageId: 'u1', role: 'user', content: 'hi', runId: 'r1', ts: 0 }] })).toEqual({
      type: 'session_switched',
      session_id: 's1',
      messages: [{ id: 'u1', role: 'user', content: 'hi', timestamp: '1970-01-01T00:00:00.000Z', run_id: 'r1' }],
    });
    const state = foldEvents(
      'bot',
      initialBotState(),
      withTimestamps<BotEvent>([
        { type: 'run_started', payload: { ...run, model: 'demo' } },
        { type: 'message', payload: { ...run, messageId: 'step-1', role: 'assistant', content: 'Done one.', delta: true } },
        { type: 'message', payload: { ...run, messageId: 'step-2', role: 'assistant', content: 'Work', delta: true } },
        { type: 'message', payload: { ...run, messageId: 'step-2', role: 'assistant', content: 'ing', delta: true } },
        { type: 'plan_created', payload: { ...run, planId: 'p1', plan: '1. a' } },
        { type: 'run_started', payload: { sessionId: 's2', runId: 'r2', model: 'demo' } },
        { type: 'message', payload: { sessionId: 's2', runId: 'r2', messageId: 'other', role: 'assistant', content: 'elsewhere', delta: true } },
      ]),
    );
    expect(sessionResyncFrames(state, 's1', new Set(['step-1']))).toEqual([
      { type: 'response_chunk', session_id: 's1', run_id: 'r1', message_id: 'step-2', content: 'Working', is_stream_chunk: true },
      { type: 'plan_created', session_id: 's1', run_id: 'r1', plan_id: 'p1', plan: '1. a' },
    ]);
  });

  it('reads the actions, naming a bad field as PocketPaw spells it', () => {
    expect(pocketPawActionOf({ action: 'message', content: 'hi' })).toEqual({ action: 'message', content: 'hi' });
    expect(pocketPawActionOf({ action: 'chat', message: 'hi' })).toEqual({ action: 'message', content: 'hi' });
    expect(pocketPawActionOf({ action: 'switch_session', session_id: 's1' })).toEqual({ action: 'switch_session', sessionId: 's1' });
    expect(pocketPawActionOf({ action: 'plan_response', plan_id: 'p1', response: 'edit', plan: '1. b' })).toEqual({
      action: 'plan_response',
      planId: 'p1',
      response: 'edit',
      plan: '1. b',
    });
    expect(() => pocketPawActionOf({ action: 'switch_session', sessionId: 's1' })).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED', details: [expect.objectContaining({ field: 'session_id' })] }),
    );
    expect(() => pocketPawActionOf({ action: 'message', content: 42 })).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => pocketPawActionOf({ action: 'settings' })).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMMAND' }));
    expect(() => pocketPawActionOf({})).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMMAND' }));
  });
});
