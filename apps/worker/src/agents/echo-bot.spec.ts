import type { AgentRunJob } from '@app/backplane';
import type { BotEvent } from '@app/protocol';
import { sleep } from '../ops/abortable-sleep';
import { DeltaCoalescer } from '../ops/delta-coalescer';
import { HandedBack } from '../ops/hand-back';
import { EchoBot } from './echo-bot';

const job: AgentRunJob = { runId: 'r1', botId: 'b1', sessionId: 's1', userId: 'u1', content: 'x'.repeat(600), messageId: 'u-m1', source: 'chat' };
const reply = `Echo: ${job.content}`;

/** The echo bot publishing through a coalescer, as the processor runs it; records what it handed over and what was published. */
function coalescedBot(windowMs: number) {
  const published: BotEvent[] = [];
  const remembered: Array<{ role: string; content: string }> = [];
  let handed = '';
  const out = new DeltaCoalescer(
    async (event) => {
      published.push(event);
    },
    { windowMs },
  );
  const bot = new EchoBot(
    {
      publish: (event) => {
        if (event.type === 'message' && event.payload.delta) handed += event.payload.content;
        return out.publish(event);
      },
      remember: async (m) => {
        remembered.push(m);
      },
      sleep,
    },
    2,
  );
  const text = () =>
    published
      .filter((e) => e.type === 'message' && e.payload.delta)
      .map((e) => (e.payload as { content: string }).content)
      .join('');
  return { out, bot, published, remembered, text, handed: () => handed };
}

describe('EchoBot through a DeltaCoalescer', () => {
  it('completes with the whole reply in fewer deltas, then usage and one done', async () => {
    const { bot, published, text } = coalescedBot(20);
    expect(await bot.run(job, new AbortController().signal)).toBe('completed');
    expect(text()).toBe(reply);
    expect(published.filter((e) => e.type === 'message' && e.payload.delta).length).toBeLessThan(Math.ceil(reply.length / 6));
    expect(published.slice(-2).map((e) => e.type)).toEqual(['usage', 'done']);
  });

  it('cancelled mid-reply: every chunk it streamed is published before usage and done, and remembered', async () => {
    const { bot, published, remembered, text, handed } = coalescedBot(20);
    const cancel = new AbortController();
    setTimeout(() => cancel.abort('cancelled'), 30);
    expect(await bot.run(job, cancel.signal)).toBe('cancelled');
    expect(text()).toBe(handed());
    expect(reply.startsWith(text()) && text().length < reply.length).toBe(true);
    expect(published.slice(-2).map((e) => e.type)).toEqual(['usage', 'done']);
    expect(remembered.at(-1)).toMatchObject({ role: 'assistant', content: text() });
  });

  it('handed back mid-reply: flush publishes the gathered text, and no usage or done', async () => {
    const { bot, out, published, text, handed } = coalescedBot(1_000);
    const handBack = new AbortController();
    setTimeout(() => handBack.abort('the worker is shutting down'), 30);
    await expect(bot.run(job, new AbortController().signal, handBack.signal)).rejects.toBeInstanceOf(HandedBack);
    // A 1 s window: what was streamed is still gathered when the bot stops.
    expect(text()).toBe('');
    await out.flush();
    expect(text()).toBe(handed());
    expect(handed().length).toBeGreaterThan(0);
    expect(published.map((e) => e.type)).not.toContain('done');
  });
});
