import { randomUUID } from 'node:crypto';
import { type ChatMessage, type ModelStreamPart, ModelProviderError, type ModelTurnRequest, type ToolCall } from './model-provider';

/**
 * The OpenAI chat-completions wire format, both ways: the request body for one streamed turn,
 * and the stream's chunks folded back into {@link ModelStreamPart}s. Written against what
 * OpenAI, vLLM, Ollama and llama.cpp's server send, which differ in the optional parts.
 */

export function chatCompletionsBody(request: ModelTurnRequest, defaultModel: string): Record<string, unknown> {
  return {
    model: request.model || defaultModel,
    messages: request.messages.map(toWireMessage),
    stream: true,
    // Token counts arrive in one last chunk with `choices: []`; without this, none arrive.
    stream_options: { include_usage: true },
    // OpenAI refuses an empty `tools` array (it wants at least one): leave it out instead.
    ...(request.tools.length > 0
      ? {
          tools: request.tools.map((tool) => ({ type: 'function', function: { name: tool.name, description: tool.description, parameters: tool.parameters } })),
        }
      : {}),
  };
}

function toWireMessage(message: ChatMessage): Record<string, unknown> {
  switch (message.role) {
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content };
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls?.length
          ? { tool_calls: message.toolCalls.map((call) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } })) }
          : {}),
      };
    default:
      return { role: message.role, content: message.content };
  }
}

/** One `data:` payload of the stream, checked only as far as this provider reads it. */
interface Chunk {
  choices: Array<{ index?: unknown; delta?: Delta | null; finish_reason?: unknown }>;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

interface Delta {
  content?: unknown;
  refusal?: unknown;
  /** A reasoning model's thinking: `reasoning_content` (vLLM, llama.cpp, DeepSeek) or `reasoning` (others). */
  reasoning_content?: unknown;
  reasoning?: unknown;
  tool_calls?: unknown;
}

interface ToolCallFragment {
  index?: unknown;
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown } | null;
}

export function parseChunk(data: string): Chunk {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw new ModelProviderError('MODEL_BAD_RESPONSE', `the model server sent a chunk that is not JSON: ${snippet(data)}`);
  }
  if (typeof value !== 'object' || value === null) {
    throw new ModelProviderError('MODEL_BAD_RESPONSE', `the model server sent a chunk that is not an object: ${snippet(data)}`);
  }
  const chunk = value as Record<string, unknown>;
  // OpenAI and vLLM report a failure that happens mid-stream as a chunk of its own.
  if (chunk.error !== undefined && chunk.error !== null) {
    throw new ModelProviderError('MODEL_FAILED', `the model server failed mid-stream: ${errorText(chunk.error)}`);
  }
  const hasUsage = typeof chunk.usage === 'object' && chunk.usage !== null;
  if (chunk.choices === undefined && hasUsage) return { choices: [], usage: chunk.usage as Chunk['usage'] };
  if (!Array.isArray(chunk.choices) || !chunk.choices.every((choice) => typeof choice === 'object' && choice !== null)) {
    throw new ModelProviderError('MODEL_BAD_RESPONSE', `the model server sent a chunk without a choices array: ${snippet(data)}`);
  }
  return chunk as unknown as Chunk;
}

/**
 * Folds a turn's chunks. Text and thinking go out as they arrive; tool calls come in
 * fragments (the first with id and name, the rest with pieces of the arguments, joined by
 * `index`, several calls possibly interleaved) and go out whole at the end, with the usage.
 */
export class TurnAssembler {
  private readonly calls = new Map<number, { id?: string; name?: string; arguments: string }>();
  private tokens: { prompt: number; completion: number } | null = null;
  private sawFinish = false;

  constructor(private readonly pricePer1k: { prompt: number; completion: number }) {}

