import { type ConnectionOptions, Queue } from 'bullmq';
import { dagNodeJobId, DEFAULT_RETENTION, QUEUE_PREFIX, QUEUES, StreamHistory } from '@app/backplane';
import { RealtimeClient } from '@app/client';
import { type DagDefinition, type DagState, type Envelope, foldEvents, initialState, type NodeStatus } from '@app/protocol';
import { layeredDag } from '@app/protocol/testing/dag-shapes';
import { waitFor } from '@app/runtime';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * The DAG engine end to end: two gateway pods, two workers, one BullMQ job per node.
 * Every test reads the execution's whole stream from Redis at the end and checks each node's
 * node_state transitions against the allowed ones.
 */
let system: TestSystem;
let alice: RealtimeClient;
let bob: RealtimeClient;
let nodeJobs: Queue;
beforeAll(async () => {
  // A short job lock, so the last test's killed worker's jobs come back within seconds.
  system = await startSystem({ gateways: 2, workers: 2, workerEnv: { ECHO_NODE_MS: '0', JOB_LOCK_MS: '2000', DEMO_CHUNK_DELAY_MS: '5' } });
  const token = () => signToken({ sub: 'alice', scope: ['dag:*'] });
  alice = new RealtimeClient({ url: system.gateways[0].url, token });
  bob = new RealtimeClient({ url: system.gateways[1].url, token: () => signToken({ sub: 'bob', scope: ['dag:*'] }) });
  nodeJobs = new Queue(QUEUES.dagNodes, { connection: system.client as unknown as ConnectionOptions, prefix: QUEUE_PREFIX });
}, 60_000);
afterAll(async () => {
  alice?.close();
  bob?.close();
  await nodeJobs?.close();
  await system?.stop();
});

async function start(dag: DagDefinition, budgetUsd?: number) {
  const { executionId } = await alice.command('start_execution', { dag, ...(budgetUsd !== undefined ? { budgetUsd } : {}) });
  const store = await alice.subscribe(`dag:${executionId}`);
  return { executionId, store };
}

const done = (store: { state: DagState }) => ['completed', 'failed', 'cancelled'].includes(store.state.status);

async function history(executionId: string): Promise<Envelope[]> {
  const reader = new StreamHistory(system.client, DEFAULT_RETENTION);
  const head = await reader.head(`dag:${executionId}`);
  return reader.range(`dag:${executionId}`, 1, head?.seq ?? 0);
}

/** Where each status may lead (a node starts pending; `ready` again after a failed attempt that will be retried). */
const NEXT: Record<string, NodeStatus[]> = {
  pending: ['ready', 'skipped', 'cancelled'],
  ready: ['running', 'cancelled'],
  running: ['completed', 'failed', 'waiting', 'cancelled', 'ready'],
  waiting: ['completed', 'failed', 'cancelled'],
};

/** Each node's statuses in stream order, after checking every step is allowed and exactly one execution_complete ends the stream. */
function transitions(events: Envelope[]): Map<string, NodeStatus[]> {
  const seen = new Map<string, NodeStatus[]>();
  for (const e of events) {
    if (e.type !== 'node_state') continue;
    const { nodeId, status } = e.payload as { nodeId: string; status: NodeStatus };
    const list = seen.get(nodeId) ?? [];
    const from = list.at(-1) ?? 'pending';
    if (!(NEXT[from] ?? []).includes(status)) throw new Error(`node ${nodeId}: ${from} -> ${status} (seq ${e.seq}) is not a valid transition`);
    seen.set(nodeId, [...list, status]);
  }
  const completes = events.filter((e) => e.type === 'execution_complete');
  expect(completes).toHaveLength(1);
  expect(events.at(-1)?.type).toBe('execution_complete');
  return seen;
}

const at = (events: Envelope[], nodeId: string, status: NodeStatus) =>
  events.find((e) => e.type === 'node_state' && (e.payload as { nodeId: string }).nodeId === nodeId && (e.payload as { status: string }).status === status);

