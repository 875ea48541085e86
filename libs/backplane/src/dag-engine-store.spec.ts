import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient } from '@app/runtime';
import type { DagDefinition } from '@app/protocol';
import { DagEngineStore, type StoredNode } from './dag-engine-store';
import { DomainStore } from './domain-store';

let server: AcquiredRedis;
let redis: RedisClient;
let other: RedisClient;
let engine: DagEngineStore;
let domain: DomainStore;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
  other = createRedis({ url: server.url, role: 'test-2' });
  engine = new DagEngineStore(redis);
  domain = new DomainStore(redis);
});
afterAll(async () => {
  await Promise.all([redis.quit(), other.quit()]);
  await server.release();
});

let n = 0;
async function launch(dag: DagDefinition, limit = 100, budget?: number) {
  const id = `e${++n}`;
  await domain.createExecution(id, 'u');
  const nodes: StoredNode[] = dag.nodes.map((node) => ({ node, preds: dag.edges.filter((e) => e.to === node.id).map((e) => e.from) }));
  const succ = new Map(dag.nodes.map((node) => [node.id, dag.edges.filter((e) => e.from === node.id).map((e) => e.to)]));
  return { id, first: await engine.init(id, nodes, succ, { limit, budgetUsd: budget, inputs: { seed: n } }) };
}
const ids = (...list: string[]) => ({ nodes: list.map((id) => ({ id })), edges: [] as DagDefinition['edges'] });
const diamond: DagDefinition = {
  nodes: ['a', 'b', 'c', 'd'].map((id) => ({ id })),
  edges: [
    { from: 'a', to: 'b' },
    { from: 'a', to: 'c' },
    { from: 'b', to: 'd' },
    { from: 'c', to: 'd' },
  ],
};

it('hands out roots, fans out, and fans in once when two predecessors finish together on two connections', async () => {
  const { id, first } = await launch(diamond);
  expect(first).toMatchObject({ ready: ['a'], dispatch: ['a'] });
  expect(await domain.getExecution(id)).toMatchObject({ status: 'running' });
  expect(await engine.start(id, 'a')).toBe('run');
  expect(await engine.settle(id, 't-a', 'a', 'completed', 'fail_execution')).toMatchObject({ ready: ['b', 'c'], dispatch: ['b', 'c'] });
  const racing = new DagEngineStore(other);
  const [b, c] = await Promise.all([
    engine.settle(id, 't-b', 'b', 'completed', 'fail_execution'),
    racing.settle(id, 't-c', 'c', 'completed', 'fail_execution'),
  ]);
  expect([...b.ready, ...c.ready]).toEqual(['d']);
  // A retried step answers as the first time; a settled node's duplicate job is stale.
  expect(await engine.settle(id, 't-b', 'b', 'completed', 'fail_execution')).toEqual(b);
  expect(await engine.start(id, 'b')).toBe('stale');
  const end = await engine.settle(id, 't-d', 'd', 'completed', 'fail_execution');
  expect(end.finish).toBe('completed');
  expect(await engine.settle(id, 't-d2', 'd', 'completed', 'fail_execution')).toMatchObject({ stale: true });
  expect(await engine.statuses(id)).toEqual({ a: 'completed', b: 'completed', c: 'completed', d: 'completed' });
  expect(await engine.executionInputs(id)).toEqual({ seed: n });
});

it('keeps to the concurrency limit and hands out nothing while paused', async () => {
  const { id, first } = await launch(ids('a', 'b', 'c', 'd'), 2);
  expect(first.dispatch).toEqual(['a', 'b']);
  expect(await engine.start(id, 'a')).toBe('run');
  await domain.transitionExecution(id, 'paused', ['running']);
  // b was handed out before the pause but has not started: held, not run.
  expect(await engine.start(id, 'b')).toBe('held');
  expect((await engine.settle(id, 't-a', 'a', 'completed', 'fail_execution')).dispatch).toEqual([]);
  await domain.transitionExecution(id, 'running', ['paused']);
  expect((await engine.advance(id, 'resume-1')).dispatch).toEqual(['c']);
  expect(await engine.start(id, 'b')).toBe('run');
});

it('skip_dependents skips every pending descendant; the execution still ends failed', async () => {
  const { id } = await launch({ ...diamond, nodes: [...diamond.nodes, { id: 'side' }], edges: [...diamond.edges, { from: 'd', to: 'side' }] });
  await engine.settle(id, 't-a', 'a', 'completed', 'fail_execution');
  const failed = await engine.settle(id, 't-b', 'b', 'failed', 'skip_dependents');
  expect(failed.skipped).toEqual(['d', 'side']);
  expect(failed.failing).toBeUndefined();
  expect((await engine.settle(id, 't-c', 'c', 'completed', 'fail_execution')).finish).toBe('failed');
});

