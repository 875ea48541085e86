import type { BotEvent, StreamName } from '@app/protocol';
import { acquireRedis, createRedis, type AcquiredRedis } from '@app/runtime';
import type { RedisClient } from '@app/runtime';
import { streamKeys } from './keys';
import { runScript } from './scripts';
import { DEFAULT_RETENTION, type RetentionPolicy } from './retention';
import { StreamHistory } from './stream-history';
import { StreamPublisher } from './stream-publisher';

let server: AcquiredRedis;
let redis: RedisClient;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
});
afterAll(async () => {
  await redis.quit();
  await server.release();
});

let counter = 0;
// Trimmed on every publish, so what history holds follows from the count alone.
const retention: RetentionPolicy = { ...DEFAULT_RETENTION, maxEvents: 20, checkpointEvery: 5, maxReplay: 8, trimEvery: 1 };
const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });

async function streamWith(events: number): Promise<{ stream: StreamName; ids: string[]; epoch: string }> {
  const stream: StreamName = `bot:hist-${++counter}`;
  const publisher = new StreamPublisher(redis, retention);
  const ids: string[] = [];
  let epoch = '';
  for (let i = 1; i <= events; i++) {
    const published = await publisher.publish(stream, thinking(i));
    ids.push(published.id);
    epoch = published.epoch;
  }
  await publisher.drain();
  return { stream, ids, epoch };
}

describe('StreamHistory.catchUp', () => {
  const history = () => new StreamHistory(redis, retention);

  it('replays every event after sinceSeq when epoch and lastId match', async () => {
    const { stream, ids, epoch } = await streamWith(6);
    const result = await history().catchUp(stream, { sinceSeq: 2, epoch, lastId: ids[1] });
    expect(result.mode).toBe('replay');
    if (result.mode !== 'replay') return;
    expect(result.seq).toBe(6);
    expect(result.events.map((e) => e.seq)).toEqual([3, 4, 5, 6]);
    expect(result.events.map((e) => e.id)).toEqual(ids.slice(2));
  });

  it('replays nothing for a client already at the head', async () => {
    const { stream, ids, epoch } = await streamWith(3);
    expect(await history().catchUp(stream, { sinceSeq: 3, epoch, lastId: ids[2] })).toEqual({ mode: 'replay', epoch, seq: 3, events: [] });
  });

  it.each([
    ['epoch', (h: { epoch: string; ids: string[] }) => ({ sinceSeq: 2, epoch: 'other-epoch', lastId: h.ids[1] })],
    ['diverged', (h: { epoch: string; ids: string[] }) => ({ sinceSeq: 2, epoch: h.epoch, lastId: 'not-the-id-at-2' })],
    ['diverged', (h: { epoch: string }) => ({ sinceSeq: 99, epoch: h.epoch })],
  ])('answers with a snapshot (%s) when history cannot be trusted', async (reason, resume) => {
    const made = await streamWith(4);
    const result = await history().catchUp(made.stream, resume(made));
    expect(result).toMatchObject({ mode: 'snapshot', reason, epoch: made.epoch, seq: 4 });
  });

  it('answers with a snapshot when the events after sinceSeq were trimmed or are too many', async () => {
    const { stream, ids, epoch } = await streamWith(40);
    expect(await history().catchUp(stream, { sinceSeq: 1, epoch, lastId: ids[0] })).toMatchObject({ mode: 'snapshot', reason: 'trimmed' });
    expect(await history().catchUp(stream, { sinceSeq: 1, epoch })).toMatchObject({ mode: 'snapshot', reason: 'too_far' });
    expect(await history().catchUp(stream, { sinceSeq: 35, epoch, lastId: ids[34] })).toMatchObject({ mode: 'replay', seq: 40 });
  });

  it('gives a stream with no history an epoch at seq 0, which its first publish keeps', async () => {
    const stream: StreamName = `dag:empty-${++counter}`;
    const first = await history().catchUp(stream);
    expect(first).toMatchObject({ mode: 'snapshot', seq: 0, state: { status: 'pending', nodes: [] } });
    const published = await new StreamPublisher(redis, retention).publish(stream, { type: 'execution_state', payload: { status: 'running' } });
    expect(published).toMatchObject({ seq: 1, epoch: first.epoch });
  });

  it('folds snapshots from the checkpoint, and compaction moves the checkpoint forward', async () => {
    const { stream } = await streamWith(12);
    const checkpointSeq = Number(await redis.hget(streamKeys(stream).meta, 'checkpointSeq'));
    expect(checkpointSeq).toBeGreaterThanOrEqual(5);
    const snapshot = await history().catchUp(stream);
    expect(snapshot).toMatchObject({ mode: 'snapshot', seq: 12, tailLength: 12 - checkpointSeq });
    expect(await history().compact(stream)).toBe(checkpointSeq < 12);
    expect(Number(await redis.hget(streamKeys(stream).meta, 'checkpointSeq'))).toBe(12);
    expect(await history().catchUp(stream)).toMatchObject({ mode: 'snapshot', seq: 12, tailLength: 0 });
  });

  it('refuses to store a checkpoint past the head (folded from events a failover lost) or of another epoch', async () => {
    const { stream, epoch } = await streamWith(3);
    const keys = streamKeys(stream);
    const write = (e: string, seq: number) =>
      runScript(redis, 'rtWriteCheckpointV1', [keys.meta, keys.checkpoint, keys.compactLock], [e, seq, JSON.stringify({ seq, epoch: e, state: {} })]);
    expect(await write(epoch, 5)).toBe(0);
    expect(await write('another-epoch', 3)).toBe(0);
    expect(await write(epoch, 3)).toBe(1);
    expect(await write(epoch, 3)).toBe(0);
  });

  it('reports the head and ranges of events', async () => {
    const { stream, epoch } = await streamWith(5);
    expect(await history().head(stream)).toEqual({ epoch, seq: 5, base: 0 });
    expect((await history().range(stream, 2, 4)).map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(await history().head('bot:never-published')).toBeNull();
  });

  it('pages through history with the head it was read with', async () => {
    const { stream, epoch } = await streamWith(40);
    const page = await history().page(stream, 34, 4);
    expect(page.head).toEqual({ epoch, seq: 40, base: 0 });
    expect(page.events.map((e) => e.seq)).toEqual([35, 36, 37, 38]);
    expect((await history().page(stream, 38, 4)).events.map((e) => e.seq)).toEqual([39, 40]);
    expect((await history().page(stream, 40, 4)).events).toEqual([]);
    // Trimmed: the first event held is not the one after afterSeq.
    const [first] = (await history().page(stream, 0, 2)).events;
    expect(first.seq).toBeGreaterThan(1);
    expect(await history().page('bot:never-published', 0, 4)).toEqual({ head: null, events: [] });
  });
});
