import { DomainStore } from '@app/backplane';
import { RealtimeClient } from '@app/client';
import { type DagDefinition, ProtocolError } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/** DAG executions end to end through the SDK: start, human gates, pause/resume, cancel. */
let system: TestSystem;
let client: RealtimeClient;
beforeAll(async () => {
  system = await startSystem({ gateways: 1, workers: 1, workerEnv: { ECHO_NODE_MS: '20' } });
  client = new RealtimeClient({ url: system.gateways[0].url, token: () => signToken({ sub: 'ops', scope: ['dag:*'] }) });
});
afterAll(async () => {
  client?.close();
  await system?.stop();
});

async function start(dag: DagDefinition, budgetUsd?: number) {
  const { executionId } = await client.command('start_execution', { dag, ...(budgetUsd !== undefined ? { budgetUsd } : {}) });
  const store = await client.subscribe(`dag:${executionId}`);
  return { executionId, store };
}

it('runs a DAG with a human gate to completion', async () => {
  const { executionId, store } = await start(
    {
      nodes: [{ id: 'fetch', config: { costUsd: 0.5 } }, { id: 'review', kind: 'human', config: { prompt: 'Ship it?' } }, { id: 'ship' }],
      edges: [
        { from: 'fetch', to: 'review' },
        { from: 'review', to: 'ship' },
      ],
    },
    2,
  );
  await waitFor(() => store.state.pendingGates.review, { message: 'the gate waits' });
  expect(store.state.pendingGates.review).toEqual({ nodeId: 'review', prompt: 'Ship it?', options: ['approve', 'reject', 'modify'] });
  expect(store.state.cost).toEqual({ spent: 0.5, budget: 2, remaining: 1.5 });
  await client.command('human_decision', { executionId, nodeId: 'review', decision: 'approve' });
  await waitFor(() => store.state.status === 'completed', { message: 'completed' });
  expect(store.state.nodes.map((n) => [n.id, n.status])).toEqual([
    ['fetch', 'completed'],
    ['review', 'completed'],
    ['ship', 'completed'],
  ]);
  expect(store.state.activeEdges).toEqual(['fetch->review', 'review->ship']);
  expect(store.state.pendingGates).toEqual({});
  await expect(client.command('human_decision', { executionId, nodeId: 'review', decision: 'reject' })).rejects.toMatchObject({ code: 'CONFLICT' });
});

it('pauses and resumes an execution', async () => {
  const nodes = ['a', 'b', 'c', 'd'].map((id) => ({ id, config: { durationMs: 150 } }));
  const { executionId, store } = await start({
    nodes,
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
      { from: 'c', to: 'd' },
    ],
  });
  // Only a running execution can be paused (a worker may not have taken it yet on a busy machine).
  await waitFor(() => store.state.status === 'running', { message: 'running' });
  await client.command('pause_execution', { executionId });
  await waitFor(() => store.state.status === 'paused', { message: 'paused' });
  await expect(client.command('pause_execution', { executionId })).rejects.toMatchObject({ code: 'CONFLICT' });
  await client.command('resume_execution', { executionId });
  await waitFor(() => store.state.status === 'completed', { message: 'completed after resume' });
  expect(store.state.nodes.every((n) => n.status === 'completed')).toBe(true);
  await expect(client.command('resume_execution', { executionId })).rejects.toBeInstanceOf(ProtocolError);
});

it('cancels an execution: running and remaining nodes end cancelled', async () => {
  const nodes = ['a', 'b', 'c'].map((id) => ({ id, config: { durationMs: 2_000 } }));
  const { executionId, store } = await start({
    nodes,
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
    ],
  });
  await waitFor(() => store.state.nodes.find((n) => n.id === 'a')?.status === 'running', { message: 'a running' });
  await client.command('cancel_execution', { executionId });
  await waitFor(() => store.state.status === 'cancelled', { message: 'cancelled' });
  expect(store.state.nodes.map((n) => n.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
  await expect(client.command('cancel_execution', { executionId })).rejects.toMatchObject({ code: 'CONFLICT' });
});

it('fails an execution whose node fails, skipping what depends on it; starts stored DAGs by id', async () => {
  await new DomainStore(system.client).saveDagDefinition('stored-1', {
    // §10: a failure fails the whole execution unless the node says skip_dependents.
    nodes: [{ id: 'a' }, { id: 'boom', kind: 'fail', config: { message: 'nope' }, onFailure: 'skip_dependents' }, { id: 'after' }, { id: 'side' }],
    edges: [
      { from: 'a', to: 'boom' },
      { from: 'boom', to: 'after' },
    ],
  });
  const { executionId } = await client.command('start_execution', { dagId: 'stored-1' });
  const store = await client.subscribe(`dag:${executionId}`);
  await waitFor(() => store.state.status === 'failed', { message: 'failed' });
  expect(store.state.dagId).toBe('stored-1');
  expect(Object.fromEntries(store.state.nodes.map((n) => [n.id, n.status]))).toEqual({ a: 'completed', boom: 'failed', after: 'skipped', side: 'completed' });
});
