import type { DagEvent } from '../events/dag';
import { withTimestamps } from '../testing/arbitraries';
import { initialDagState } from './dag.reducer';
import { foldEvents } from './index';

const fold = (events: DagEvent[]) => foldEvents('dag', initialDagState(), withTimestamps(events));
const started: DagEvent = {
  type: 'execution_started',
  payload: {
    executionId: 'e1',
    nodes: [{ id: 'a' }, { id: 'b', kind: 'human' }, { id: 'c' }],
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
    ],
    budgetUsd: 5,
  },
};

describe('dag reducer', () => {
  it('keeps a pause that reached the stream before execution_started (the worker announces the start after the record says running)', () => {
    expect(fold([{ type: 'execution_state', payload: { status: 'paused' } }, started]).status).toBe('paused');
    expect(fold([started]).status).toBe('running');
  });

  it('follows nodes, edges, gates, cost and completion', () => {
    const state = fold([
      started,
      { type: 'node_state', payload: { nodeId: 'a', status: 'completed', output: { x: 1 }, metrics: { ms: 3 } } },
      { type: 'edge_active', payload: { from: 'a', to: 'b' } },
      { type: 'edge_active', payload: { from: 'a', to: 'b' } },
      { type: 'node_state', payload: { nodeId: 'b', status: 'waiting' } },
      { type: 'human_gate_waiting', payload: { nodeId: 'b', prompt: 'ok?', options: ['yes', 'no'] } },
      { type: 'cost_update', payload: { spent: 1, budget: 5, remaining: 4 } },
      { type: 'execution_state', payload: { status: 'paused' } },
    ]);
    expect(state.status).toBe('paused');
    expect(state.nodes.map((n) => [n.id, n.status])).toEqual([
      ['a', 'completed'],
      ['b', 'waiting'],
      ['c', 'pending'],
    ]);
    expect(state.nodes[0]).toEqual({ id: 'a', status: 'completed', output: { x: 1 }, metrics: { ms: 3 } });
    expect(state.activeEdges).toEqual(['a->b']);
    expect(state.pendingGates).toEqual({ b: { nodeId: 'b', prompt: 'ok?', options: ['yes', 'no'] } });
    expect(state.cost).toEqual({ spent: 1, budget: 5, remaining: 4 });

    const done = foldEvents(
      'dag',
      state,
      withTimestamps<DagEvent>([
        { type: 'human_gate_resolved', payload: { nodeId: 'b', decision: 'approve', resolvedBy: 'u1' } },
        { type: 'execution_complete', payload: { status: 'completed', results: { c: 2 } } },
      ]),
    );
    expect(done.pendingGates).toEqual({});
    expect(done.status).toBe('completed');
    expect(done.results).toEqual({ c: 2 });
  });

  it('applies mutations: removed nodes take their edges, gates and active edges along', () => {
    const state = fold([
      started,
      { type: 'edge_active', payload: { from: 'a', to: 'b' } },
      { type: 'human_gate_waiting', payload: { nodeId: 'b', prompt: 'ok?' } },
      {
        type: 'dag_mutated',
        payload: {
          mutation: {
            removeNodes: ['b'],
            addNodes: [{ id: 'd' }],
            addEdges: [
              { from: 'a', to: 'd' },
              { from: 'd', to: 'c' },
            ],
          },
        },
      },
    ]);
    expect(state.nodes.map((n) => n.id)).toEqual(['a', 'c', 'd']);
    expect(state.edges).toEqual([
      { from: 'a', to: 'd' },
      { from: 'd', to: 'c' },
    ]);
    expect(state.activeEdges).toEqual([]);
    expect(state.pendingGates).toEqual({});
  });
});