it('runs a diamond: both branches at once, the join once after both, its inputs their outputs', async () => {
  const { executionId, store } = await start({
    nodes: [
      { id: 'a', config: { fn: 'echo', args: 1 } },
      { id: 'b', config: { fn: 'sum', durationMs: 300 } },
      { id: 'c', config: { fn: 'sum', args: [2, 3], durationMs: 300 } },
      { id: 'd', config: { fn: 'sum' } },
    ],
    edges: [
      { from: 'a', to: 'b' },
      { from: 'a', to: 'c' },
      { from: 'b', to: 'd' },
      { from: 'c', to: 'd' },
    ],
  });
  await waitFor(() => done(store), { message: 'diamond done' });
  expect(store.state.status).toBe('completed');
  expect(store.state.nodes.map((n) => [n.id, n.status, n.output])).toEqual([
    ['a', 'completed', 1],
    ['b', 'completed', 1],
    ['c', 'completed', 5],
    ['d', 'completed', 6],
  ]);
  const events = await history(executionId);
  const seen = transitions(events);
  for (const id of ['a', 'b', 'c', 'd']) expect(seen.get(id)).toEqual(['ready', 'running', 'completed']);
  // The join became ready once, after both branches completed; the branches overlapped.
  const seq = (id: string, s: NodeStatus) => at(events, id, s)?.seq ?? -1;
  expect(seq('d', 'ready')).toBeGreaterThan(Math.max(seq('b', 'completed'), seq('c', 'completed')));
  expect(seq('b', 'running')).toBeLessThan(seq('c', 'completed'));
  expect(seq('c', 'running')).toBeLessThan(seq('b', 'completed'));
  expect(store.state.activeEdges.sort()).toEqual(['a->b', 'a->c', 'b->d', 'c->d']);
  expect(store.state.results).toEqual({ a: 1, b: 1, c: 5, d: 6 });
});

it("gives root nodes the execution's inputs", async () => {
  const { executionId } = await alice.command('start_execution', { dag: { nodes: [{ id: 'add', config: { fn: 'sum' } }], edges: [] }, inputs: { x: 2, y: 3 } });
  const store = await alice.subscribe(`dag:${executionId}`);
  await waitFor(() => done(store), { message: 'inputs done' });
  expect(store.state.results).toEqual({ add: 5 });
});

it('runs a 50-node layered DAG in parallel on both workers; a late joiner draws the same graph', async () => {
  const { executionId, store } = await start(layeredDag(5, 10, () => ({ config: { durationMs: 150 } })));
  await waitFor(() => store.state.nodes.filter((n) => n.status === 'completed').length >= 15, { message: 'under way' });
  const late = await bob.subscribe(`dag:${executionId}`);
  await waitFor(() => done(store) && done(late), { message: 'layered done', timeoutMs: 30_000 });
  expect(store.state.status).toBe('completed');
  expect(late.state).toEqual(store.state);

  const events = await history(executionId);
  const seen = transitions(events);
  expect(seen.size).toBe(50);
  for (const list of seen.values()) expect(list).toEqual(['ready', 'running', 'completed']);
  // Running intervals overlap: at some moment several nodes ran at once.
  const intervals = [...seen.keys()].map((id) => [at(events, id, 'running')?.ts ?? 0, at(events, id, 'completed')?.ts ?? 0]);
  const most = Math.max(...intervals.map(([s]) => intervals.filter(([s2, e2]) => s2 <= s && s < e2).length));
  expect(most).toBeGreaterThanOrEqual(5);
  // And on both workers.
  const jobs = await Promise.all([...seen.keys()].map((id) => nodeJobs.getJob(dagNodeJobId(executionId, id))));
  expect(new Set(jobs.map((j) => j?.processedBy)).size).toBe(2);
  // The late joiner's snapshot was the fold of the stream up to its seq (the store applied the rest).
  expect(foldEvents('dag', initialState('dag'), events)).toEqual(store.state);
});

it('a late joiner of a 1,000-node execution draws the same graph as an early watcher: the fold of the stream', async () => {
  const nodes = Array.from({ length: 1_000 }, (_, i) => ({ id: `n${i}`, config: { durationMs: 1 } }));
  const { executionId, store } = await start({ nodes, edges: [] });
  await waitFor(() => store.state.nodes.filter((n) => n.status === 'completed').length >= 200, { message: 'under way', timeoutMs: 30_000 });
  const late = await bob.subscribe(`dag:${executionId}`);
  await waitFor(() => done(store) && done(late), { message: '1,000 nodes done', timeoutMs: 60_000 });
  expect(store.state.status).toBe('completed');
  expect(store.state.nodes).toHaveLength(1_000);
  expect(late.state).toEqual(store.state);
  expect(foldEvents('dag', initialState('dag'), await history(executionId))).toEqual(store.state);
});

