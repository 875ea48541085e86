import type { DagExecutionJob, ExecutionStatus } from '@app/backplane';
import { type DagEvent, type DagState, foldEvents, initialState } from '@app/protocol';
import { HandedBack } from '../ops/hand-back';
import { type DagRunnerPorts, EchoDagRunner } from './echo-dag-runner';

/** In-memory ports: the stream is an array, the record a field, time passes at once. */
function ports(published: DagEvent[], onPublish: (event: DagEvent) => void = () => undefined): DagRunnerPorts {
  let status: ExecutionStatus = 'running';
  const gates = new Map<string, string>();
  return {
    publish: async (event) => {
      published.push(event);
      onPublish(event);
    },
    status: async () => status,
    finish: async (end) => {
      const previous = status;
      status = end;
      return previous;
    },
    openGate: async (nodeId) => void gates.set(nodeId, 'waiting'),
    gate: async (nodeId) => gates.get(nodeId) ?? null,
    sleep: async (_ms, signal) => {
      if (signal?.aborted) throw signal.reason;
    },
  };
}

const job: DagExecutionJob = {
  executionId: 'exec-1',
  userId: 'u',
  definition: {
    nodes: ['a', 'b', 'c', 'd'].map((id) => ({ id, config: { durationMs: 0, costUsd: 1 } })),
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
      { from: 'c', to: 'd' },
    ],
  },
};

function fold(events: DagEvent[]): DagState {
  return foldEvents(
    'dag',
    initialState('dag'),
    events.map((e) => ({ ...e, ts: 0 })),
  ) as DagState;
}

it('stops for a hand-back between steps and publishes nothing more', async () => {
  const published: DagEvent[] = [];
  const handBack = new AbortController();
  const stopAfterB = (event: DagEvent) => {
    if (event.type === 'node_state' && event.payload.nodeId === 'b' && event.payload.status === 'completed') handBack.abort('shutdown');
  };
  await expect(new EchoDagRunner(ports(published, stopAfterB), 0, handBack.signal).run(job)).rejects.toBeInstanceOf(HandedBack);
  expect(published.map((e) => e.type)).not.toContain('execution_complete');
  // The step in progress finishes (b and its edge); c never starts.
  expect(published.at(-1)).toEqual({ type: 'edge_active', payload: { from: 'b', to: 'c' } });
  expect(published.some((e) => e.type === 'node_state' && e.payload.nodeId === 'c')).toBe(false);
});

it('resumes from the stream state: settled nodes kept, missing edges announced, one end', async () => {
  const before: DagEvent[] = [];
  const handBack = new AbortController();
  await expect(
    new EchoDagRunner(
      ports(before, (event) => {
        if (event.type === 'node_state' && event.payload.nodeId === 'b' && event.payload.status === 'completed') handBack.abort('shutdown');
      }),
      0,
      handBack.signal,
    ).run(job),
  ).rejects.toBeInstanceOf(HandedBack);

  // As if it stopped between b's completion and its edge: the resumed run announces the edge.
  expect(before.pop()).toEqual({ type: 'edge_active', payload: { from: 'b', to: 'c' } });
  const after: DagEvent[] = [];
  expect(await new EchoDagRunner(ports(after), 0).run(job, fold(before))).toBe('completed');
  expect(after[0]).toEqual({ type: 'edge_active', payload: { from: 'b', to: 'c' } });
  expect(after.map((e) => e.type)).not.toContain('execution_started');
  expect(after.filter((e) => e.type === 'node_state' && e.payload.status === 'running').map((e) => (e.payload as { nodeId: string }).nodeId)).toEqual([
    'c',
    'd',
  ]);
  const state = fold([...before, ...after]);
  expect(state.status).toBe('completed');
  expect(state.nodes.map((n) => n.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
  expect(state.activeEdges).toEqual(['a->b', 'b->c', 'c->d']);
  expect(state.cost?.spent).toBe(4);
  expect(Object.keys(state.results as Record<string, unknown>)).toEqual(['a', 'b', 'c', 'd']);
  expect([...before, ...after].filter((e) => e.type === 'execution_complete')).toHaveLength(1);
});
