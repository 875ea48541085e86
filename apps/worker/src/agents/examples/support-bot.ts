/**
 * A team's own bot, tool and model provider, as docs/bots.md walks through them. The spec
 * beside this file runs it through the agent runtime (`npx jest support-bot`); to run it in
 * the worker, register the tool and the provider in `agent-runtime.providers.ts` and add the
 * definition to `bots/index.ts`.
 */
import type { BotDefinition } from '../bots/bot-definition';
import type { ModelProvider, ModelStreamPart, ModelTurnRequest } from '../providers/model-provider';
import { stringArg, type Tool, ToolError } from '../tools/tool';

/** A tool: a name, a JSON Schema for its arguments, a risk level and a function. */
export const orderStatusTool: Tool = {
  spec: {
    name: 'order_status',
    description: 'Looks up the status of an order by its id.',
    parameters: { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'], additionalProperties: false },
  },
  risk: 'low',
  run: async (args) => {
    const orderId = stringArg(args, 'orderId');
    const status = ORDERS[orderId];
    // A ToolError fails this call (tool_end success: false) and the run goes on.
    if (!status) throw new ToolError(`no order ${orderId}`);
    return { orderId, status };
  },
};
const ORDERS: Record<string, string> = { A100: 'shipped', A200: 'packing' };

/**
 * A model provider: one streamed turn from the conversation. This one is a few rules instead
 * of a model: an order number in the question → a tool call; a tool result → a reply.
 */
export class RulesProvider implements ModelProvider {
  readonly name = 'rules';

  async *turn({ messages }: ModelTurnRequest): AsyncGenerator<ModelStreamPart> {
    const last = messages[messages.length - 1];
    if (last.role === 'tool') {
      yield { kind: 'text', text: `Here is what I found: ${last.content}` };
    } else {
      const orderId = /\b([A-Z]\d{3})\b/.exec(last.content)?.[1];
      if (orderId) {
        yield { kind: 'thinking', text: `Looking up order ${orderId}.` };
        yield { kind: 'tool_call', call: { id: `lookup-${orderId}`, name: 'order_status', arguments: JSON.stringify({ orderId }) } };
      } else {
        yield { kind: 'text', text: 'Which order? ' };
        yield { kind: 'text', text: 'Give me its number, like A100.' };
      }
    }
    yield { kind: 'usage', promptTokens: 10, completionTokens: 5, costUsd: 0.0001 };
  }
}

/** The bot: which provider and model, its prompt and tools, when to ask for approval, what a busy session does. */
export const supportBot: BotDefinition = {
  botId: 'support',
  provider: 'rules',
  model: 'rules-v1',
  systemPrompt: 'You answer questions about orders.',
  tools: ['order_status'],
  approvalThreshold: 'high',
  onBusy: 'reject',
  maxTurns: 4,
};
