import type { DagNodeDef } from '@app/protocol';
import type { BotDefinition } from '../../agents/bots/bot-definition';
import type { ProviderRegistry } from '../../agents/providers/provider-registry';
import type { ToolRegistry } from '../../agents/tools/tool-registry';
import { type PriceTable, turnCost } from '../../agents/runtime/price-table';
import { needsApproval } from '../../agents/tools/tool';
import { NodeFunctionError } from './node-functions';

/** What `llm` and `tool` nodes run on: the agent runtime's providers, tools and prices, and the default bot's settings. */
export interface AgentParts {
  providers: ProviderRegistry;
  tools: ToolRegistry;
  defaultBot: Pick<BotDefinition, 'provider' | 'model' | 'approvalThreshold'>;
  /** `AGENT_PRICES`: a listed model's turn is priced from its tokens, as for agent runs. */
  prices?: PriceTable;
}

/** An `llm` node's output: the reply, and what it cost (its node's `costUsd`). */
export interface LlmOutput {
  text: string;
  costUsd: number;
}

/**
 * An `llm` node (§10): one turn of the default bot's model provider (`demo` unless configured)
 * on `config.prompt`, with its map item and its inputs appended as JSON; no tools. A turn that asks for
 * a tool or proposes a plan is answered with its text so far.
 */
export async function runLlmNode(parts: AgentParts, node: DagNodeDef, inputs: Record<string, unknown>, signal: AbortSignal): Promise<LlmOutput> {
  const config = node.config ?? {};
  const provider = parts.providers.get(parts.defaultBot.provider);
  if (!provider) throw new NodeFunctionError(`no model provider ${parts.defaultBot.provider} on this worker`);
  const model = typeof config.model === 'string' ? config.model : parts.defaultBot.model;
  let content = String(config.prompt);
  if (config.item !== undefined) content += `\n\nItem: ${JSON.stringify(config.item)}`;
  if (Object.keys(inputs).length > 0) content += `\n\nInputs: ${JSON.stringify(inputs)}`;
  let text = '';
  let costUsd = 0;
  for await (const part of provider.turn({ model, messages: [{ role: 'user', content }], tools: [], signal })) {
    if (part.kind === 'text') text += part.text;
    if (part.kind === 'usage') costUsd += turnCost(parts.prices ?? {}, model, part);
  }
  return { text, costUsd };
}

/**
 * A `tool` node (§10): runs a registered tool with `config.args`; its result is the output. A
 * tool at or above the default bot's approval threshold runs only right after a `human_gate`
 * (the gate is its approval); otherwise the node fails saying so.
 */
export async function runToolNode(parts: AgentParts, node: DagNodeDef, gated: boolean, executionId: string, signal: AbortSignal): Promise<unknown> {
  const config = node.config ?? {};
  const name = String(config.tool);
  const tool = parts.tools.get(name);
  if (!tool) throw new NodeFunctionError(`no tool ${name} on this worker`);
  if (needsApproval(tool.risk, parts.defaultBot.approvalThreshold) && !gated) {
    throw new NodeFunctionError(`tool ${name} (risk ${tool.risk}) runs only right after a human_gate`);
  }
  const args = (config.args ?? {}) as Record<string, unknown>;
  return (await tool.run(args, { signal, botId: 'dag', runId: executionId })) ?? null;
}
