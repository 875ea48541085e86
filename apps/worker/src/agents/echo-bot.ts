import type { AgentRunJob } from '@app/backplane';
import type { BotEvent, RunStatus } from '@app/protocol';
import { HandedBack } from '../ops/hand-back';

/** What the echo bot needs from the worker: publishing and the session's history. */
export interface EchoBotPorts {
  publish: (event: BotEvent) => Promise<unknown>;
  remember: (message: { messageId: string; role: 'user' | 'assistant'; content: string; runId: string; ts: number }) => Promise<void>;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
}

const CHUNK = 6;

/**
 * The built-in bot that makes the whole path run without a model provider: it answers
 * every message with `Echo: <message>`, streamed in chunks that share one `messageId` (the
 * processor's DeltaCoalescer may merge neighbours into one delta), then reports usage and
 * exactly one `done`. A cancel stops it between chunks and the run
 * ends `cancelled`. When `handBack` aborts (the worker's shutdown deadline) it stops between
 * chunks too, but throws {@link HandedBack} and publishes nothing more: the run is not its to end.
 * Real providers, tools and approvals replace it in a later issue.
 */
export class EchoBot {
  constructor(
    private readonly ports: EchoBotPorts,
    private readonly chunkDelayMs: number,
  ) {}

  async run(job: AgentRunJob, signal: AbortSignal, handBack?: AbortSignal): Promise<RunStatus> {
    const stop = handBack ? AbortSignal.any([signal, handBack]) : signal;
    const base = { sessionId: job.sessionId, runId: job.runId };
    const model = job.model ?? 'echo';
    await this.ports.publish({ type: 'run_started', payload: { ...base, model } });
    if (job.source === 'chat') {
      await this.ports.publish({ type: 'message', payload: { ...base, messageId: job.messageId, role: 'user', content: job.content, delta: false } });
    }
    await this.ports.remember({ messageId: job.messageId, role: 'user', content: job.content, runId: job.runId, ts: Date.now() });
    await this.ports.publish({ type: 'thinking', payload: { ...base, content: `Echoing ${job.content.length} characters with ${model}.` } });

    const replyId = `${job.runId}.reply`;
    const reply = `Echo: ${job.content}`;
    let sent = '';
    let status: RunStatus = 'completed';
    try {
      for (let i = 0; i < reply.length; i += CHUNK) {
        await this.ports.sleep(this.chunkDelayMs, stop);
        const chunk = reply.slice(i, i + CHUNK);
        await this.ports.publish({
          type: 'message',
          payload: { ...base, messageId: replyId, role: 'assistant', content: chunk, delta: true, replyToId: job.messageId },
        });
        sent += chunk;
      }
    } catch (error) {
      if (handBack?.aborted) throw new HandedBack();
      if (!signal.aborted) throw error;
      status = 'cancelled';
    }

    const promptTokens = countTokens(job.content);
    const completionTokens = countTokens(sent);
    await this.ports.publish({
      type: 'usage',
      payload: { ...base, promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, totalCost: 0 },
    });
    if (sent) await this.ports.remember({ messageId: replyId, role: 'assistant', content: sent, runId: job.runId, ts: Date.now() });
    await this.ports.publish({ type: 'done', payload: { ...base, replyToId: job.messageId, status } });
    return status;
  }
}

/** A rough token count (words), standing in for a provider's tokenizer. */
function countTokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}