it('retries a failing node with backoff until an attempt passes', async () => {
  const { executionId, store } = await start({
    nodes: [{ id: 'flaky', config: { fn: 'fail', args: { message: 'not yet', untilAttempt: 3 } }, retry: { attempts: 3, backoffMs: 100 } }, { id: 'next' }],
    edges: [{ from: 'flaky', to: 'next' }],
  });
  await waitFor(() => done(store), { message: 'retried execution done' });
  expect(store.state.status).toBe('completed');
  const events = await history(executionId);
  expect(transitions(events).get('flaky')).toEqual(['ready', 'running', 'ready', 'running', 'ready', 'running', 'completed']);
  const retries = events.filter(
    (e) => e.type === 'node_state' && (e.payload as { nodeId: string; status: string }).status === 'ready' && (e.payload as { error?: string }).error,
  );
  expect(retries.map((e) => (e.payload as { error: string; metrics: { attempt: number } }).metrics.attempt)).toEqual([1, 2]);
  expect(store.state.nodes[0].output).toEqual({ attempt: 3 });
  // Exponential backoff: 100 ms, then 200 ms, between a failed attempt and the next start.
  const runs = events.filter(
    (e) =>
      e.type === 'node_state' && (e.payload as { nodeId: string; status: string }).status === 'running' && (e.payload as { nodeId: string }).nodeId === 'flaky',
  );
  expect(runs[1].ts - retries[0].ts).toBeGreaterThanOrEqual(90);
  expect(runs[2].ts - retries[1].ts).toBeGreaterThanOrEqual(190);
});

it('a node out of attempts fails the execution (fail_execution): running nodes are aborted, the rest cancelled', async () => {
  const { executionId, store } = await start({
    nodes: [
      { id: 'slow', kind: 'delay', config: { ms: 20_000 } },
      { id: 'boom', config: { fn: 'fail', args: { message: 'broken' }, durationMs: 200 }, retry: { attempts: 2, backoffMs: 10 } },
      { id: 'after' },
    ],
    edges: [{ from: 'boom', to: 'after' }],
  });
  await waitFor(() => done(store), { message: 'failed execution done', timeoutMs: 10_000 });
  expect(store.state.status).toBe('failed');
  expect(Object.fromEntries(store.state.nodes.map((n) => [n.id, n.status]))).toEqual({ slow: 'cancelled', boom: 'failed', after: 'cancelled' });
  expect(store.state.errors).toEqual([expect.objectContaining({ nodeId: 'boom', code: 'NODE_FAILED', message: 'node boom failed: broken' })]);
  expect(transitions(await history(executionId)).get('slow')).toEqual(['ready', 'running', 'cancelled']);
});

it('skip_dependents skips what depends on the failed node and lets the rest finish; a timeout is a failure', async () => {
  const { executionId, store } = await start({
    nodes: [
      { id: 'hang', kind: 'delay', config: { ms: 10_000 }, timeoutMs: 100, onFailure: 'skip_dependents' },
      { id: 'x' },
      { id: 'y' },
      { id: 'side', config: { durationMs: 300 } },
    ],
    edges: [
      { from: 'hang', to: 'x' },
      { from: 'x', to: 'y' },
    ],
  });
  await waitFor(() => done(store), { message: 'skip execution done' });
  expect(store.state.status).toBe('failed');
  expect(Object.fromEntries(store.state.nodes.map((n) => [n.id, [n.status, n.error]]))).toEqual({
    hang: ['failed', 'timed out after 100 ms'],
    x: ['skipped', undefined],
    y: ['skipped', undefined],
    side: ['completed', undefined],
  });
  transitions(await history(executionId));
});

