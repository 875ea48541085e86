import { validateEventDraft } from './event-schemas';

describe('validateEventDraft', () => {
  it('accepts contract events and extra fields (additions)', () => {
    expect(validateEventDraft('bot', 'thinking', { sessionId: 's', runId: 'r', content: 'hm', extra: true })).toEqual([]);
    expect(validateEventDraft('dag', 'edge_active', { from: 'a', to: 'b' })).toEqual([]);
  });

  it('names each bad field of a contract event', () => {
    const violations = validateEventDraft('dag', 'node_state', { nodeId: 'n 1', status: 'sleeping', metrics: { ms: 'x' } });
    expect(violations.map((v) => `${v.field}:${v.constraint}`)).toEqual(['payload.nodeId:matches', 'payload.status:isIn', 'payload.metrics.ms:isNumber']);
    expect(validateEventDraft('dag', 'dag_mutated', { mutation: { addEdges: [{ from: 'a' }] } }).map((v) => v.field)).toEqual([
      'payload.mutation.addEdges.0.to',
    ]);
  });

  it('accepts new event types with an object payload, refuses bad names and payloads', () => {
    expect(validateEventDraft('bot', 'custom_metric', { any: 'thing' })).toEqual([]);
    expect(validateEventDraft('bot', 'Bad Type', {})[0].field).toBe('type');
    expect(validateEventDraft('bot', 42, {})[0].field).toBe('type');
    expect(validateEventDraft('bot', 'thinking', [1])[0].field).toBe('payload');
    // A type known for the other stream kind is only a name here.
    expect(validateEventDraft('bot', 'edge_active', { anything: 1 })).toEqual([]);
  });
});
