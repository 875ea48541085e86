import type { BotEvent } from '../events/bot';
import { withTimestamps } from '../testing/arbitraries';
import { BOT_RECENT_SESSIONS, initialBotState } from './bot.reducer';
import { foldEvents } from './index';

const fold = (events: BotEvent[]) => foldEvents('bot', initialBotState(), withTimestamps(events));
const run = { sessionId: 's1', runId: 'r1' };

describe('bot reducer', () => {
  it('joins streamed chunks of one message and replaces on a whole message', () => {
    const state = fold([
      { type: 'run_started', payload: { ...run, model: 'echo' } },
      { type: 'message', payload: { ...run, messageId: 'm1', role: 'assistant', content: 'Hel', delta: true } },
      { type: 'message', payload: { ...run, messageId: 'm1', role: 'assistant', content: 'lo', delta: true, replyToId: 'u1' } },
      { type: 'message', payload: { ...run, messageId: 'm2', role: 'assistant', content: 'draft', delta: true } },
      { type: 'message', payload: { ...run, messageId: 'm2', role: 'assistant', content: 'final', delta: false } },
    ]);
    expect(state.activeRuns.r1.messages).toEqual([
      { messageId: 'm1', role: 'assistant', content: 'Hello', replyToId: 'u1' },
      { messageId: 'm2', role: 'assistant', content: 'final' },
    ]);
  });

  it('moves a run to recentRuns on done, with its usage, and drops its open approvals and plans', () => {
    const state = fold([
      { type: 'run_started', payload: { ...run, model: 'echo' } },
      { type: 'approval_needed', payload: { ...run, approvalId: 'a1', tool: 'shell', args: {}, riskLevel: 'high', expiresAt: 9 } },
      { type: 'plan_created', payload: { ...run, planId: 'p1', plan: '1. do' } },
      { type: 'usage', payload: { ...run, promptTokens: 1, completionTokens: 2, totalTokens: 3, totalCost: 0 } },
      { type: 'done', payload: { ...run, status: 'cancelled' } },
    ]);
    expect(state.activeRuns).toEqual({});
    expect(state.pendingApprovals).toEqual({});
    expect(state.pendingPlans).toEqual({});
    expect(state.recentRuns).toEqual([
      expect.objectContaining({ runId: 'r1', status: 'cancelled', usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3, totalCost: 0 } }),
    ]);
  });

  it("adds each run's usage up per session, counting a run that reports its totals twice once", () => {
    const second = { sessionId: 's1', runId: 'r2' };
    const usage = (r: typeof run, promptTokens: number, completionTokens: number, totalCost: number): BotEvent => ({
      type: 'usage',
      payload: { ...r, promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, totalCost },
    });
    const state = fold([
      { type: 'session_created', payload: { sessionId: 's1', title: 'one' } },
      { type: 'run_started', payload: { ...run, model: 'm' } },
      usage(run, 10, 5, 0.1),
      usage(run, 12, 6, 0.12),
      { type: 'done', payload: { ...run, status: 'completed' } },
      { type: 'run_started', payload: { ...second, model: 'm' } },
      usage(second, 3, 4, 0.2),
      { type: 'done', payload: { ...second, status: 'completed' } },
      { type: 'run_started', payload: { sessionId: 's2', runId: 'r3', model: 'm' } },
      usage({ sessionId: 's2', runId: 'r3' }, 1, 1, 0.01),
      // A usage of a run this state never saw start carries nothing to add.
      usage({ sessionId: 's1', runId: 'unseen' }, 100, 100, 1),
    ]);
    expect(state.sessions.find((x) => x.sessionId === 's1')).toEqual({
      sessionId: 's1',
      title: 'one',
      lastActivityAt: expect.any(Number),
      usage: { promptTokens: 15, completionTokens: 10, totalTokens: 25, totalCost: 0.32 },
    });
    expect(state.sessions.find((x) => x.sessionId === 's2')?.usage).toEqual({ promptTokens: 1, completionTokens: 1, totalTokens: 2, totalCost: 0.01 });
  });

  it('tracks approvals and tool calls until they resolve', () => {
    const state = fold([
      { type: 'run_started', payload: { ...run, model: 'echo' } },
      { type: 'tool_start', payload: { ...run, toolCallId: 't1', tool: 'search', args: { q: 'x' } } },
      { type: 'tool_end', payload: { ...run, toolCallId: 't1', result: [1], success: true, durationMs: 5 } },
      { type: 'approval_needed', payload: { ...run, approvalId: 'a1', tool: 'shell', args: {}, riskLevel: 'low', expiresAt: 9 } },
      { type: 'approval_needed', payload: { ...run, approvalId: 'a2', tool: 'shell', args: {}, riskLevel: 'low', expiresAt: 9 } },
      { type: 'approval_resolved', payload: { sessionId: 's1', approvalId: 'a1', approved: true, resolvedBy: 'u1' } },
    ]);
    expect(state.activeRuns.r1.tools.t1).toEqual({ tool: 'search', args: { q: 'x' }, status: 'succeeded', result: [1], durationMs: 5 });
    expect(Object.keys(state.pendingApprovals)).toEqual(['a2']);
  });

  it('keeps only the most recent sessions, most recently active last', () => {
    const created = Array.from(
      { length: BOT_RECENT_SESSIONS + 5 },
      (_, i): BotEvent => ({
        type: 'session_created',
        payload: { sessionId: `s${i}`, title: `t${i}` },
      }),
    );
    const state = fold([...created, { type: 'run_started', payload: { sessionId: 's10', runId: 'r', model: 'm' } }]);
    expect(state.sessions).toHaveLength(BOT_RECENT_SESSIONS);
    expect(state.sessions.at(-1)).toEqual(expect.objectContaining({ sessionId: 's10', title: 't10' }));
    expect(state.sessions.some((s) => s.sessionId === 's0')).toBe(false);
  });

  it('treats an id of __proto__ as an ordinary key', () => {
    const state = fold([
      { type: 'thinking', payload: { sessionId: 's1', runId: '__proto__', content: 'x' } },
      { type: 'run_started', payload: { sessionId: 's1', runId: '__proto__', model: 'm' } },
    ]);
    expect(Object.keys(state.activeRuns)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(state.activeRuns)).toBe(Object.prototype);
  });
});