it('pause lets running nodes finish and starts none; resume continues; the concurrency limit holds', async () => {
  const dag = { ...layeredDag(3, 4, () => ({ config: { durationMs: 300 } })), maxConcurrency: 2 };
  const { executionId, store } = await start(dag);
  await waitFor(() => store.state.nodes.some((n) => n.status === 'running'), { message: 'running' });
  await alice.command('pause_execution', { executionId });
  await waitFor(() => store.state.status === 'paused', { message: 'paused' });
  // Nothing still runs (the nodes running at the pause finished) and no job holds a slot.
  await waitFor(() => !store.state.nodes.some((n) => n.status === 'running' || n.status === 'ready'), { message: 'running nodes finished' });
  // (A node's job ends just after its completion is announced.)
  await waitFor(async () => (await nodeJobs.getActiveCount()) === 0, { message: 'no node job while paused' });
  const before = (await history(executionId)).length;
  await alice.command('resume_execution', { executionId });
  await waitFor(() => done(store), { message: 'completed after resume', timeoutMs: 20_000 });
  expect(store.state.status).toBe('completed');

  const events = await history(executionId);
  transitions(events);
  const paused = events.find((e) => e.type === 'execution_state' && (e.payload as { status: string }).status === 'paused');
  const resumed = events.find((e) => e.type === 'execution_state' && (e.payload as { status: string }).status === 'running');
  const between = events.filter((e) => e.seq > (paused?.seq ?? 0) && e.seq < (resumed?.seq ?? 0) && e.type === 'node_state');
  expect(between.map((e) => (e.payload as { status: string }).status).filter((s) => s === 'ready')).toEqual([]);
  expect(before).toBeLessThan(events.length);
  // Never more than two nodes of it running at once.
  let running = 0;
  let most = 0;
  for (const e of events.filter((x) => x.type === 'node_state')) {
    const s = (e.payload as { status: string }).status;
    if (s === 'running') most = Math.max(most, ++running);
    if (s === 'completed') running--;
  }
  expect(most).toBe(2);
});

it('cancel aborts the running node at once and cancels the rest', async () => {
  const { executionId, store } = await start({
    nodes: [{ id: 'long', kind: 'delay', config: { ms: 30_000 } }, { id: 'then' }],
    edges: [{ from: 'long', to: 'then' }],
  });
  await waitFor(() => store.state.nodes[0].status === 'running', { message: 'long running' });
  const asked = Date.now();
  await bob.command('cancel_execution', { executionId });
  await waitFor(() => done(store), { message: 'cancelled' });
  expect(Date.now() - asked).toBeLessThan(5_000);
  expect(store.state.status).toBe('cancelled');
  expect(store.state.nodes.map((n) => n.status)).toEqual(['cancelled', 'cancelled']);
  // The node's job really ended (cancelled by BullMQ, not left to run out its 30 s).
  await waitFor(async () => (await nodeJobs.getJob(dagNodeJobId(executionId, 'long')))?.finishedOn !== undefined, { message: 'job ended' });
  transitions(await history(executionId));
  await expect(alice.command('cancel_execution', { executionId })).rejects.toMatchObject({ code: 'CONFLICT' });
});

it('a gate approved on one dashboard is seen resolved on another; a second decision is CONFLICT; a waiting gate holds no job', async () => {
  const { executionId, store } = await start({
    nodes: [
      { id: 'draft', config: { fn: 'echo', args: 'v1' } },
      { id: 'review', kind: 'human_gate', config: { prompt: 'Publish v1?' } },
      { id: 'publish', config: { fn: 'concat' } },
    ],
    edges: [
      { from: 'draft', to: 'review' },
      { from: 'review', to: 'publish' },
    ],
  });
  const other = await bob.subscribe(`dag:${executionId}`);
  await waitFor(() => other.state.pendingGates.review, { message: 'gate waiting on the other dashboard' });
  expect(other.state.pendingGates.review).toEqual({ nodeId: 'review', prompt: 'Publish v1?', options: ['approve', 'reject', 'modify'] });
  // The gate's job ends once the gate is announced: nothing holds a worker while it waits.
  await waitFor(async () => (await nodeJobs.getActiveCount()) === 0, { message: 'no node job while the gate waits' });
  await alice.command('human_decision', { executionId, nodeId: 'review', decision: 'approve', feedback: 'ok' });
  await waitFor(() => done(other), { message: 'completed on the other dashboard' });
  expect(other.state.pendingGates).toEqual({});
  expect(other.state.nodes.map((n) => [n.id, n.status])).toEqual([
    ['draft', 'completed'],
    ['review', 'completed'],
    ['publish', 'completed'],
  ]);
  const events = await history(executionId);
  expect(events.filter((e) => e.type === 'human_gate_resolved').map((e) => e.payload)).toEqual([
    { nodeId: 'review', decision: 'approve', resolvedBy: 'alice' },
  ]);
  expect(transitions(events).get('review')).toEqual(['ready', 'running', 'waiting', 'completed']);
  expect(store.state.nodes[1].output).toEqual({ decision: 'approve', feedback: 'ok' });
  await expect(bob.command('human_decision', { executionId, nodeId: 'review', decision: 'reject' })).rejects.toMatchObject({ code: 'CONFLICT' });
});

