import { foldEvents, initialState, type BotEvent, type Envelope, type StreamName } from '@app/protocol';
import { acquireRedis, createRedis, waitFor, type AcquiredRedis } from '@app/runtime';
import type { RedisClient } from '@app/runtime';
import { producerKey, streamChannel, streamKeys } from './keys';
import { Producer, ProducerFencedError, producerIds, singleEvent } from './producers';
import { DEFAULT_RETENTION, type RetentionPolicy } from './retention';
import { StreamHistory } from './stream-history';
import { type PublishedEvent, StreamPublisher } from './stream-publisher';

let server: AcquiredRedis;
const connections: RedisClient[] = [];
const connect = (role = 'test') => {
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

let streamCounter = 0;
const newStream = (): StreamName => `bot:pub-${++streamCounter}`;
const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });

describe('StreamPublisher', () => {
  it('gives gapless, strictly ordered seqs to 4 concurrent publishers, on the channel and in history', async () => {
    const stream = newStream();
    const listener = connect('listener');
    const received: Envelope[] = [];
    listener.on('smessage', (_channel: string, message: string) => received.push(JSON.parse(message) as Envelope));
    await listener.ssubscribe(streamChannel(stream));

    const publishers = Array.from({ length: 4 }, (_, i) => new StreamPublisher(connect(`publisher-${i}`), DEFAULT_RETENTION));
    const perPublisher = 150;
    const results = await Promise.all(
      publishers.map((publisher, p) => Promise.all(Array.from({ length: perPublisher }, (_, i) => publisher.publish(stream, thinking(p * 1000 + i))))),
    );
    const total = publishers.length * perPublisher;
    const assigned = results
      .flat()
      .map((r) => r.seq)
      .sort((a, b) => a - b);
    expect(assigned).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    await waitFor(() => received.length === total, { message: `${total} channel messages` });
    expect(received.map((e) => e.seq)).toEqual(assigned);
    expect(new Set(received.map((e) => e.id)).size).toBe(total);
    expect(new Set(received.map((e) => e.epoch)).size).toBe(1);

    const history = await new StreamHistory(connect(), DEFAULT_RETENTION).range(stream, 1, total);
    expect(history).toEqual(received);
  });

  it('publishes the payload JSON untouched, empty arrays and objects included', async () => {
    const stream = newStream();
    const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
    const payload = { sessionId: 's', runId: 'r', toolCallId: 't', tool: 'x', args: { list: [], empty: {}, text: 'a"b\\c/é' } };
    const published = await publisher.publish(stream, { type: 'tool_start', payload });
    const [event] = await new StreamHistory(connect(), DEFAULT_RETENTION).range(stream, 1, 1);
    expect(event).toEqual({ v: 1, stream, seq: 1, epoch: published.epoch, id: published.id, type: 'tool_start', ts: published.ts, payload });
    expect(Math.abs(published.ts - Date.now())).toBeLessThan(60_000);
  });

  it('returns the first answer for a repeated idempotency key and publishes once', async () => {
    const stream = newStream();
    const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
    const first = await publisher.publish(stream, thinking(1), { idempotencyKey: 'k1' });
    const again = await publisher.publish(stream, thinking(2), { idempotencyKey: 'k1' });
    const other = await publisher.publish(stream, thinking(3), { idempotencyKey: 'k2' });
    expect(again).toEqual({ ...first, duplicate: true });
    expect(first.duplicate).toBe(false);
    expect(other.seq).toBe(2);
  });

  it('sends the publishes of one event-loop turn, and those queued while a call is in flight, as one script call each', async () => {
    const stream = newStream();
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    const scriptCalls = async () =>
      [...(await redis.info('commandstats')).matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    const before = await scriptCalls();
    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => publisher.publish(stream, thinking(i))));
    expect(first.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(await scriptCalls()).toBe(before + 1);

    // One call in flight (sent at the end of the event-loop turn); the 30 issued meanwhile go
    // together when it returns.
    const lone = publisher.publish(stream, thinking(50));
    await new Promise((resolve) => setImmediate(resolve));
    const queued = Array.from({ length: 30 }, (_, i) => publisher.publish(stream, thinking(51 + i)));
    const answers = await Promise.all([lone, ...queued]);
    expect(answers.map((e) => e.seq)).toEqual(Array.from({ length: 31 }, (_, i) => 51 + i));
    expect(new Set(answers.map((e) => e.id)).size).toBe(31);
    expect(await scriptCalls()).toBe(before + 3);
    const stored = await new StreamHistory(redis, DEFAULT_RETENTION).range(stream, 51, 81);
    expect(stored.map((e) => [e.seq, e.id])).toEqual(answers.map((e) => [e.seq, e.id]));
  });

  it('answers each event of a batch on its own: idempotency keys, repeated ones included, next to plain events', async () => {
    const stream = newStream();
    const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
    const earlier = await publisher.publish(stream, thinking(0), { idempotencyKey: 'done' });
    const batch = await Promise.all([
      publisher.publish(stream, thinking(1)),
      publisher.publish(stream, thinking(2), { idempotencyKey: 'a' }),
      publisher.publish(stream, thinking(3), { idempotencyKey: 'done' }),
      publisher.publish(stream, thinking(4), { idempotencyKey: 'a' }),
      publisher.publish(stream, thinking(5)),
    ]);
    expect(batch.map((e) => [e.seq, e.duplicate])).toEqual([
      [2, false],
      [3, false],
      [1, true],
      [3, true],
      [4, false],
    ]);
    expect(batch[2]).toEqual({ ...earlier, duplicate: true });
    expect(batch[3]).toEqual({ ...batch[1], duplicate: true });
    expect((await new StreamHistory(connect(), DEFAULT_RETENTION).range(stream, 1, 10)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
  });

  describe('producers', () => {
    const payloadsIn = async (stream: StreamName) => (await new StreamHistory(connect(), DEFAULT_RETENTION).range(stream, 1, 100)).map((e) => e.payload);

    it('publishes each stamp once: a resend of a whole call (another connection, as after a reconnect) is all duplicates', async () => {
      const stream = newStream();
      const first = new Producer(producerIds.run('r1'), 1);
      const stamps = [first.next(), first.next(), first.next()];
      const a = new StreamPublisher(connect(), DEFAULT_RETENTION);
      const published = await Promise.all(stamps.map((producer, i) => a.publish(stream, thinking(i), { producer })));
      expect(published.map((e) => [e.seq, e.duplicate])).toEqual([
        [1, false],
        [2, false],
        [3, false],
      ]);
      const b = new StreamPublisher(connect(), DEFAULT_RETENTION);
      const resent = await Promise.all(stamps.map((producer, i) => b.publish(stream, thinking(i), { producer })));
      expect(resent.every((e) => e.duplicate)).toBe(true);
      // A duplicate is answered with the producer's newest answer.
      expect(resent.map((e) => e.seq)).toEqual([3, 3, 3]);
      expect(await payloadsIn(stream)).toEqual([0, 1, 2].map((i) => thinking(i).payload));
      // The producer goes on where it was.
      expect(await a.publish(stream, thinking(3), { producer: first.next() })).toMatchObject({ seq: 4, duplicate: false });
    });

    it('fences an older epoch off once a newer one published, and lets the newer one go on', async () => {
      const stream = newStream();
      const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
      const zombie = new Producer(producerIds.run('r2'), 1);
      const successor = new Producer(producerIds.run('r2'), 2);
      await publisher.publish(stream, thinking(1), { producer: zombie.next() });
      await publisher.publish(stream, thinking(2), { producer: successor.next() });
      const refused = publisher.publish(stream, thinking(3), { producer: zombie.next() });
      await expect(refused).rejects.toBeInstanceOf(ProducerFencedError);
      await expect(refused).rejects.toMatchObject({ epoch: 1, newerEpoch: 2 });
      // In one call: the fenced event is refused, the events beside it go out.
      const [plain, fenced, next] = await Promise.allSettled([
        publisher.publish(stream, thinking(4)),
        publisher.publish(stream, thinking(5), { producer: zombie.next() }),
        publisher.publish(stream, thinking(6), { producer: successor.next() }),
      ]);
      expect([plain.status, fenced.status, next.status]).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await payloadsIn(stream)).toEqual([1, 2, 4, 6].map((i) => thinking(i).payload));
    });

    it('a claimed epoch fences the older ones before it publishes anything; an older claim is refused', async () => {
      const stream = newStream();
      const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
      const id = producerIds.run('r4');
      await publisher.fence(stream, id, 3);
      await expect(publisher.publish(stream, thinking(1), { producer: new Producer(id, 2).next() })).rejects.toBeInstanceOf(ProducerFencedError);
      await expect(publisher.fence(stream, id, 2)).rejects.toMatchObject({ epoch: 2, newerEpoch: 3 });
      await publisher.fence(stream, id, 3);
      expect(await publisher.publish(stream, thinking(2), { producer: new Producer(id, 3).next() })).toMatchObject({ seq: 1, duplicate: false });
    });

    it('answers a stamp repeated inside one call with the answer of its first', async () => {
      const stream = newStream();
      const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
      const stamp = singleEvent(producerIds.once('x'));
      const [one, two] = await Promise.all([
        publisher.publish(stream, thinking(1), { producer: stamp }),
        publisher.publish(stream, thinking(2), { producer: stamp }),
      ]);
      expect(one.duplicate).toBe(false);
      expect(two).toEqual({ ...one, duplicate: true });
    });

    it('refuses a malformed stamp or one given with an idempotency key; reads a foreign value or key type as no stamp', async () => {
      const stream = newStream();
      const redis = connect();
      const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
      await expect(publisher.publish(stream, thinking(1), { producer: { id: producerIds.run('r5'), epoch: 1, seq: 0 } })).rejects.toThrow('seq an integer ≥ 1');
      await expect(publisher.publish(stream, thinking(1), { producer: singleEvent(producerIds.once('a')), idempotencyKey: 'a' })).rejects.toThrow('not both');
      await redis.set(producerKey(stream, producerIds.run('r6')), 'not a stamp');
      await redis.hset(producerKey(stream, producerIds.run('r7')), 'a', 'b');
      const [six, seven] = await Promise.all([
        publisher.publish(stream, thinking(2), { producer: new Producer(producerIds.run('r6'), 1).next() }),
        publisher.publish(stream, thinking(3), { producer: new Producer(producerIds.run('r7'), 1).next() }),
      ]);
      expect([six.duplicate, seven.duplicate, six.seq, seven.seq]).toEqual([false, false, 1, 2]);
      // The foreign string became a stamp; the key of another type was overwritten at the end.
      expect(await publisher.publish(stream, thinking(2), { producer: { id: producerIds.run('r6'), epoch: 1, seq: 1 } })).toMatchObject({ duplicate: true });
    });

    it('keeps namespaces apart: an HTTP key never collides with the system key of the same name', async () => {
      const stream = newStream();
      const publisher = new StreamPublisher(connect(), DEFAULT_RETENTION);
      const internal = await publisher.publish(stream, thinking(1), { idempotencyKey: 'run-done.r3' });
      const http = await publisher.publish(stream, thinking(2), { producer: singleEvent(producerIds.http('run-done.r3')) });
      expect([internal.duplicate, http.duplicate, http.seq]).toEqual([false, false, 2]);
    });
  });

  it('rejects every publish of a batch whose call fails, and goes on with the next', async () => {
    const stream = newStream();
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    await publisher.publish(stream, thinking(0));
    await redis.del(streamKeys(stream).history);
    await redis.set(streamKeys(stream).history, 'not a stream');
    const failed = await Promise.allSettled([publisher.publish(stream, thinking(1)), publisher.publish(stream, thinking(2))]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await redis.del(streamKeys(stream).history);
    const next = await publisher.publish(stream, thinking(3));
    // The failed call had claimed 2 and 3: they are never reused.
    expect(next.seq).toBe(4);
  });

  it('starts a new epoch, from seq 1, when the stream lost its history', async () => {
    const stream = newStream();
    const redis = connect();
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    const before = await publisher.publish(stream, thinking(1));
    await publisher.publish(stream, thinking(2));
    await redis.del(streamKeys(stream).meta);
    const after = await publisher.publish(stream, thinking(3));
    expect(after.seq).toBe(1);
    expect(after.epoch).not.toBe(before.epoch);
    expect(await redis.xlen(streamKeys(stream).history)).toBe(1);
  });

  it('trims history by count but keeps a snapshot equal to the fold of every event', async () => {
    const stream = newStream();
    const retention: RetentionPolicy = { ...DEFAULT_RETENTION, maxEvents: 10, checkpointEvery: 7 };
    const publisher = new StreamPublisher(connect(), retention);
    const history = new StreamHistory(connect(), retention);
    const total = 400;
    const drafts: BotEvent[] = [
      { type: 'run_started', payload: { sessionId: 's', runId: 'r', model: 'm' } },
      ...Array.from(
        { length: total - 1 },
        (_, i): BotEvent => ({
          type: 'message',
          payload: { sessionId: 's', runId: 'r', messageId: 'm', role: 'assistant', content: `${i},`, delta: true },
        }),
      ),
    ];
    const published: PublishedEvent[] = [];
    for (const draft of drafts) published.push(await publisher.publish(stream, draft));
    await publisher.drain();

    // Count trims drop whole stream nodes only (at most stream-node-max-entries = 100 events).
    const kept = await history.range(stream, 1, total);
    expect(kept.length).toBeLessThanOrEqual(retention.maxEvents + retention.checkpointEvery + 100);
    expect(kept[0].seq).toBeGreaterThan(1);
    expect(kept.at(-1)?.seq).toBe(total);

    const snapshot = await history.catchUp(stream);
    const expected = foldEvents(
      'bot',
      initialState('bot'),
      drafts.map((d, i) => ({ ...d, ts: published[i].ts })),
    );
    expect(snapshot).toMatchObject({ mode: 'snapshot', seq: total, state: expected });
  });

  it('trims events older than the age limit, never past the newest checkpoint', async () => {
    const stream = newStream();
    const redis = connect();
    const retention: RetentionPolicy = { ...DEFAULT_RETENTION, maxAgeMs: 200, checkpointEvery: 3, trimEvery: 1 };
    const publisher = new StreamPublisher(redis, retention);
    for (let i = 0; i < 6; i++) await publisher.publish(stream, thinking(i));
    await publisher.drain();
    const checkpointSeq = Number(await redis.hget(streamKeys(stream).meta, 'checkpointSeq'));
    expect(checkpointSeq).toBeGreaterThanOrEqual(3);

    // Let the first six age out (Redis' clock is the one that counts), then publish one more.
    const sixth = (await new StreamHistory(redis, retention).range(stream, 6, 6))[0];
    await waitFor(async () => {
      const [seconds, micros] = await redis.time();
      // Whole milliseconds, as the script reads the clock: strictly older than the limit.
      return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) > sixth.ts + retention.maxAgeMs;
    });
    await publisher.publish(stream, thinking(7));
    await publisher.drain();
    const remaining = (await new StreamHistory(redis, retention).range(stream, 1, 100)).map((e) => e.seq);
    const newestCheckpoint = Number(await redis.hget(streamKeys(stream).meta, 'checkpointSeq'));
    expect(remaining[0]).toBe(Math.min(7, checkpointSeq + 1));
    expect(remaining.at(-1)).toBe(7);
    expect(newestCheckpoint).toBeGreaterThanOrEqual(checkpointSeq);
    // What the next trims skip the read by: a lower bound of every entry left.
    const oldestKept = (await new StreamHistory(redis, retention).range(stream, remaining[0], remaining[0]))[0];
    const recorded = Number(await redis.hget(streamKeys(stream).meta, 'oldestTs'));
    expect(recorded).toBeGreaterThan(0);
    expect(recorded).toBeLessThanOrEqual(oldestKept.ts);
  });

  it("reads a stream's oldest entry for the age limit only once even the oldest time it recorded is past it", async () => {
    const stream = newStream();
    const redis = connect();
    const retention: RetentionPolicy = { ...DEFAULT_RETENTION, maxAgeMs: 60 * 60 * 1000, trimEvery: 1 };
    const publisher = new StreamPublisher(redis, retention);
    await redis.config('RESETSTAT');
    for (let i = 0; i < 20; i++) await publisher.publish(stream, thinking(i));
    await publisher.drain();
    // Twenty trims: the first reads the oldest entry and records its time, the others need not.
    const stats = await redis.info('commandstats');
    expect(/cmdstat_xrange:calls=(\d+)/.exec(stats)?.[1]).toBe('1');
    const first = (await new StreamHistory(redis, retention).range(stream, 1, 1))[0];
    expect(await redis.hget(streamKeys(stream).meta, 'oldestTs')).toBe(String(first.ts));

    // A recorded time past the limit (as an hour later) makes the next trim read again, trim
    // nothing that is young, and record the oldest entry's real time.
    await redis.hset(streamKeys(stream).meta, 'oldestTs', String(first.ts - retention.maxAgeMs - 1));
    await redis.config('RESETSTAT');
    await publisher.publish(stream, thinking(20));
    await publisher.drain();
    expect(/cmdstat_xrange:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1]).toBe('1');
    expect((await new StreamHistory(redis, retention).range(stream, 1, 100)).map((e) => e.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(await redis.hget(streamKeys(stream).meta, 'oldestTs')).toBe(String(first.ts));
  });
});

describe('stream expiry', () => {
  it('gives every key of a published stream the idle TTL, also when a subscribe created it first', async () => {
    const stream: StreamName = `bot:ttl-${++streamCounter}`;
    const redis = connect();
    const retention: RetentionPolicy = { ...DEFAULT_RETENTION, idleTtlSeconds: 5000 };
    await new StreamHistory(redis, retention).catchUp(stream);
    const provisional = await redis.ttl(streamKeys(stream).meta);
    expect(provisional).toBeGreaterThan(0);
    expect(provisional).toBeLessThanOrEqual(3600);
    await new StreamPublisher(redis, retention).publish(stream, thinking(1));
    for (const key of [streamKeys(stream).meta, streamKeys(stream).history]) {
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(4900);
      expect(ttl).toBeLessThanOrEqual(5000);
    }
  });

  it('keeps a stream forever when the idle TTL is 0', async () => {
    const stream: StreamName = `bot:ttl-${++streamCounter}`;
    const redis = connect();
    const retention: RetentionPolicy = { ...DEFAULT_RETENTION, idleTtlSeconds: 0 };
    await new StreamHistory(redis, retention).catchUp(stream);
    await new StreamPublisher(redis, retention).publish(stream, thinking(1));
    expect(await redis.ttl(streamKeys(stream).meta)).toBe(-1);
    expect(await redis.ttl(streamKeys(stream).history)).toBe(-1);
  });
});
