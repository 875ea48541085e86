import { validateCommandPayload } from './validate';

describe('validateCommandPayload', () => {
  it('accepts a valid payload and hands back the plain object', () => {
    const payload = { botId: 'b1', content: 'hi', sessionId: 's-1' };
    expect(validateCommandPayload('chat', payload)).toEqual({ ok: true, value: payload });
  });

  it('refuses unknown fields, naming each', () => {
    const result = validateCommandPayload('cancel', { runId: 'r1', extra: 1, other: 'x' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.violations.map((v) => [v.field, v.constraint])).toEqual([
      ['extra', 'whitelistValidation'],
      ['other', 'whitelistValidation'],
    ]);
  });

  it('lists every invalid field with its constraint', () => {
    const result = validateCommandPayload('chat', { botId: 'bad id!', content: 42 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const fields = result.violations.map((v) => `${v.field}:${v.constraint}`);
    expect(fields).toEqual(expect.arrayContaining(['botId:matches', 'content:isString']));
  });

  it.each([null, 'text', 3, [1]])('refuses a payload that is not an object (%p)', (payload) => {
    expect(validateCommandPayload('chat', payload)).toEqual({
      ok: false,
      violations: [{ field: 'payload', constraint: 'isObject', message: 'payload must be an object' }],
    });
  });

  it('refuses null for an optional field (it may be left out, not nulled)', () => {
    const result = validateCommandPayload('subscribe', { stream: 'bot:b1', sinceSeq: null, epoch: 'e' });
    expect(result.ok ? [] : result.violations.map((v) => v.field)).toContain('sinceSeq');
    expect(validateCommandPayload('start_execution', { dag: { nodes: [{ id: 'a' }], edges: [] }, budgetUsd: null }).ok).toBe(false);
  });

  it('checks stream names in subscribe', () => {
    expect(validateCommandPayload('subscribe', { stream: 'bot:b1', sinceSeq: 3, epoch: 'e' }).ok).toBe(true);
    for (const stream of ['bot:', 'room:b1', 'bot:a b', `dag:${'x'.repeat(129)}`, 7]) {
      const result = validateCommandPayload('subscribe', { stream });
      expect(result.ok ? 'ok' : result.violations[0].field).toBe('stream');
    }
    const negative = validateCommandPayload('subscribe', { stream: 'bot:b1', sinceSeq: -1 });
    expect(negative.ok ? [] : negative.violations.map((v) => v.constraint)).toEqual(['min']);
  });

  it('validates nested DAG definitions and requires exactly one of dag and dagId', () => {
    const dag = { nodes: [{ id: 'a' }, { id: 'b', kind: 'task', config: { x: 1 } }], edges: [{ from: 'a', to: 'b' }] };
    expect(validateCommandPayload('start_execution', { dag, budgetUsd: 2 }).ok).toBe(true);
    expect(validateCommandPayload('start_execution', { dagId: 'stored-1' }).ok).toBe(true);

    const neither = validateCommandPayload('start_execution', {});
    expect(neither.ok).toBe(false);
    const both = validateCommandPayload('start_execution', { dag, dagId: 'd1' });
    expect(both.ok ? [] : both.violations.map((v) => `${v.field}:${v.constraint}`)).toEqual(['dagId:notTogetherWith']);

    const badNode = validateCommandPayload('start_execution', { dag: { nodes: [{ id: 'a', evil: true }], edges: [{ from: 'a' }] } });
    expect(badNode.ok ? [] : badNode.violations.map((v) => `${v.field}:${v.constraint}`)).toEqual(
      expect.arrayContaining(['dag.nodes.0.evil:whitelistValidation', 'dag.edges.0.to:matches']),
    );
  });

  it('requires the edited plan when a plan response is edit', () => {
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'approve' }).ok).toBe(true);
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'edit' }).ok).toBe(false);
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'edit', plan: '1. x' }).ok).toBe(true);
    expect(validateCommandPayload('plan_response', { planId: 'p', response: 'maybe' }).ok).toBe(false);
  });
});