it('of two decisions racing on two pods one wins, the other is CONFLICT; a rejected gate fails its node and the execution', async () => {
  const { executionId, store } = await start({ nodes: [{ id: 'gate', kind: 'human_gate' }, { id: 'after' }], edges: [{ from: 'gate', to: 'after' }] });
  await waitFor(() => store.state.pendingGates.gate, { message: 'gate waiting' });
  const [first, second] = await Promise.allSettled([
    bob.command('human_decision', { executionId, nodeId: 'gate', decision: 'reject' }),
    alice.command('human_decision', { executionId, nodeId: 'gate', decision: 'reject' }),
  ]);
  expect([first.status, second.status].sort()).toEqual(['fulfilled', 'rejected']);
  expect([first, second].find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'CONFLICT' } });
  await waitFor(() => done(store), { message: 'rejected' });
  expect(store.state.status).toBe('failed');
  expect(store.state.nodes.map((n) => [n.id, n.status])).toEqual([
    ['gate', 'failed'],
    ['after', 'cancelled'],
  ]);
});

it('stops an execution over its budget: failed, BUDGET_EXCEEDED, cost ticks after each costed node', async () => {
  const chain = ['a', 'b', 'c', 'd'];
  const { executionId, store } = await start(
    { nodes: chain.map((id) => ({ id, config: { costUsd: 0.4 } })), edges: chain.slice(1).map((to, i) => ({ from: chain[i], to })) },
    1,
  );
  await waitFor(() => done(store), { message: 'budget stop' });
  expect(store.state.status).toBe('failed');
  expect(store.state.cost).toEqual({ spent: 1.2, budget: 1, remaining: expect.closeTo(-0.2, 6) as number });
  expect(store.state.errors.map((e) => [e.code, e.nodeId])).toEqual([['BUDGET_EXCEEDED', 'c']]);
  expect(store.state.nodes.map((n) => n.status)).toEqual(['completed', 'completed', 'completed', 'cancelled']);
  const events = await history(executionId);
  expect(events.filter((e) => e.type === 'cost_update').map((e) => (e.payload as { spent: number }).spent)).toEqual([0.4, 0.8, expect.closeTo(1.2, 6)]);
});

it('a map node adds one node per item (dag_mutated) and fans back in to its successor', async () => {
  const { executionId, store } = await start({
    nodes: [
      { id: 'list', config: { fn: 'echo', args: [1, 2, 3] } },
      { id: 'each', kind: 'map', config: { fromNode: 'list', template: { kind: 'task', config: { fn: 'sum', durationMs: 100 } } } },
      { id: 'total', config: { fn: 'sum' } },
    ],
    edges: [
      { from: 'list', to: 'each' },
      { from: 'each', to: 'total' },
    ],
  });
  await waitFor(() => done(store), { message: 'map done' });
  expect(store.state.status).toBe('completed');
  expect(store.state.nodes.map((n) => [n.id, n.status, n.output])).toEqual([
    ['list', 'completed', [1, 2, 3]],
    ['each', 'completed', [1, 2, 3]],
    ['total', 'completed', 12],
    ['each.0', 'completed', 1],
    ['each.1', 'completed', 2],
    ['each.2', 'completed', 3],
  ]);
  expect(store.state.edges).toEqual(
    expect.arrayContaining([
      { from: 'each', to: 'each.0' },
      { from: 'each.2', to: 'total' },
    ]),
  );
  const events = await history(executionId);
  const seen = transitions(events);
  const mutated = events.find((e) => e.type === 'dag_mutated');
  expect(mutated?.seq).toBeLessThan(at(events, 'each.0', 'ready')?.seq ?? 0);
  expect(at(events, 'total', 'ready')?.seq).toBeGreaterThan(Math.max(...['each.0', 'each.1', 'each.2'].map((id) => at(events, id, 'completed')?.seq ?? 0)));
  expect(seen.get('total')).toEqual(['ready', 'running', 'completed']);
});

