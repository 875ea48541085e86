/**
 * A team's own BullMQ worker for agent runs, instead of this project's worker (docs/bots.md,
 * "Bring your own worker"). It takes {@link AgentRunJob}s from the `agent-runs` queue, publishes
 * the run's events on the bot's stream through the backplane (gapless seqs, fan-out to every
 * dashboard) and keeps the run's record, so `cancel`, `chat.onBusy` and snapshots work as with
 * the built-in runtime. The spec beside it runs it against a private Redis.
 */
import { Worker } from 'bullmq';
import { type AgentRunJob, DEFAULT_RETENTION, DomainStore, FINISHED_RUN, Producer, producerIds, QUEUE_PREFIX, QUEUES, StreamPublisher } from '@app/backplane';
import { type BotEvent, botStream } from '@app/protocol';
import { bullConnection, createRedis } from '@app/runtime';

/** Your agent: the reply to a job, as chunks. */
export type Answer = (job: AgentRunJob) => AsyncIterable<string>;

export function startOwnAgentWorker(redisUrl: string, answer: Answer): { close: () => Promise<void> } {
  const redis = createRedis({ url: redisUrl, role: 'own-agent-worker' });
  const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
  const store = new DomainStore(redis);

  const worker = new Worker<AgentRunJob>(
    QUEUES.agentRuns,
    async (job) => {
      const { runId, botId, sessionId, messageId, content } = job.data;
      const run = await store.getRun(runId);
      if (!run || FINISHED_RUN.has(run.status)) return 'skipped';
      // Every event once, whatever retries happen: stamped by this attempt's producer, whose
      // epoch fences off an older attempt still running (its job stalled and came here).
      const producer = new Producer(producerIds.run(runId), job.attemptsStarted);
      await publisher.fence(botStream(botId), producer.id, producer.epoch);
      const publish = (event: BotEvent, idempotencyKey?: string) =>
        publisher.publish(botStream(botId), event, idempotencyKey ? { idempotencyKey } : { producer: producer.next() });
      const base = { sessionId, runId };
      await store.setRunStatus(runId, 'running');
      await publish({ type: 'run_started', payload: { ...base, model: 'my-agent' } });
      if (job.data.source === 'chat') await publish({ type: 'message', payload: { ...base, messageId, role: 'user', content, delta: false } });
      let reply = '';
      let status: 'completed' | 'cancelled' = 'completed';
      for await (const chunk of answer(job.data)) {
        // A `cancel` command marks the run record; look at it between chunks.
        if ((await store.getRun(runId))?.cancelRequested) {
          status = 'cancelled';
          break;
        }
        reply += chunk;
        await publish({
          type: 'message',
          payload: { ...base, messageId: `${runId}.reply`, role: 'assistant', content: chunk, delta: true, replyToId: messageId },
        });
      }
      await store.appendSessionMessage(sessionId, { messageId: `${runId}.reply`, role: 'assistant', content: reply, runId, ts: Date.now() });
      await publish({ type: 'usage', payload: { ...base, promptTokens: 0, completionTokens: 0, totalTokens: 0, totalCost: 0 } });
      // Exactly one `done` per run, whatever retries happen.
      await publish({ type: 'done', payload: { ...base, replyToId: messageId, status } }, `run-done.${runId}`);
      await store.setRunStatus(runId, status);
      // The run leaves its session's line: a run queued behind it (`onBusy: enqueue`) may start.
      await store.releaseSessionRun(sessionId, runId);
      return status;
    },
    { connection: bullConnection(redisUrl, 'own-agent-worker:bull'), prefix: QUEUE_PREFIX },
  );

  return {
    close: async () => {
      await worker.close();
      await publisher.drain();
      await redis.quit();
    },
  };
}
