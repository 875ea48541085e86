import fc from 'fast-check';
import type { BotEvent, BotEventPayloads } from '@app/protocol';
import { DeltaCoalescer } from './delta-coalescer';

const ids = { sessionId: 's1', runId: 'r1' };
type MessageOverrides = Partial<BotEventPayloads['message']>;
const delta = (content: string, messageId = 'm1', more: MessageOverrides = {}): BotEvent => ({
  type: 'message',
  payload: { ...ids, messageId, role: 'assistant', content, delta: true, ...more },
});
const whole = (content: string, messageId = 'm1'): BotEvent => ({ type: 'message', payload: { ...ids, messageId, role: 'assistant', content, delta: false } });
const toolStart = (toolCallId: string): BotEvent => ({ type: 'tool_start', payload: { ...ids, toolCallId, tool: 'clock', args: {} } });
const done: BotEvent = { type: 'done', payload: { ...ids, status: 'completed' } };

/**
 * A fake publish function: answers after `latencyMs` of (fake) time, fails the calls listed
 * in `failing` (by index), and records what it published and when each publish started.
 */
function recorder(latencyMs = 0) {
  const published: Array<{ event: BotEvent; startedAt: number }> = [];
  const failing = new Map<number, Error>();
  const state = { calls: 0, inFlight: 0, maxInFlight: 0 };
  const send = async (event: BotEvent): Promise<void> => {
    const call = state.calls++;
    const startedAt = Date.now();
    state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
    try {
      if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
      const failure = failing.get(call);
      if (failure) throw failure;
      published.push({ event, startedAt });
    } finally {
      state.inFlight--;
    }
  };
  return { send, published, failing, state, events: () => published.map((p) => p.event) };
}

function isDelta(event: BotEvent): event is BotEvent & { type: 'message'; payload: { delta: true } } {
  return event.type === 'message' && event.payload.delta;
}

/** Consecutive deltas of one message joined: what a reader of the stream gets, however the chunks were cut. */
function readerView(events: BotEvent[]): BotEvent[] {
  const out: BotEvent[] = [];
  for (const event of events) {
    const last = out.at(-1);
    if (last && isDelta(last) && isDelta(event) && last.payload.messageId === event.payload.messageId) {
      out[out.length - 1] = { type: 'message', payload: { ...last.payload, content: last.payload.content + event.payload.content } };
    } else {
      out.push(event);
    }
  }
  return out;
}

/** Hands `steps` to a coalescer (each after its gap, none awaited), then flushes it. */
async function drive(steps: Array<{ gapMs: number; event: BotEvent }>, windowMs: number, latencyMs = 0) {
  const fake = recorder(latencyMs);
  const out = new DeltaCoalescer(fake.send, { windowMs });
  const handed: Array<{ event: BotEvent; at: number }> = [];
  const settled: Array<Promise<void>> = [];
  for (const { gapMs, event } of steps) {
    await jest.advanceTimersByTimeAsync(gapMs);
    handed.push({ event, at: Date.now() });
    settled.push(out.publish(event));
  }
  const flushed = out.flush();
  await jest.advanceTimersByTimeAsync(60_000);
  await Promise.all([flushed, ...settled]);
  return { fake, handed };
}

