import type { BotEvent, Envelope, StreamName } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient, waitFor } from '@app/runtime';
import { Cluster } from 'ioredis';
import { streamChannel, streamKeys, streamSlot } from './keys';
import { DEFAULT_RETENTION } from './retention';
import { StreamHistory } from './stream-history';
import { StreamPublishError, StreamPublisher } from './stream-publisher';

/**
 * One script call per script target: every stream on one Redis, the streams of one hash
 * slot on a cluster. What must hold whatever a call carries: each stream gapless and in seq
 * order on its channel, and one stream's failure not taking the others down.
 */
const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });

let counter = 0;
const names = (count: number, prefix: string) => Array.from({ length: count }, () => `bot:${prefix}-${++counter}` as StreamName);

async function scriptCalls(redis: RedisClient): Promise<number> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  let calls = 0;
  for (const node of nodes) {
    const info = await node.info('commandstats');
    calls += [...info.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  }
  return calls;
}

/** Every envelope SPUBLISHed on the streams' channels, per stream, in arrival order. */
async function listen(redis: RedisClient, streams: StreamName[]): Promise<Map<StreamName, Envelope[]>> {
  const received = new Map<StreamName, Envelope[]>(streams.map((s) => [s, []]));
  redis.on('smessage', (_channel: string, message: string) => {
    const envelope = JSON.parse(message) as Envelope;
    received.get(envelope.stream)?.push(envelope);
  });
  // A cluster routes each SSUBSCRIBE to its slot's node: one channel per command there.
  for (const stream of streams) await redis.ssubscribe(streamChannel(stream));
  return received;
}

