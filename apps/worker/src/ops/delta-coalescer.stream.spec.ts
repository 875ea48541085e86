import { DEFAULT_RETENTION, StreamHistory, StreamPublisher, streamChannel } from '@app/backplane';
import { type BotEvent, type BotEventPayloads, botStream, type Envelope, foldEvents, initialState } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient, waitFor } from '@app/runtime';
import { DeltaCoalescer } from './delta-coalescer';

/**
 * The coalescer on the real publish path: runs stream replies token by token through their
 * own coalescers and one StreamPublisher into a private redis-server, concurrently on one bot
 * stream; a subscriber on the stream's channel checks what dashboards would get.
 */
let server: AcquiredRedis;
const connections: RedisClient[] = [];
const connect = (role: string) => {
  const redis = createRedis({ url: server.url, role });
  connections.push(redis);
  return redis;
};

beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
});
afterAll(async () => {
  await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
  await server.release();
});

/** mulberry32: a seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['The', ' quick', ' brown', ' fox', ',', ' héllo', ' 世界', ' 👋🏽', '\n', '"quoted"', ' back\\slash', ' {"json": []}', ' ', '', '.'];

type Message = BotEventPayloads['message'];

describe('DeltaCoalescer on the real publish path', () => {
  it('streams concurrent runs into one bot stream: each reply concatenates exactly, in order, in fewer events', async () => {
    const botId = 'coalesce-1';
    const stream = botStream(botId);
    const listener = connect('listener');
    const received: Envelope[] = [];
    listener.on('smessage', (_channel: string, message: string) => received.push(JSON.parse(message) as Envelope));
    await listener.ssubscribe(streamChannel(stream));

    const publisher = new StreamPublisher(connect('publisher'), DEFAULT_RETENTION);
    const next = random(20261127);
    const texts = new Map<string, string>();
    let tokens = 0;

    const run = async (runId: string) => {
      const out = new DeltaCoalescer((event) => publisher.publish(stream, event), { windowMs: 15 });
      const ids = { sessionId: `s-${runId}`, runId };
      const stream1 = async (messageId: string, count: number) => {
        let text = '';
        for (let i = 0; i < count; i++) {
          const piece = PIECES[Math.floor(next() * PIECES.length)];
          text += piece;
          tokens++;
          await out.publish({ type: 'message', payload: { ...ids, messageId, role: 'assistant', content: piece, delta: true } });
          await new Promise((resolve) => setTimeout(resolve, Math.floor(next() * 5)));
        }
        texts.set(messageId, text);
      };
      await out.publish({ type: 'run_started', payload: { ...ids, model: 'demo' } });
      await stream1(`${runId}.a`, 60);
      await out.publish({ type: 'tool_start', payload: { ...ids, toolCallId: `${runId}.t`, tool: 'clock', args: {} } });
      await out.publish({ type: 'tool_end', payload: { ...ids, toolCallId: `${runId}.t`, result: 'now', success: true, durationMs: 1 } });
      await stream1(`${runId}.b`, 60);
      await out.publish({ type: 'usage', payload: { ...ids, promptTokens: 1, completionTokens: 120, totalTokens: 121, totalCost: 0 } });
      await out.publish({ type: 'done', payload: { ...ids, status: 'completed' } });
    };
    const runIds = ['r1', 'r2', 'r3', 'r4'];
    await Promise.all(runIds.map(run));

    const history = await new StreamHistory(connect('reader'), DEFAULT_RETENTION).range(stream, 1, 10_000);
    await waitFor(() => received.length === history.length, { message: `${history.length} channel messages` });
    expect(received).toEqual(history);
    expect(received.map((e) => e.seq)).toEqual(Array.from({ length: received.length }, (_, i) => i + 1));

    const deltas = received.filter((e) => e.type === 'message');
    expect(deltas.length).toBeLessThan(tokens / 2);
    for (const runId of runIds) {
      const mine = received.filter((e) => (e.payload as { runId?: string }).runId === runId);
      for (const messageId of [`${runId}.a`, `${runId}.b`]) {
        const content = mine
          .filter((e) => e.type === 'message' && (e.payload as Message).messageId === messageId)
          .map((e) => (e.payload as Message).content)
          .join('');
        expect(content).toBe(texts.get(messageId));
      }
      // The run's events in their order, a message's deltas counted once.
      const shape = mine.map((e) => (e.type === 'message' ? `message ${(e.payload as Message).messageId}` : e.type)).filter((t, i, all) => t !== all[i - 1]);
      expect(shape).toEqual(['run_started', `message ${runId}.a`, 'tool_start', 'tool_end', `message ${runId}.b`, 'usage', 'done']);
    }

    // What a dashboard folds before the runs end: every reply whole.
    const state = foldEvents(
      'bot',
      initialState('bot'),
      received.filter((e) => e.type !== 'done'),
    );
    for (const runId of runIds) {
      expect(state.activeRuns[runId].messages.map((m) => m.content)).toEqual([texts.get(`${runId}.a`), texts.get(`${runId}.b`)]);
    }
  });

  it('with window 0, every token is its own event', async () => {
    const stream = botStream('coalesce-0');
    const publisher = new StreamPublisher(connect('publisher-0'), DEFAULT_RETENTION);
    const out = new DeltaCoalescer((event: BotEvent) => publisher.publish(stream, event), { windowMs: 0 });
    const ids = { sessionId: 's', runId: 'r0' };
    for (const piece of PIECES) await out.publish({ type: 'message', payload: { ...ids, messageId: 'm', role: 'assistant', content: piece, delta: true } });
    const history = await new StreamHistory(connect('reader-0'), DEFAULT_RETENTION).range(stream, 1, 100);
    expect(history.map((e) => (e.payload as Message).content)).toEqual(PIECES);
  });
});