it('fail_execution stops the execution: nothing new starts; once the running nodes stop, the rest is cancelled and it ends, in one step', async () => {
  const { id } = await launch({ nodes: [{ id: 'a' }, { id: 'b' }, { id: 'c' }], edges: [{ from: 'b', to: 'c' }] });
  const failed = await engine.settle(id, 't-a', 'a', 'failed', 'fail_execution');
  expect(failed).toMatchObject({ failing: true, cancelled: expect.not.arrayContaining(['c']) });
  expect(await engine.start(id, 'b')).toBe('abort');
  // The step that settles the last running node sweeps and ends: its events put the sweep before the end.
  expect(await engine.settle(id, 't-b', 'b', 'cancelled', 'fail_execution')).toMatchObject({ cancelled: ['c'], finish: 'failed' });
  expect(await domain.getExecution(id)).toMatchObject({ status: 'failed' });
});

it('cancel sweeps waiting gates and queued nodes once nothing runs, in the step that ends the execution', async () => {
  const { id } = await launch(ids('gate', 'x', 'y'), 2);
  expect(await engine.start(id, 'gate')).toBe('run');
  expect((await engine.park(id, 'park-gate', 'gate')).dispatch).toEqual(['y']);
  await domain.transitionExecution(id, 'cancelling', ['running']);
  const step = await engine.advance(id, 'cancel-1');
  expect(step.cancelled).not.toContain('gate');
  expect(step.finish).toBeUndefined();
  expect((await engine.settle(id, 't-x', 'x', 'cancelled', 'fail_execution')).finish).toBeUndefined();
  expect(await engine.settle(id, 't-y', 'y', 'completed', 'fail_execution')).toMatchObject({ cancelled: ['gate'], finish: 'cancelled' });
});

it('a gate that parks after the cancel, the last node running, sweeps itself and ends the execution', async () => {
  const { id } = await launch(ids('gate', 'z'), 1);
  expect(await engine.start(id, 'gate')).toBe('run');
  await domain.transitionExecution(id, 'cancelling', ['running']);
  expect((await engine.advance(id, 'cancel-2')).finish).toBeUndefined();
  expect(await engine.park(id, 'park-gate', 'gate')).toMatchObject({ cancelled: expect.arrayContaining(['gate', 'z']), finish: 'cancelled' });
});

it('a budget overrun fails the execution', async () => {
  const { id } = await launch(ids('a', 'b'), 10, 1);
  expect(await engine.settle(id, 't-a', 'a', 'completed', 'fail_execution', 0.75)).toMatchObject({ spent: 0.75 });
  const over = await engine.settle(id, 't-b', 'b', 'completed', 'fail_execution', 0.5);
  expect(over).toMatchObject({ spent: 1.25, budgetExceeded: true, finish: 'failed' });
});

it('a map node adds items that wait for it and feed its successors', async () => {
  const { id } = await launch({ nodes: [{ id: 'm' }, { id: 'after' }], edges: [{ from: 'm', to: 'after' }] });
  await engine.start(id, 'm');
  const items = [{ id: 'm.0' }, { id: 'm.1' }];
  expect((await engine.expand(id, 'expand-m', 'm', items)).stale).toBeUndefined();
  expect((await engine.settle(id, 't-m', 'm', 'completed', 'fail_execution')).ready).toEqual(['m.0', 'm.1']);
  expect((await engine.settle(id, 't-0', 'm.0', 'completed', 'fail_execution')).ready).toEqual([]);
  expect((await engine.settle(id, 't-1', 'm.1', 'completed', 'fail_execution')).ready).toEqual(['after']);
  expect(await engine.node(id, 'm.1')).toEqual({ node: { id: 'm.1' }, preds: ['m'] });
  // The map node's successor takes the items' outputs as inputs; a retried expansion adds nothing twice.
  expect(await engine.node(id, 'after')).toEqual({ node: { id: 'after' }, preds: ['m', 'm.0', 'm.1'] });
  await engine.expand(id, 'expand-m', 'm', items);
  expect(await engine.node(id, 'after')).toEqual({ node: { id: 'after' }, preds: ['m', 'm.0', 'm.1'] });
});

it('keeps the first outcome recorded for a node', async () => {
  expect(await engine.recordOutcome('x1', 'a', 1, { ok: true, output: { v: 1 } })).toEqual({ ok: true, output: { v: 1 } });
  expect(await engine.recordOutcome('x1', 'a', 1, { ok: true, output: { v: 2 } })).toEqual({ ok: true, output: { v: 1 } });
  expect(await engine.recordedOutcome('x1', 'b', 1)).toBeNull();
  await engine.recordOutcome('x1', 'b', 1, { ok: false, error: 'boom' });
  expect(await engine.recordedOutcome('x1', 'b', 1)).toEqual({ ok: false, error: 'boom' });
  expect(await engine.recordedOutcome('x1', 'b', 2)).toBeNull();
  expect(await engine.outputs('x1', ['a', 'b'])).toEqual({ a: { v: 1 } });
});