describe('StreamPublisher on one Redis: one call carries many streams', () => {
  let server: AcquiredRedis;
  const connections: RedisClient[] = [];
  const connect = (role = 'test') => {
    const redis = createRedis({ url: server.url, role });
    connections.push(redis);
    return redis;
  };
  beforeAll(async () => {
    server = await acquireRedis({ ownServer: true, persistent: false });
    // Loads the script (a first EVALSHA answers NOSCRIPT, then EVAL): later tests count calls.
    await new StreamPublisher(connect(), DEFAULT_RETENTION).publish('bot:warm-up', thinking(0));
  });
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
    await server.release();
  });

  it('sends the publishes of 40 streams issued in one turn as one call, each stream gapless from 1', async () => {
    const streams = names(40, 'turn');
    const listener = connect('listener');
    const received = await listen(listener, streams);
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    const before = await scriptCalls(redis);
    const answers = await Promise.all(streams.flatMap((stream) => [0, 1, 2].map((i) => publisher.publish(stream, thinking(i)))));
    expect(await scriptCalls(redis)).toBe(before + 1);
    streams.forEach((stream, s) => {
      const mine = answers.slice(3 * s, 3 * s + 3);
      expect(mine.map((e) => [e.stream, e.seq])).toEqual([1, 2, 3].map((seq) => [stream, seq]));
      // Each stream has its own epoch; one clock reading per call.
      expect(new Set(mine.map((e) => e.epoch)).size).toBe(1);
    });
    expect(new Set(answers.map((e) => e.epoch)).size).toBe(streams.length);
    expect(new Set(answers.map((e) => e.ts)).size).toBe(1);
    await waitFor(() => [...received.values()].every((list) => list.length === 3), { message: 'every channel message' });
    for (const stream of streams) expect(received.get(stream)?.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('keeps every stream gapless and in seq order on its channel while 4 publishers race over 30 streams', async () => {
    const streams = names(30, 'race');
    const listener = connect('listener');
    const received = await listen(listener, streams);
    const publishers = Array.from({ length: 4 }, (_, p) => new StreamPublisher(connect(`publisher-${p}`), DEFAULT_RETENTION));
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const results = await Promise.all(
      publishers.map(async (publisher) => {
        const out: Array<{ stream: StreamName; seq: number; id: string }> = [];
        for (let burst = 0; burst < 20; burst++) {
          // Bursts of 1..15 publishes on random streams, some awaited, some left to overlap.
          const sent = Array.from({ length: 1 + random(15) }, () => publisher.publish(streams[random(streams.length)], thinking(burst)));
          const settle = Promise.all(sent).then((events) => out.push(...events));
          if (random(2) === 0) await settle;
          else await new Promise((resolve) => setImmediate(resolve));
          await settle;
        }
        return out;
      }),
    );
    const history = new StreamHistory(connect(), DEFAULT_RETENTION);
    for (const stream of streams) {
      const assigned = results
        .flat()
        .filter((e) => e.stream === stream)
        .sort((a, b) => a.seq - b.seq);
      expect(assigned.map((e) => e.seq)).toEqual(assigned.map((_, i) => i + 1));
      await waitFor(() => received.get(stream)?.length === assigned.length, { message: `channel of ${stream}` });
      expect(received.get(stream)?.map((e) => [e.seq, e.id])).toEqual(assigned.map((e) => [e.seq, e.id]));
      expect(await history.range(stream, 1, assigned.length)).toEqual(received.get(stream));
    }
  });

  it('rejects only the publishes of a stream whose step fails; the other streams of the call are published', async () => {
    const [bad, good] = names(2, 'isolate');
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    await Promise.all([publisher.publish(bad, thinking(0)), publisher.publish(good, thinking(0))]);
    await redis.del(streamKeys(bad).history);
    await redis.set(streamKeys(bad).history, 'not a stream');
    const before = await scriptCalls(redis);
    const settled = await Promise.allSettled([publisher.publish(bad, thinking(1)), publisher.publish(good, thinking(1)), publisher.publish(bad, thinking(2))]);
    expect(await scriptCalls(redis)).toBe(before + 1);
    expect(settled.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    const failure = (settled[0] as PromiseRejectedResult).reason as StreamPublishError;
    expect(failure).toBeInstanceOf(StreamPublishError);
    expect(failure.stream).toBe(bad);
    expect(failure.message).toMatch(/WRONGTYPE/);
    expect((settled[1] as PromiseFulfilledResult<{ seq: number }>).value.seq).toBe(2);
    await redis.del(streamKeys(bad).history);
    // The failed step had claimed 2 and 3: they are never reused.
    expect((await publisher.publish(bad, thinking(3))).seq).toBe(4);
  });

  it('scopes idempotency keys to their stream inside one call', async () => {
    const [a, b] = names(2, 'idem');
    const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
    const answers = await Promise.all([
      publisher.publish(a, thinking(1), { idempotencyKey: 'k' }),
      publisher.publish(b, thinking(1), { idempotencyKey: 'k' }),
      publisher.publish(a, thinking(2), { idempotencyKey: 'k' }),
    ]);
    expect(answers.map((e) => [e.stream, e.seq, e.duplicate])).toEqual([
      [a, 1, false],
      [b, 1, false],
      [a, 1, true],
    ]);
    expect(answers[2]).toEqual({ ...answers[0], duplicate: true });
  });

  /** Watches the script calls on a connection whose publisher has defined the script: the streams (meta keys) of each, and how many overlapped. */
  function watchCalls(redis: RedisClient) {
    const commands = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const original = commands.rtPublishV5;
    const seen = { calls: [] as Array<Set<string>>, most: 0, stop: () => void (commands.rtPublishV5 = original) };
    const open = new Set<Set<string>>();
    commands.rtPublishV5 = async function (this: unknown, ...args: unknown[]) {
      const streams = new Set((args.slice(1, 1 + Number(args[0])) as string[]).filter((k) => k.endsWith(':meta')));
      for (const other of open) for (const key of streams) expect(other.has(key)).toBe(false);
      open.add(streams);
      seen.calls.push(streams);
      seen.most = Math.max(seen.most, open.size);
      try {
        return await original.apply(this, args);
      } finally {
        open.delete(streams);
      }
    };
    return seen;
  }

  it('takes whole streams into a call, so what queued of a stream goes together', async () => {
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    await publisher.publish(names(1, 'whole')[0], thinking(0));
    const seen = watchCalls(redis);
    // 20 streams × 10 events, issued round robin: 200 events, more than one call takes.
    const streams = names(20, 'whole');
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish(streams[i % 20], thinking(i))));
    seen.stop();
    // 128 events of whole streams (the last one cut), the other streams, then the cut one's rest.
    expect(seen.calls.length).toBe(3);
    const split = streams.filter((stream) => seen.calls.filter((call) => call.has(streamKeys(stream).meta)).length > 1);
    expect(split.length).toBeLessThanOrEqual(1);
    for (const stream of streams) expect(answers.filter((e) => e.stream === stream).map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('overlaps calls only for large batches of streams with no call in flight, each stream answered in publish order', async () => {
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    await publisher.publish(names(1, 'overlap')[0], thinking(0));
    const seen = watchCalls(redis);
    // Three groups of 10 streams, 200 events each, queued in one turn, group after group.
    const groups = [names(10, 'group-a'), names(10, 'group-b'), names(10, 'group-c')];
    const sent = groups.flatMap((group) => Array.from({ length: 200 }, (_, i) => ({ stream: group[i % 10], i })));
    const answers = await Promise.all(sent.map(({ stream, i }) => publisher.publish(stream, thinking(i))));
    seen.stop();
    expect(seen.most).toBeGreaterThan(1);
    expect(seen.most).toBeLessThanOrEqual(4);
    expect(seen.calls.length).toBeGreaterThanOrEqual(Math.ceil(600 / 128));
    for (const stream of groups.flat()) {
      expect(answers.filter((e) => e.stream === stream).map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    }
  });

  it('waits lingerMs for the publishes of later turns to join the call', async () => {
    const streams = names(3, 'linger');
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION, undefined, { lingerMs: 50 });
    const before = await scriptCalls(redis);
    const first = publisher.publish(streams[0], thinking(0));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = publisher.publish(streams[1], thinking(0));
    await new Promise((resolve) => setImmediate(resolve));
    const third = publisher.publish(streams[2], thinking(0));
    expect((await Promise.all([first, second, third])).map((e) => e.seq)).toEqual([1, 1, 1]);
    expect(await scriptCalls(redis)).toBe(before + 1);
  });
});

describe('StreamPublisher on a Redis Cluster: one call per hash slot', () => {
  let server: AcquiredRedis;
  let redis: RedisClient;
  let listener: RedisClient;
  beforeAll(async () => {
    server = await acquireRedis({ ownServer: true, persistent: false, topology: 'cluster' });
    redis = createRedis({ url: server.url, role: 'test' });
    listener = createRedis({ url: server.url, role: 'listener', maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await Promise.all([redis, listener].map((c) => c.quit().catch(() => undefined)));
    await server.release();
  });

  it('groups streams by slot, so no call crosses slots and streams of one slot share a call', async () => {
    // Three streams that share a slot, and 20 others spread over the slots (and the masters).
    const bySlot = new Map<number, StreamName[]>();
    let shared: StreamName[] = [];
    for (let i = 0; shared.length < 3; i++) {
      const stream = `bot:slot-${i}` as StreamName;
      const list = [...(bySlot.get(streamSlot(stream)) ?? []), stream];
      bySlot.set(streamSlot(stream), list);
      if (list.length === 3) shared = list;
    }
    const spread = names(20, 'spread');
    const streams = [...shared, ...spread];
    const slots = new Set(streams.map(streamSlot));
    for (const stream of streams) {
      for (const key of [streamKeys(stream).meta, streamKeys(stream).history, streamChannel(stream)]) {
        expect(Number(await redis.call('CLUSTER', 'KEYSLOT', key))).toBe(streamSlot(stream));
      }
    }
    const received = await listen(listener, streams);
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    // One event each first, awaited: it also loads the script on every master (a first
    // EVALSHA answers NOSCRIPT, then EVAL), so the calls counted next are one per call.
    for (const stream of streams) await publisher.publish(stream, thinking(0));
    const before = await scriptCalls(redis);
    const answers = await Promise.all(streams.flatMap((stream) => [publisher.publish(stream, thinking(1)), publisher.publish(stream, thinking(2))]));
    expect(answers.map((e) => e.seq)).toEqual(streams.flatMap(() => [2, 3]));
    expect(await scriptCalls(redis)).toBe(before + slots.size);
    expect(slots.size).toBeLessThan(streams.length);
    await waitFor(() => [...received.values()].every((list) => list.length === 3), { message: 'every channel message' });
    for (const stream of streams) expect(received.get(stream)?.map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});
