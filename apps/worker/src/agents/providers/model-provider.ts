/**
 * The seam between the agent runtime and a model (PROTOCOL.md §9): the runtime owns the loop
 * of turns and tool calls, events, approvals and plans; a provider only turns a conversation
 * into one streamed model turn. The built-in `demo` provider and the OpenAI-compatible one
 * implement it, and so can a team's own (docs/bots.md).
 */

export type ToolRisk = 'low' | 'medium' | 'high' | 'critical';

/** A tool as the model sees it: name, what it does, and a JSON Schema of its arguments. */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema (an object schema) of the arguments. */
  parameters: Record<string, unknown>;
}

/** A tool call the model asked for; `arguments` is the JSON text the model produced. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

export interface ModelTurnRequest {
  model: string;
  messages: ChatMessage[];
  tools: ToolSpec[];
  /** Aborted on cancel, interrupt or the worker's hand-back: the provider stops at once. */
  signal: AbortSignal;
  /**
   * Set when the runtime works through an approved plan: this turn carries out one step (the
   * messages end with a user message asking for it). Providers may ignore it.
   */
  planStep?: { index: number; total: number; text: string };
}

/**
 * One turn, streamed. A turn ends with text (the reply; the run is done), or with tool calls
 * (the runtime runs them and asks for the next turn), or with a plan proposal (the runtime
 * asks the dashboards and continues with the approved or edited steps). `usage` may come at
 * any point, at most once per turn.
 */
export type ModelStreamPart =
  | { kind: 'thinking'; text: string }
  | { kind: 'text'; text: string }
  | { kind: 'tool_call'; call: ToolCall }
  | { kind: 'plan'; goal: string; steps: string[] }
  | { kind: 'usage'; promptTokens: number; completionTokens: number; costUsd: number };

export interface ModelProvider {
  /** The provider's name in configuration (`demo`, `openai`). */
  readonly name: string;
  turn(request: ModelTurnRequest): AsyncIterable<ModelStreamPart>;
}

/** Why a turn failed, for the run's `error` event: the code goes on the wire as is. */
export type ModelErrorCode = 'MODEL_TIMEOUT' | 'MODEL_UNAVAILABLE' | 'MODEL_REJECTED' | 'MODEL_BAD_RESPONSE' | 'MODEL_FAILED';

export class ModelProviderError extends Error {
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    /** Whether the same request may succeed if tried again (a 429, a 5xx, a reset connection). */
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'ModelProviderError';
  }
}
