import { DomainStore } from '@app/backplane';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient, waitFor } from '@app/runtime';
import type { WorkerRedis } from '../ops/worker-redis';
import { NodeAborts } from './node-aborts';

/** On a real private Redis: the broadcast aborts a node job, and so does the poll when the broadcast was missed. */
let server: AcquiredRedis;
const connections: RedisClient[] = [];
let aborts: NodeAborts;
let store: DomainStore;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  const commands = createRedis({ url: server.url, role: 'test' });
  const subscriber = createRedis({ url: server.url, role: 'test-sub' });
  connections.push(commands, subscriber);
  store = new DomainStore(commands);
  // The worker's two connections, as WorkerRedis holds them.
  aborts = new NodeAborts({ commands, subscriber } as unknown as WorkerRedis, store);
  await aborts.onModuleInit();
});
afterAll(async () => {
  aborts.onApplicationShutdown();
  await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
  await server.release();
});

it('cancels the node jobs of an execution once, on the broadcast', async () => {
  let cancels = 0;
  let marker = false;
  const release = aborts.track('ex-1', 'job-1', () => cancels++);
  const releaseMarker = aborts.track('ex-marker', 'job-m', () => (marker = true));
  await aborts.broadcast('ex-1');
  await aborts.broadcast('ex-1');
  // Messages of one channel arrive in order: once the marker's is handled, both were.
  await aborts.broadcast('ex-marker');
  await waitFor(() => marker, { message: 'the broadcasts handled' });
  expect(cancels).toBe(1);
  release();
  releaseMarker();
});

it('cancels a node job whose execution is stopping though no broadcast came (it was lost), and leaves other executions alone', async () => {
  for (const id of ['ex-2', 'ex-3']) {
    await store.createExecution(id, 'u');
    await store.transitionExecution(id, 'running', ['queued']);
  }
  let stopped = false;
  let other = false;
  const release = aborts.track('ex-2', 'job-2', () => (stopped = true));
  const releaseOther = aborts.track('ex-3', 'job-3', () => (other = true));
  await store.transitionExecution('ex-2', 'cancelling', ['running']);
  await waitFor(() => stopped, { timeoutMs: 5_000, message: 'the poll to cancel the job' });
  expect(other).toBe(false);
  release();
  releaseOther();
});
