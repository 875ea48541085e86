import { DEFAULT_RETENTION, StreamHistory, StreamPublisher, streamKeys } from '@app/backplane';
import type { Envelope, StreamName } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, waitFor } from '@app/runtime';
import type { RedisClient } from '@app/runtime';
import { PendingSubscription } from './pending-subscription';
import { RECENT_EVENTS, StreamFeed } from './stream-feed';

/**
 * The feed against real Redis history. Messages are handed to `receive` by hand, as the
 * backplane subscription would — including the ones a reconnect would lose.
 */
let server: AcquiredRedis;
let redis: RedisClient;
let publisher: StreamPublisher;
let history: StreamHistory;
beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  redis = createRedis({ url: server.url, role: 'test' });
  publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
  history = new StreamHistory(redis, DEFAULT_RETENTION);
});
afterAll(async () => {
  await redis.quit();
  await server.release();
});

let counter = 0;
async function setup(prefill = 0) {
  const stream: StreamName = `bot:feed-${++counter}`;
  const published: Envelope[] = [];
  const publish = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const { seq } = await publisher.publish(stream, { type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${published.length + 1}` } });
      published.push(...(await history.range(stream, seq, seq)));
    }
  };
  await publish(prefill);
  const delivered: number[] = [];
  const gaps: string[] = [];
  const feed = new StreamFeed(stream, {
    range: (s, from, to) => history.range(s, from, to),
    head: (s) => history.head(s),
    deliver: (e) => delivered.push(e.seq),
    onGap: (_s, result) => gaps.push(result),
    onError: (_s, error) => {
      throw error;
    },
  });
  await feed.prime();
  return { stream, feed, publish, published, delivered, gaps };
}

describe('StreamFeed', () => {
  it('starts at the head, delivers in order and drops duplicates', async () => {
    const { feed, publish, published, delivered } = await setup(3);
    expect(feed.position.seq).toBe(3);
    await publish(3);
    for (const e of [published[3], published[3], published[2], published[4], published[5]]) feed.receive(e);
    expect(delivered).toEqual([4, 5, 6]);
  });

  it('fills a gap from history before delivering what follows it', async () => {
    const { feed, publish, published, delivered, gaps } = await setup();
    await publish(6);
    feed.receive(published[0]);
    // 2..4 were lost (a reconnect of the subscriber); 5 and 6 arrive.
    feed.receive(published[4]);
    feed.receive(published[5]);
    await waitFor(() => delivered.length === 6);
    expect(delivered).toEqual([1, 2, 3, 4, 5, 6]);
    expect(gaps).toEqual(['repaired']);
  });

  it('catches up to the head on resync, even when no message follows', async () => {
    const { feed, publish, delivered } = await setup(2);
    await publish(4);
    await feed.resync();
    expect(delivered).toEqual([3, 4, 5, 6]);
  });

  it('holds a pending subscription until the feed has delivered up to its position', async () => {
    const { feed, publish, published, delivered } = await setup();
    await publish(5);
    const live: number[][] = [];
    const pending = new PendingSubscription((tail) => live.push(tail.map((e) => e.seq)));
    feed.attach(pending);
    feed.receive(published[0]);
    // The subscriber read a snapshot at 3 while the feed has only delivered 1.
    feed.cover(pending, published[0].epoch, 3);
    expect(live).toEqual([]);
    feed.receive(published[1]);
    feed.receive(published[2]);
    expect(live).toEqual([[]]);
    feed.receive(published[3]);
    expect(delivered).toEqual([1, 2, 3, 4]);
  });

  it('keeps only buffered events after the position when going live', async () => {
    const { feed, publish, published } = await setup();
    await publish(4);
    const live: number[][] = [];
    const pending = new PendingSubscription((tail) => live.push(tail.map((e) => e.seq)));
    feed.attach(pending);
    for (const e of published) feed.receive(e);
    feed.cover(pending, published[0].epoch, 2);
    expect(live).toEqual([[3, 4]]);
  });

  it('does not let a catch-up on a newer epoch go live before the feed has reached it', async () => {
    const { stream, feed, publish, published, delivered } = await setup(2);
    await redis.del(streamKeys(stream).meta);
    await publish(3); // a new history the feed has not heard of (its messages were lost)
    const live: number[][] = [];
    const pending = new PendingSubscription((tail) => live.push(tail.map((e) => e.seq)));
    feed.attach(pending);
    feed.cover(pending, published[2].epoch, 3);
    expect(live).toEqual([]);
    // The feed catches up on the new history by itself; only then the socket goes live,
    // with nothing of 1..3 (its snapshot has them).
    await waitFor(() => live.length === 1);
    expect(live).toEqual([[]]);
    expect(delivered).toEqual([1, 2, 3]);
    expect(feed.position).toEqual({ epoch: published[2].epoch, seq: 3 });
  });

  it('delivers what history still holds when a gap was partly trimmed', async () => {
    const { stream, feed, publish, published, delivered, gaps } = await setup();
    await publish(6);
    feed.receive(published[0]);
    await redis.xtrim(streamKeys(stream).history, 'MINID', '4-0');
    feed.receive(published[5]);
    await waitFor(() => delivered.length === 4);
    expect(delivered).toEqual([1, 4, 5, 6]);
    expect(gaps).toEqual(['lost']);
  });

  it('restarts from 1 on a new epoch', async () => {
    const { stream, feed, publish, published, delivered } = await setup(2);
    await redis.del(streamKeys(stream).meta);
    await publish(2);
    feed.receive(published[2]);
    feed.receive(published[3]);
    expect(published[2].epoch).not.toBe(published[0].epoch);
    expect(delivered).toEqual([1, 2]);
    expect(feed.position).toEqual({ epoch: published[3].epoch, seq: 2 });
  });

  it('ignores a head read from before it entered a newer epoch (a resync racing a Redis restart)', async () => {
    // In memory: epoch e1 holds 1..3; Redis restarts, and the next publish starts e2 at base 3.
    const stream: StreamName = 'bot:feed-stale-head';
    const event = (epoch: string, seq: number) => ({ v: 1, stream, epoch, seq, id: `${epoch}-${seq}`, type: 'thinking', ts: 0, payload: {} }) as Envelope;
    const log = [1, 2, 3].map((seq) => event('e1', seq));
    const heads: Array<(head: { epoch: string; seq: number; base?: number }) => void> = [];
    let answerAtOnce: { epoch: string; seq: number; base?: number } | null = { epoch: 'e1', seq: 3 };
    const delivered: string[] = [];
    const feed = new StreamFeed(stream, {
      range: (_s, from, to) => Promise.resolve(log.filter((e) => e.seq >= from && e.seq <= to)),
      head: () => (answerAtOnce ? Promise.resolve(answerAtOnce) : new Promise((resolve) => heads.push(resolve))),
      deliver: (e) => delivered.push(`${e.epoch}:${e.seq}`),
      onGap: () => undefined,
      onError: (_s, error) => {
        throw error;
      },
    });
    await feed.prime();
    // The subscriber connection comes back: a resync reads the head (still e1 at 3)...
    answerAtOnce = null;
    const resync = feed.resync();
    // ...while e2's first event arrives; the feed reads the head again and enters e2 at its base.
    log.push(event('e2', 4));
    feed.receive(log[3]);
    expect(heads).toHaveLength(2);
    const [resyncHead, enterHead] = heads;
    enterHead({ epoch: 'e2', seq: 4, base: 3 });
    await waitFor(() => delivered.length === 1);
    // Only now the resync's (stale) answer arrives: it must not take the feed back to e1.
    resyncHead({ epoch: 'e1', seq: 3 });
    await resync;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(delivered).toEqual(['e2:4']);
    expect(feed.position).toEqual({ epoch: 'e2', seq: 4 });
  });

  it('answers a resume from the events it holds, exactly, and leaves every other one to history', async () => {
    const { feed, publish, published } = await setup(3);
    await publish(5);
    for (const e of published.slice(3)) feed.receive(e);
    const epoch = feed.position.epoch as string;
    const seqs = (answer: ReturnType<StreamFeed['replayFrom']>) => answer && { seq: answer.seq, events: answer.events.map((e) => e.seq) };

    expect(seqs(feed.replayFrom({ sinceSeq: 5, epoch }))).toEqual({ seq: 8, events: [6, 7, 8] });
    expect(seqs(feed.replayFrom({ sinceSeq: 5, epoch, lastId: published[4].id }))).toEqual({ seq: 8, events: [6, 7, 8] });
    expect(seqs(feed.replayFrom({ sinceSeq: 8, epoch, lastId: published[7].id }))).toEqual({ seq: 8, events: [] });
    // Its events start at 4 (it was primed at 3): 3 can resume without lastId, not with one.
    expect(seqs(feed.replayFrom({ sinceSeq: 3, epoch }))).toEqual({ seq: 8, events: [4, 5, 6, 7, 8] });
    expect(feed.replayFrom({ sinceSeq: 3, epoch, lastId: published[2].id })).toBeNull();
    expect(feed.replayFrom({ sinceSeq: 2, epoch })).toBeNull();
    // A different event at sinceSeq (a diverged history), another epoch, or a position ahead: history decides.
    expect(feed.replayFrom({ sinceSeq: 5, epoch, lastId: published[3].id })).toBeNull();
    expect(feed.replayFrom({ sinceSeq: 5, epoch: 'another-epoch' })).toBeNull();
    expect(feed.replayFrom({ sinceSeq: 9, epoch })).toBeNull();
  });

  it('does not answer from memory while it repairs a gap, and does once it has', async () => {
    const { feed, publish, published, delivered } = await setup(0);
    await publish(4);
    feed.receive(published[0]);
    feed.receive(published[3]);
    const epoch = feed.position.epoch as string;
    expect(feed.replayFrom({ sinceSeq: 1, epoch })).toBeNull();
    await waitFor(() => delivered.length === 4, { message: 'gap repaired' });
    expect(feed.replayFrom({ sinceSeq: 1, epoch })?.events.map((e) => e.seq)).toEqual([2, 3, 4]);
  });

  it('keeps a bounded window of recent events', async () => {
    const { feed, publish, published } = await setup(0);
    await publish(RECENT_EVENTS * 2 + 10);
    for (const e of published) feed.receive(e);
    const epoch = feed.position.epoch as string;
    const last = published.length;
    expect(feed.replayFrom({ sinceSeq: last - RECENT_EVENTS, epoch })?.events).toHaveLength(RECENT_EVENTS);
    expect(feed.replayFrom({ sinceSeq: 0, epoch })).toBeNull();
  });
});
