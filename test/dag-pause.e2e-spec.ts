import { type ConnectionOptions, Queue } from 'bullmq';
import { dagNodeJobId, QUEUE_PREFIX, QUEUES } from '@app/backplane';
import { RealtimeClient } from '@app/client';
import type { DagDefinition, DagState } from '@app/protocol';
import { waitFor } from '@app/runtime';
import { startSystem, type TestSystem } from './support/system';
import { signToken } from './support/tokens';

/**
 * A pause that lands after a node was handed to the workers but before it started: the node
 * does not start while paused (its job waits in BullMQ's delayed set, holding no worker),
 * and runs after the resume. One worker that runs one node at a time makes the moment sure:
 * `slow` runs, `quick` waits behind it in the queue.
 */
let system: TestSystem;
let client: RealtimeClient;
let nodeJobs: Queue;
beforeAll(async () => {
  system = await startSystem({ gateways: 1, workers: 1, workerEnv: { DAG_NODE_CONCURRENCY: '1' } });
  client = new RealtimeClient({ url: system.gateways[0].url, token: () => signToken({ sub: 'alice', scope: ['dag:*'] }) });
  nodeJobs = new Queue(QUEUES.dagNodes, { connection: system.client as unknown as ConnectionOptions, prefix: QUEUE_PREFIX });
}, 60_000);
afterAll(async () => {
  client?.close();
  await nodeJobs?.close();
  await system?.stop();
});

it('a node handed out before the pause but not started is held until the resume, without a worker', async () => {
  const dag: DagDefinition = {
    nodes: [
      { id: 'slow', kind: 'delay', config: { ms: 1_500 } },
      { id: 'quick', kind: 'delay', config: { ms: 1 } },
    ],
    edges: [],
  };
  const { executionId } = await client.command('start_execution', { dag });
  const store = await client.subscribe(`dag:${executionId}`);
  const statusOf = (id: string) => (store.state as DagState).nodes.find((n) => n.id === id)?.status;
  await waitFor(() => statusOf('slow') === 'running', { message: 'slow running' });
  expect(statusOf('quick')).toBe('ready');

  await client.command('pause_execution', { executionId });
  await waitFor(() => store.state.status === 'paused', { message: 'paused' });
  await waitFor(() => statusOf('slow') === 'completed', { message: 'the running node finishes' });
  // quick's job became active once slow's freed the worker, found the execution paused and
  // went to the delayed set: it holds no worker and has not run.
  const job = dagNodeJobId(executionId, 'quick');
  await waitFor(async () => (await nodeJobs.getJobState(job)) === 'delayed', { message: 'the held job delayed' });
  expect(statusOf('quick')).toBe('ready');
  expect(await nodeJobs.getActiveCount()).toBe(0);

  await client.command('resume_execution', { executionId });
  await waitFor(() => store.state.status === 'completed', { timeoutMs: 10_000, message: 'completed after the resume' });
  expect(statusOf('quick')).toBe('completed');
});
