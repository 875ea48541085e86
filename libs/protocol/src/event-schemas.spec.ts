import { validateEventDraft } from './event-schemas';
import { MAX_JSON_DEPTH } from './json-shape';

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

  it('refuses payloads nested too deep or holding prototype-named keys, also in free-form fields', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const tooDeep = validateEventDraft('bot', 'tool_start', { sessionId: 's', runId: 'r', toolCallId: 't', tool: 'x', args: deep });
    expect(tooDeep).toEqual([expect.objectContaining({ field: `payload.args${'.0'.repeat(MAX_JSON_DEPTH - 1)}`, constraint: 'maxDepth' })]);
    const wire = JSON.parse('{"sessionId":"s","runId":"r","toolCallId":"t","result":{"__proto__":{"polluted":1}},"success":true,"durationMs":1}') as unknown;
    expect(validateEventDraft('bot', 'tool_end', wire).map((v) => `${v.field}:${v.constraint}`)).toEqual(['payload.result.__proto__:whitelistValidation']);
    expect(validateEventDraft('bot', 'custom_metric', { constructor: { prototype: 1 } }).map((v) => v.field)).toEqual(['payload.constructor']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
