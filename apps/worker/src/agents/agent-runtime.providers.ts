import type { Provider } from '@nestjs/common';
import { DomainStore } from '@app/backplane';
import { botStream } from '@app/protocol';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { EventSink } from '../ops/event-sink';
import { BOT_DEFINITIONS } from './bots';
import { BotCatalog } from './bots/bot-definition';
import { createModelProvider } from './providers/create-model-provider';
import { DemoProvider } from './providers/demo-provider';
import { ProviderRegistry } from './providers/provider-registry';
import { AgentRuntime } from './runtime/agent-runtime';
import { builtInTools, ToolRegistry } from './tools/tool-registry';

/**
 * The agent runtime and what it is built from. A deployment's own tools and providers are
 * registered here (docs/bots.md); its own bots go in `bots/index.ts`.
 */
export const agentRuntimeProviders: Provider[] = [
  {
    provide: ToolRegistry,
    inject: [WORKER_CONFIG],
    useFactory: (config: WorkerConfig) => builtInTools(config.agents.httpGet),
  },
  {
    provide: ProviderRegistry,
    inject: [WORKER_CONFIG],
    useFactory: (config: WorkerConfig) => {
      const registry = new ProviderRegistry().register(new DemoProvider({ chunkDelayMs: config.agents.demoChunkDelayMs }));
      // Every other provider a bot names is built from its own variables (OPENAI_*), read only
      // when a bot uses it; an unknown name or a bad variable stops the worker at start.
      const named = new Set([config.agents.defaultBot.provider, ...BOT_DEFINITIONS.map((bot) => bot.provider)]);
      for (const name of named) if (!registry.get(name)) registry.register(createModelProvider(name));
      return registry;
    },
  },
  {
    provide: BotCatalog,
    inject: [WORKER_CONFIG],
    useFactory: (config: WorkerConfig) => new BotCatalog(config.agents.defaultBot, BOT_DEFINITIONS),
  },
  {
    provide: AgentRuntime,
    inject: [WORKER_CONFIG, BotCatalog, ProviderRegistry, ToolRegistry, DomainStore, EventSink],
    useFactory: (config: WorkerConfig, bots: BotCatalog, providers: ProviderRegistry, tools: ToolRegistry, store: DomainStore, sink: EventSink) => {
      requireParts(bots, providers, tools);
      return new AgentRuntime({
        bots,
        providers,
        tools,
        store,
        publish: (botId, event, options) => sink.bot(botId, event, options),
        fence: (botId, producerId, epoch) => sink.publisher.fence(botStream(botId), producerId, epoch),
        coalescer: (send) => sink.coalescer(send),
        options: config.agents,
      });
    },
  },
];

/** A bot naming a provider or tool this worker lacks stops the worker at start, not its first run. */
function requireParts(bots: BotCatalog, providers: ProviderRegistry, tools: ToolRegistry): void {
  for (const bot of bots.all()) {
    if (!providers.get(bot.provider))
      throw new Error(`bot ${bot.botId}: no model provider named ${bot.provider} (registered: ${providers.names().join(', ')})`);
    const missing = bot.tools.filter((name) => !tools.get(name));
    if (missing.length > 0) throw new Error(`bot ${bot.botId}: no tool named ${missing.join(', ')} (registered: ${tools.names().join(', ')})`);
  }
}
