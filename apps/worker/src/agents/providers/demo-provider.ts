import { sleep } from '../../ops/abortable-sleep';
import { type ChatMessage, type ModelProvider, ModelProviderError, type ModelStreamPart, type ModelTurnRequest } from './model-provider';

export interface DemoProviderOptions {
  /** Pause between streamed chunks of an ordinary reply (`DEMO_CHUNK_DELAY_MS`). */
  chunkDelayMs: number;
  /** Pause between the chunks of `/slow <n>` (§9: about 100 ms). */
  slowChunkMs?: number;
}

const MAX_SLOW_CHUNKS = 10_000;

/**
 * The built-in model `demo` (PROTOCOL.md §9): no network, deterministic, driven by a directive
 * at the start of the user's message so demos and outside tests reach every path:
 * `/tool <name> <json args>` calls that tool then replies with its result; `/plan <goal>`
 * proposes a three-step plan; `/slow <n>` streams n chunks ~100 ms apart; `/fail` fails the
 * turn; anything else thinks, then streams `Echo: <message>` in at least three chunks.
 */
export class DemoProvider implements ModelProvider {
  readonly name = 'demo';

  constructor(private readonly options: DemoProviderOptions) {}

  async *turn(request: ModelTurnRequest): AsyncGenerator<ModelStreamPart> {
    const { messages, signal, planStep } = request;
    const last = messages[messages.length - 1];
    if (planStep) {
      yield* this.reply(`Step ${planStep.index}/${planStep.total}: ${planStep.text} — done.`, messages, signal);
      return;
    }
    if (last?.role === 'tool') {
      const tool = toolNameOf(messages, last.toolCallId);
      const failure = last.content.startsWith('error: ') ? last.content.slice('error: '.length) : null;
      yield* this.reply(failure === null ? `The ${tool} tool returned: ${last.content}` : `The ${tool} tool failed: ${failure}`, messages, signal);
      return;
    }
    const content = lastUserContent(messages);
    const tool = /^\/tool\s+(\S+)\s*([\s\S]*)$/.exec(content);
    if (tool) {
      yield { kind: 'thinking', text: `Calling the ${tool[1]} tool.` };
      const turn = messages.filter((m) => m.role === 'assistant').length + 1;
      yield { kind: 'tool_call', call: { id: `demo-call-${turn}`, name: tool[1], arguments: tool[2].trim() || '{}' } };
      yield usage(messages, '');
      return;
    }
    const plan = /^\/plan\s+([\s\S]+)$/.exec(content);
    if (plan) {
      const goal = plan[1].trim();
      yield { kind: 'thinking', text: `Planning how to ${goal}.` };
      yield { kind: 'plan', goal, steps: [`Gather what is needed to ${goal}`, `Do it: ${goal}`, `Check the result and report`] };
      yield usage(messages, goal);
      return;
    }
    const slow = /^\/slow(?:\s+(\d+))?/.exec(content);
    if (slow) {
      const n = Math.min(MAX_SLOW_CHUNKS, Math.max(1, Number(slow[1] ?? 10)));
      let sent = '';
      for (let i = 1; i <= n; i++) {
        if (i > 1) await sleep(this.options.slowChunkMs ?? 100, signal);
        const chunk = `chunk ${i}/${n} `;
        sent += chunk;
        yield { kind: 'text', text: chunk };
      }
      yield usage(messages, sent);
      return;
    }
    if (/^\/fail\b/.test(content)) throw new ModelProviderError('MODEL_FAILED', 'the demo model was asked to fail (/fail)');
    yield { kind: 'thinking', text: `Echoing ${content.length} characters with ${request.model}.` };
    yield* this.reply(`Echo: ${content}`, messages, signal);
  }

  /** Streams `text` in at least three chunks (of at most six characters), then usage. */
  private async *reply(text: string, messages: ChatMessage[], signal: AbortSignal): AsyncGenerator<ModelStreamPart> {
    const size = Math.max(1, Math.min(6, Math.ceil(text.length / 3)));
    for (let i = 0; i < text.length; i += size) {
      await sleep(this.options.chunkDelayMs, signal);
      yield { kind: 'text', text: text.slice(i, i + size) };
    }
    yield usage(messages, text);
  }
}

function lastUserContent(messages: ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m.role === 'user') return m.content.trim();
  }
  return '';
}

function toolNameOf(messages: ChatMessage[], callId: string): string {
  for (const m of messages) {
    if (m.role !== 'assistant') continue;
    const call = m.toolCalls?.find((c) => c.id === callId);
    if (call) return call.name;
  }
  return 'unknown';
}

/** Word counts stand in for a tokenizer; the demo model is free. */
function usage(messages: ChatMessage[], completion: string): ModelStreamPart {
  const promptTokens = messages.reduce((sum, m) => sum + words(m.content), 0);
  return { kind: 'usage', promptTokens, completionTokens: words(completion), costUsd: 0 };
}

function words(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}
