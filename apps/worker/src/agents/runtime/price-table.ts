import { roundUsd } from '@app/protocol';

/**
 * What a model costs, per deployment (`AGENT_PRICES`): USD per 1,000 prompt and completion
 * tokens, by model name, e.g. `{"gpt-4o-mini":{"prompt":0.00015,"completion":0.0006}}`. A run
 * on a listed model is priced from its token counts, whatever its provider reports; a model
 * not listed keeps the provider's own figure (the `openai` provider's `OPENAI_PRICE_*`, the
 * demo model's 0).
 */
export interface ModelPrice {
  prompt: number;
  completion: number;
}

export type PriceTable = Readonly<Record<string, ModelPrice>>;

/** Parses `AGENT_PRICES`; an empty value is an empty table. Throws a message saying what is wrong. */
export function parsePriceTable(text: string): PriceTable {
  if (!text.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('must be JSON: {"<model>":{"prompt":<USD per 1k>,"completion":<USD per 1k>}}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('must be a JSON object of models');
  const table: Record<string, ModelPrice> = {};
  for (const [model, price] of Object.entries(parsed as Record<string, unknown>)) {
    const { prompt, completion } = (typeof price === 'object' && price !== null ? price : {}) as Record<string, unknown>;
    if (!isPrice(prompt) || !isPrice(completion) || Object.keys(price as object).length !== 2) {
      throw new Error(`model "${model}" must be {"prompt":<USD per 1k>,"completion":<USD per 1k>} with numbers ≥ 0`);
    }
    table[model] = { prompt, completion };
  }
  return table;
}

/** A turn's cost: from the table when it lists the model, else as the provider reported it. */
export function turnCost(prices: PriceTable, model: string, usage: { promptTokens: number; completionTokens: number; costUsd: number }): number {
  const price = Object.hasOwn(prices, model) ? prices[model] : undefined;
  if (!price) return usage.costUsd;
  return roundUsd((usage.promptTokens / 1000) * price.prompt + (usage.completionTokens / 1000) * price.completion);
}

function isPrice(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
