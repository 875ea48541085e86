import { type DagEvent, foldEvents, initialDagState } from '@app/protocol';
import { withTimestamps } from '@app/protocol/testing/arbitraries';
import { dagCommandOf, dagDashboardFrames, dagResyncFrames } from './dag-stream.frames';

const started: DagEvent = {
  type: 'execution_started',
  payload: {
    executionId: 'e1',
    nodes: [{ id: 'a' }, { id: 'gate', kind: 'human_gate' }, { id: 'b' }],
    edges: [
      { from: 'a', to: 'gate' },
      { from: 'gate', to: 'b' },
    ],
    budgetUsd: 2,
  },
};

describe('DAG dashboard frames', () => {
  it('maps each contract event to the dashboard frame, ids in snake_case', () => {
    expect(dagDashboardFrames(started)).toEqual([
      { type: 'node_state', node_id: 'a', status: 'pending' },
      { type: 'node_state', node_id: 'gate', status: 'pending' },
      { type: 'node_state', node_id: 'b', status: 'pending' },
    ]);
    expect(dagDashboardFrames({ type: 'node_state', payload: { nodeId: 'a', status: 'completed', output: { x: 1 }, metrics: { costUsd: 0.5 } } })).toEqual([
      { type: 'node_state', node_id: 'a', status: 'completed', output: { x: 1 }, metrics: { costUsd: 0.5 } },
    ]);
    expect(dagDashboardFrames({ type: 'human_gate_waiting', payload: { nodeId: 'gate', prompt: 'Ship?', options: ['yes', 'no'] } })).toEqual([
      { type: 'human_gate_waiting', node_id: 'gate', presentation: { prompt: 'Ship?', options: ['yes', 'no'] } },
    ]);
    expect(dagDashboardFrames({ type: 'error', payload: { nodeId: 'a', code: 'NODE_FAILED', message: 'boom' } })).toEqual([
      { type: 'error', node_id: 'a', code: 'NODE_FAILED', message: 'boom' },
    ]);
    expect(dagDashboardFrames({ type: 'execution_complete', payload: { status: 'completed', results: { a: 1 } } })).toEqual([
      { type: 'execution_complete', status: 'completed', results: { a: 1 } },
    ]);
    expect(dagDashboardFrames({ type: 'human_gate_resolved', payload: { nodeId: 'gate', decision: 'approve', resolvedBy: 'u' } })).toEqual([]);
  });

  it('resyncs with one node_state per node and a cost_update first, then what else is current', () => {
    const state = foldEvents(
      'dag',
      initialDagState(),
      withTimestamps([
        started,
        { type: 'node_state', payload: { nodeId: 'a', status: 'completed', output: 3 } },
        { type: 'edge_active', payload: { from: 'a', to: 'gate' } },
        { type: 'cost_update', payload: { spent: 0.5, budget: 2, remaining: 1.5 } },
        { type: 'node_state', payload: { nodeId: 'gate', status: 'waiting' } },
        { type: 'human_gate_waiting', payload: { nodeId: 'gate', prompt: 'Ship?' } },
        { type: 'execution_state', payload: { status: 'paused' } },
      ]),
    );
    expect(dagResyncFrames(state)).toEqual([
      { type: 'node_state', node_id: 'a', status: 'completed', output: 3 },
      { type: 'node_state', node_id: 'gate', status: 'waiting' },
      { type: 'node_state', node_id: 'b', status: 'pending' },
      { type: 'cost_update', spent: 0.5, budget: 2, remaining: 1.5 },
      { type: 'edge_active', from: 'a', to: 'gate' },
      { type: 'human_gate_waiting', node_id: 'gate', presentation: { prompt: 'Ship?' } },
      { type: 'execution_state', status: 'paused' },
    ]);
  });

  it('resyncs an execution nothing was published for with a zero cost, and a finished one with its end', () => {
    expect(dagResyncFrames(initialDagState())).toEqual([{ type: 'cost_update', spent: 0, budget: 0, remaining: 0 }]);
    const ended = foldEvents(
      'dag',
      initialDagState(),
      withTimestamps([started, { type: 'execution_complete', payload: { status: 'cancelled', results: {} } }]),
    );
    expect(dagResyncFrames(ended).slice(3)).toEqual([
      { type: 'cost_update', spent: 0, budget: 2, remaining: 2 },
      { type: 'execution_complete', status: 'cancelled', results: {} },
    ]);
  });

  it("turns the dashboard's frames into commands on the socket's execution", () => {
    expect(dagCommandOf({ type: 'human_decision', node_id: 'gate', decision: 'modify', feedback: 'smaller' }, 'e1')).toEqual({
      type: 'human_decision',
      payload: { executionId: 'e1', nodeId: 'gate', decision: 'modify', feedback: 'smaller' },
    });
    expect(dagCommandOf({ type: 'pause_execution' }, 'e1')).toEqual({ type: 'pause_execution', payload: { executionId: 'e1' } });
    expect(() => dagCommandOf({ type: 'human_decision', node_id: 'gate', decision: 'maybe' }, 'e1')).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED', details: [expect.objectContaining({ field: 'decision' })] }),
    );
    expect(() => dagCommandOf({ type: 'human_decision', decision: 'approve' }, 'e1')).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => dagCommandOf({ type: 'rewind' }, 'e1')).toThrow(expect.objectContaining({ code: 'UNKNOWN_COMMAND' }));
  });
});
