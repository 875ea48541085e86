import { DomainStore } from '@app/backplane';
import type { BotEvent } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient } from '@app/runtime';
import { BotCatalog } from '../bots/bot-definition';
import { ProviderRegistry } from '../providers/provider-registry';
import { AgentRuntime } from '../runtime/agent-runtime';
import { builtInTools } from '../tools/tool-registry';
import { orderStatusTool, RulesProvider, supportBot } from './support-bot';

/** docs/bots.md's example, run: a team's bot, tool and provider through the agent runtime. */
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

it('answers an order question with its own tool and provider', async () => {
  const store = new DomainStore(redis);
  const events: BotEvent[] = [];
  const runtime = new AgentRuntime({
    bots: new BotCatalog({ ...supportBot, botId: '*', provider: 'demo', model: 'demo' }, [supportBot]),
    providers: new ProviderRegistry().register(new RulesProvider()),
    tools: builtInTools({ allowedHosts: [], timeoutMs: 1000 }).register(orderStatusTool),
    store,
    publish: (_botId, event) => {
      events.push(event);
      return Promise.resolve();
    },
    options: { approvalTimeoutMs: 60_000, approvalOnExpiry: 'reject', planTimeoutMs: 60_000 },
  });
  const job = { runId: 'r1', botId: 'support', sessionId: 's1', userId: 'u1', content: 'Where is order A100?', messageId: 'm1', source: 'chat' as const };
  await store.createRun(job.runId, { botId: job.botId, sessionId: job.sessionId, userId: job.userId });

  expect(await runtime.start(job, { cancel: new AbortController().signal })).toEqual({ kind: 'finished', status: 'completed' });
  expect(events.map((e) => e.type)).toEqual(['run_started', 'message', 'thinking', 'tool_start', 'tool_end', 'message', 'usage', 'done']);
  expect(events[0].payload).toMatchObject({ model: 'rules-v1' });
  expect(events[4].payload).toMatchObject({ success: true, result: { orderId: 'A100', status: 'shipped' } });
  expect(events[5].payload).toMatchObject({ content: 'Here is what I found: {"orderId":"A100","status":"shipped"}' });
  expect(events[6].payload).toMatchObject({ promptTokens: 20, completionTokens: 10, totalCost: 0.0002 });
});