const steps = (maxGapMs: number) =>
  fc.array(
    fc.record({
      gapMs: fc.integer({ min: 0, max: maxGapMs }),
      event: fc.oneof(
        {
          weight: 12,
          arbitrary: fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }), fc.constantFrom('m1', 'm2')).map(([text, m]) => delta(text, m)),
        },
        { weight: 1, arbitrary: fc.nat(99).map((n) => toolStart(`t${n}`)) },
        { weight: 1, arbitrary: fc.string({ maxLength: 4 }).map((text) => whole(text, 'm3')) },
      ),
    }),
    { maxLength: 60 },
  );

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('DeltaCoalescer', () => {
  it('keeps a random run exact: the reader sees the same text and events, each chunk out within the window', async () => {
    await fc.assert(
      fc.asyncProperty(steps(30), fc.integer({ min: 1, max: 50 }), async (input, windowMs) => {
        const { fake, handed } = await drive(input, windowMs);
        expect(readerView(fake.events())).toEqual(readerView(input.map((s) => s.event)));
        // Chunks are never cut, so each published delta covers whole chunks of its message, in order.
        const waiting = new Map<string, Array<{ length: number; at: number }>>();
        for (const { event, at } of handed) {
          if (isDelta(event))
            waiting.set(event.payload.messageId, [...(waiting.get(event.payload.messageId) ?? []), { length: event.payload.content.length, at }]);
        }
        for (const { event, startedAt } of fake.published) {
          if (!isDelta(event)) continue;
          const queue = waiting.get(event.payload.messageId) ?? [];
          let covered = 0;
          while (covered < event.payload.content.length) {
            const chunk = queue.shift() as { length: number; at: number };
            expect(startedAt - chunk.at).toBeLessThanOrEqual(windowMs);
            covered += chunk.length;
          }
          expect(covered).toBe(event.payload.content.length);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('keeps a random run exact with a slow publish function, one publish at a time', async () => {
    await fc.assert(
      fc.asyncProperty(steps(15), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 30 }), async (input, windowMs, latencyMs) => {
        const { fake } = await drive(input, windowMs, latencyMs);
        expect(readerView(fake.events())).toEqual(readerView(input.map((s) => s.event)));
        expect(fake.state.maxInFlight).toBeLessThanOrEqual(1);
      }),
      { numRuns: 60 },
    );
  });

  it('merges a steady stream: 100 tokens 10 ms apart in a 50 ms window make 20 deltas, then done', async () => {
    const fake = recorder();
    const out = new DeltaCoalescer(fake.send, { windowMs: 50 });
    const tokens = Array.from({ length: 100 }, (_, i) => `tok${i} `);
    for (const token of tokens) {
      await out.publish(delta(token));
      await jest.advanceTimersByTimeAsync(10);
    }
    await out.publish(done);
    expect(fake.events().map((e) => e.type)).toEqual([...Array<string>(20).fill('message'), 'done']);
    expect(
      fake
        .events()
        .filter(isDelta)
        .map((e) => e.payload.content)
        .join(''),
    ).toBe(tokens.join(''));
  });

  it('window 0: every chunk is its own event, and publish settles once it is out', async () => {
    const fake = recorder(5);
    const out = new DeltaCoalescer(fake.send, { windowMs: 0 });
    let settled = false;
    const first = out.publish(delta('a')).then(() => (settled = true));
    await jest.advanceTimersByTimeAsync(4);
    expect(settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    await first;
    const rest = Promise.all([out.publish(delta('b')), out.publish(delta('c'))]);
    await jest.advanceTimersByTimeAsync(10);
    await rest;
    expect(fake.events()).toEqual([delta('a'), delta('b'), delta('c')]);
  });

  it('sends the gathered delta before any other event, without waiting for the window', async () => {
    const fake = recorder();
    const out = new DeltaCoalescer(fake.send, { windowMs: 1_000 });
    const start = Date.now();
    await out.publish(delta('Hel'));
    await out.publish(delta('lo'));
    await out.publish(toolStart('t1'));
    await out.publish(delta(' again'));
    await out.publish(done);
    expect(fake.events()).toEqual([delta('Hello'), toolStart('t1'), delta(' again'), done]);
    expect(Date.now()).toBe(start);
  });

  it('ends a delta at a chunk of another message, role or replyToId, and at a whole message', async () => {
    const fake = recorder();
    const out = new DeltaCoalescer(fake.send, { windowMs: 1_000 });
    const input = [
      delta('a'),
      delta('b'),
      delta('c', 'm2'),
      delta('d'),
      delta('e', 'm1', { replyToId: 'u1' }),
      delta('f', 'm1', { role: 'tool' }),
      whole('G'),
      delta('h'),
    ];
    for (const event of input) await out.publish(event);
    await out.flush();
    expect(fake.events()).toEqual([
      delta('ab'),
      delta('c', 'm2'),
      delta('d'),
      delta('e', 'm1', { replyToId: 'u1' }),
      delta('f', 'm1', { role: 'tool' }),
      whole('G'),
      delta('h'),
    ]);
  });

  it('gathers while the publish ahead is in flight: a slow publish gets fewer, larger deltas', async () => {
    const fake = recorder(100);
    const out = new DeltaCoalescer(fake.send, { windowMs: 10 });
    const tokens = Array.from({ length: 60 }, (_, i) => `${i},`);
    for (const token of tokens) {
      await out.publish(delta(token));
      await jest.advanceTimersByTimeAsync(5);
    }
    const flushed = out.flush();
    await jest.advanceTimersByTimeAsync(1_000);
    await flushed;
    expect(fake.state.maxInFlight).toBe(1);
    expect(fake.published.length).toBeLessThanOrEqual(5);
    expect(
      fake
        .events()
        .filter(isDelta)
        .map((e) => e.payload.content)
        .join(''),
    ).toBe(tokens.join(''));
  });

  it('keeps chunks more than a window apart as deltas of their own, however slow the publish ahead (the demo model stays ≥ 3 deltas)', async () => {
    const fake = recorder(400);
    const out = new DeltaCoalescer(fake.send, { windowMs: 50 });
    // Its publish is in flight for 400 ms: every chunk below waits behind it.
    const thinking = out.publish({ type: 'thinking', payload: { ...ids, content: 'hmm' } });
    for (const chunk of ['Echo:', ' hi c', 'achi']) {
      await jest.advanceTimersByTimeAsync(120);
      await out.publish(delta(chunk));
    }
    // A fast burst right behind the last one still merges with it.
    await jest.advanceTimersByTimeAsync(10);
    await out.publish(delta('!'));
    const flushed = out.flush();
    await jest.advanceTimersByTimeAsync(5_000);
    await Promise.all([thinking, flushed]);
    expect(
      fake
        .events()
        .filter(isDelta)
        .map((e) => e.payload.content),
    ).toEqual(['Echo:', ' hi c', 'achi!']);
  });

  it('sends a delta early once it holds maxChars', async () => {
    const fake = recorder();
    const out = new DeltaCoalescer(fake.send, { windowMs: 1_000, maxChars: 10 });
    for (let i = 0; i < 6; i++) await out.publish(delta('abcd'));
    await jest.advanceTimersByTimeAsync(0);
    expect(fake.events()).toEqual([delta('abcdabcdabcd'), delta('abcdabcdabcd')]);
  });

  describe('errors', () => {
    it('throws a failed delta publish from the next call, once, and publishes nothing of the run before', async () => {
      const fake = recorder(10);
      const failure = new Error('redis down');
      fake.failing.set(0, failure);
      const out = new DeltaCoalescer(fake.send, { windowMs: 50 });
      await out.publish(delta('lost'));
      await jest.advanceTimersByTimeAsync(55); // the delta's publish is in flight
      await out.publish(delta(' also lost')); // gathered behind it
      const usage = out.publish({ type: 'usage', payload: { ...ids, promptTokens: 1, completionTokens: 2, totalTokens: 3, totalCost: 0 } });
      const told = expect(usage).rejects.toBe(failure);
      await jest.advanceTimersByTimeAsync(10);
      await told;
      // Told once: the caller ends the run, and that goes out.
      const ending = out.publish(done);
      await jest.advanceTimersByTimeAsync(10);
      await ending;
      expect(fake.events()).toEqual([done]);
    });

    it('throws it from a delta publish or from flush, whichever comes next', async () => {
      for (const next of ['delta', 'flush'] as const) {
        const fake = recorder();
        const failure = new Error(`failed before ${next}`);
        fake.failing.set(0, failure);
        const out = new DeltaCoalescer(fake.send, { windowMs: 20 });
        await out.publish(delta('x'));
        await jest.advanceTimersByTimeAsync(20);
        await expect(next === 'delta' ? out.publish(delta('y')) : out.flush()).rejects.toBe(failure);
        await expect(out.flush()).resolves.toBeUndefined();
      }
    });

    it("gives an event's own failed publish to its caller alone", async () => {
      const fake = recorder();
      const failure = new Error('script error');
      fake.failing.set(1, failure);
      const out = new DeltaCoalescer(fake.send, { windowMs: 20 });
      await out.publish(delta('a'));
      await expect(out.publish(toolStart('t1'))).rejects.toBe(failure);
      await out.publish(done);
      expect(fake.events()).toEqual([delta('a'), done]);
    });

    it('window 0: a failed chunk rejects its own publish', async () => {
      const fake = recorder();
      const failure = new Error('nope');
      fake.failing.set(0, failure);
      const out = new DeltaCoalescer(fake.send, { windowMs: 0 });
      await expect(out.publish(delta('a'))).rejects.toBe(failure);
      await out.publish(delta('b'));
      expect(fake.events()).toEqual([delta('b')]);
    });
  });

  it('refuses a window that is not a whole number of ms ≥ 0', () => {
    const send = () => Promise.resolve();
    expect(() => new DeltaCoalescer(send, { windowMs: -1 })).toThrow(RangeError);
    expect(() => new DeltaCoalescer(send, { windowMs: 1.5 })).toThrow(RangeError);
  });
});
