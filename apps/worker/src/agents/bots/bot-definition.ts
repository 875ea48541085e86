import type { BusyPolicy } from '@app/protocol';
import type { ToolRisk } from '../providers/model-provider';

/**
 * What a team decides about a bot; the runtime does the rest (docs/bots.md). Bots without a
 * definition of their own run the deployment's default one (the `AGENT_*` variables).
 */
export interface BotDefinition {
  /** The bot id it applies to (`bot:<id>` streams), or `*` for every bot without its own. */
  botId: string;
  /** A registered model provider's name (`demo`, `openai`, …). */
  provider: string;
  /** The model asked for, unless a `chat` names another. */
  model: string;
  systemPrompt: string;
  /** Names of registered tools this bot may call. */
  tools: string[];
  /** Tools at or above this risk wait for an approval (§9: default `high`). */
  approvalThreshold: ToolRisk;
  /** What a `chat` without `onBusy` does when its session is busy (§9: default `enqueue`). */
  onBusy: BusyPolicy;
  /** Model turns per run before it is stopped `failed` (a model that calls tools forever). */
  maxTurns: number;
}

/** The bots a worker knows: their own definitions, else the default one. */
export class BotCatalog {
  private readonly bots = new Map<string, BotDefinition>();

  constructor(
    private readonly fallback: BotDefinition,
    definitions: readonly BotDefinition[] = [],
  ) {
    for (const definition of definitions) this.bots.set(definition.botId, definition);
  }

  definitionOf(botId: string): BotDefinition {
    return this.bots.get(botId) ?? this.fallback;
  }

  all(): BotDefinition[] {
    return [this.fallback, ...this.bots.values()];
  }
}
