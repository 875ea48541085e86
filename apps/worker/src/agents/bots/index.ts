import type { BotDefinition } from './bot-definition';

/**
 * Bots with a definition of their own. Add yours here (docs/bots.md); every other bot id runs
 * the default bot configured by the `AGENT_*` variables. Example:
 *
 *   { botId: 'support', provider: 'demo', model: 'demo', systemPrompt: 'You answer support questions.',
 *     tools: ['calculator', 'clock'], approvalThreshold: 'high', onBusy: 'reject', maxTurns: 8 }
 */
export const BOT_DEFINITIONS: readonly BotDefinition[] = [];