it('runs the stored demo-research: a map of llm nodes, an llm summary, a gate, then a tool node', async () => {
  const { executionId } = await alice.command('start_execution', { dagId: 'demo-research' });
  const store = await alice.subscribe(`dag:${executionId}`);
  await waitFor(() => store.state.pendingGates.review, { message: 'research reviewed', timeoutMs: 20_000 });
  const summary = store.state.nodes.find((n) => n.id === 'summary');
  expect(summary?.output).toEqual({ text: expect.stringMatching(/\S/), costUsd: 0 });
  expect(store.state.nodes.filter((n) => n.id.startsWith('research.')).map((n) => n.status)).toEqual(['completed', 'completed', 'completed']);
  await bob.command('human_decision', { executionId, nodeId: 'review', decision: 'approve' });
  await waitFor(() => done(store), { message: 'research done' });
  expect(store.state.status).toBe('completed');
  expect(store.state.nodes.find((n) => n.id === 'stamp')?.output).toBeDefined();
  transitions(await history(executionId));
});

it('a risky tool node runs only right after a human gate', async () => {
  const { store } = await start({ nodes: [{ id: 'rm', kind: 'tool', config: { tool: 'delete_file', args: { path: '/tmp/x' } } }], edges: [] });
  await waitFor(() => done(store), { message: 'tool refused' });
  expect(store.state.nodes[0]).toMatchObject({ status: 'failed', error: 'tool delete_file (risk high) runs only right after a human_gate' });
});

it('refuses bad definitions naming the node or edge', async () => {
  const refuse = (dag: DagDefinition) => alice.command('start_execution', { dag });
  await expect(refuse({ nodes: [{ id: 'a', kind: 'teleport' }], edges: [] })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    message: expect.stringContaining('node a: unknown kind teleport'),
  });
  await expect(refuse({ nodes: [{ id: 'a' }], edges: [{ from: 'a', to: 'ghost' }] })).rejects.toMatchObject({
    message: expect.stringContaining('edge a->ghost'),
  });
  await expect(refuse({ nodes: [{ id: 'a' }, { id: 'a' }], edges: [] })).rejects.toMatchObject({ message: expect.stringContaining('node id a appears twice') });
  await expect(
    refuse({
      nodes: [{ id: 'a' }, { id: 'b' }],
      edges: [
        { from: 'a', to: 'b' },
        { from: 'b', to: 'a' },
      ],
    }),
  ).rejects.toMatchObject({ message: expect.stringContaining('cycle: a -> b -> a') });
});

it('a worker killed mid-execution loses no node: the other takes its stalled jobs and the execution ends once', async () => {
  const { executionId, store } = await start(layeredDag(4, 6, () => ({ config: { durationMs: 400 } })));
  await waitFor(() => store.state.nodes.filter((n) => n.status === 'running').length >= 4, { message: 'nodes running' });
  // Kill a worker that holds a running node job.
  const by = (await nodeJobs.getActive()).map((job) => job.processedBy ?? '');
  const victim = system.workers.find((w) => w.pid !== undefined && by.some((name) => name.endsWith(`-${w.pid}`)));
  if (!victim) throw new Error(`no test worker is one of ${by.join(', ')}`);
  await victim.kill();
  await waitFor(() => done(store), { message: 'completed after the kill', timeoutMs: 30_000 });
  expect(store.state.status).toBe('completed');
  const events = await history(executionId);
  const seen = transitions(events);
  expect(seen.size).toBe(24);
  for (const [id, list] of seen) expect([id, list.at(-1)]).toEqual([id, 'completed']);
  expect(events.filter((e) => e.type === 'execution_started')).toHaveLength(1);
});
