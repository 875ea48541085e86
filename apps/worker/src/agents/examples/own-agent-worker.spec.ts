import { Queue } from 'bullmq';
import { type AgentRunJob, DEFAULT_RETENTION, DomainStore, QUEUE_PREFIX, QUEUES, StreamHistory } from '@app/backplane';
import { acquireRedis, type AcquiredRedis, bullConnection, createRedis, type RedisClient, waitFor } from '@app/runtime';
import { startOwnAgentWorker } from './own-agent-worker';

/** docs/bots.md's "bring your own worker", run: a job queued as a gateway queues it, answered on the bot's stream. */
let server: AcquiredRedis;
let redis: RedisClient;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
});
afterAll(async () => {
  await redis.quit();
  await server.release();
});

it('publishes a run from its own BullMQ worker', async () => {
  const worker = startOwnAgentWorker(server.url, async function* (job) {
    yield 'You said: ';
    yield job.content;
  });
  const queue = new Queue<AgentRunJob>(QUEUES.agentRuns, { connection: bullConnection(server.url, 'test:queue'), prefix: QUEUE_PREFIX });
  try {
    const store = new DomainStore(redis);
    const job: AgentRunJob = { runId: 'own-1', botId: 'own-bot', sessionId: 'own-s', userId: 'u', content: 'hi', messageId: 'own-m', source: 'chat' };
    // What a gateway does for `chat`: the run record, its place in the session's line, the job.
    await store.createRun(job.runId, { botId: job.botId, sessionId: job.sessionId, userId: job.userId });
    await store.admitSessionRun(job.sessionId, job.runId, 'enqueue');
    await queue.add('run', job, { jobId: job.runId });

    await waitFor(async () => (await store.getRun(job.runId))?.status === 'completed', { message: 'the run completed' });
    const history = new StreamHistory(redis, DEFAULT_RETENTION);
    const events = await history.range('bot:own-bot', 1, (await history.head('bot:own-bot'))?.seq ?? 0);
    expect(events.map((e) => e.type)).toEqual(['run_started', 'message', 'message', 'message', 'usage', 'done']);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await store.sessionRuns(job.sessionId)).toEqual([]);
  } finally {
    await queue.close();
    await worker.close();
  }
});