  accept(chunk: Chunk): ModelStreamPart[] {
    const parts: ModelStreamPart[] = [];
    if (chunk.usage) this.countTokens(chunk.usage);
    for (const choice of chunk.choices) {
      // Only `n: 1` is asked for; a server that sends more choices sends them at other indexes.
      if (choice.index !== undefined && choice.index !== 0) continue;
      const delta = choice.delta ?? {};
      const thinking = text(delta.reasoning_content) || text(delta.reasoning);
      if (thinking) parts.push({ kind: 'thinking', text: thinking });
      // A refusal (OpenAI) is the model's answer too: the user should read it.
      const reply = text(delta.content) || text(delta.refusal);
      if (reply) parts.push({ kind: 'text', text: reply });
      if (Array.isArray(delta.tool_calls)) delta.tool_calls.forEach((fragment: unknown, position) => this.addFragment(fragment, position));
      if (typeof choice.finish_reason === 'string') this.sawFinish = true;
    }
    return parts;
  }

  /** A `finish_reason` arrived: the turn is complete even if the connection ends without `[DONE]`. */
  get finished(): boolean {
    return this.sawFinish;
  }

  /** The tool calls in the model's order, then the usage if the server counted tokens. */
  finish(): ModelStreamPart[] {
    const parts: ModelStreamPart[] = [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, call]): ModelStreamPart => ({ kind: 'tool_call', call: this.complete(index, call) }));
    if (this.tokens) {
      const { prompt, completion } = this.tokens;
      const cost = (prompt / 1000) * this.pricePer1k.prompt + (completion / 1000) * this.pricePer1k.completion;
      // Rounded to nano-dollars so sums of a few terms do not show float noise (0.30000000000000004).
      parts.push({ kind: 'usage', promptTokens: prompt, completionTokens: completion, costUsd: Math.round(cost * 1e9) / 1e9 });
    }
    return parts;
  }

  private addFragment(value: unknown, position: number): void {
    if (typeof value !== 'object' || value === null) {
      throw new ModelProviderError('MODEL_BAD_RESPONSE', 'the model server sent a tool call fragment that is not an object');
    }
    const fragment = value as ToolCallFragment;
    const index = this.indexOf(fragment, position);
    const call = this.calls.get(index) ?? { arguments: '' };
    this.calls.set(index, call);
    if (text(fragment.id)) call.id = text(fragment.id);
    // The name is sent whole (some servers repeat it on every fragment); arguments in pieces.
    if (text(fragment.function?.name)) call.name = text(fragment.function?.name);
    call.arguments += text(fragment.function?.arguments);
  }

  /**
   * Fragments are joined by `index`. Some servers send each call whole and without one: a
   * call with a new id is then a new call, and one without an id is its place in the list.
   */
  private indexOf(fragment: ToolCallFragment, position: number): number {
    if (typeof fragment.index === 'number') return fragment.index;
    const id = text(fragment.id);
    if (!id) return position;
    for (const [index, call] of this.calls) if (call.id === id) return index;
    return Math.max(-1, ...this.calls.keys()) + 1;
  }

  private complete(index: number, call: { id?: string; name?: string; arguments: string }): ToolCall {
    if (!call.name) throw new ModelProviderError('MODEL_BAD_RESPONSE', `the model server sent tool call ${index} without a name`);
    return {
      // Tool results are matched to calls by id in the next turn, so one must exist and be unique.
      id: call.id ?? `call_${randomUUID()}`,
      name: call.name,
      // A call without arguments streams none at all: `{}` is what the tool's schema expects.
      arguments: call.arguments.trim() === '' ? '{}' : call.arguments,
    };
  }

  private countTokens(usage: NonNullable<Chunk['usage']>): void {
    const prompt = usage.prompt_tokens;
    const completion = usage.completion_tokens;
    if (typeof prompt === 'number' && typeof completion === 'number') this.tokens = { prompt, completion };
  }
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** `{ error: { message } }` (OpenAI, vLLM), `{ error: "…" }` (Ollama), or whatever else. */
export function errorText(error: unknown): string {
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    return (error as { message: string }).message;
  }
  return snippet(JSON.stringify(error) ?? String(error));
}

export function snippet(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
