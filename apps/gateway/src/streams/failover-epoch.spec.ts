import { DEFAULT_RETENTION, StreamHistory, StreamPublisher, streamChannel, streamKeys } from '@app/backplane';
import { StreamStore } from '@app/client';
import { type BotEvent, type Envelope, foldEvents, initialState, type StreamName } from '@app/protocol';
import { RedisServerProcess, waitFor } from '@app/runtime';
import Redis from 'ioredis';
import { StreamFeed } from './stream-feed';

/**
 * A failover that loses acknowledged writes, for real: two private redis-servers, one the
 * replica of the other. The replica is promoted (REPLICAOF NO ONE) before the last writes
 * reach it, and the old master, still taking them, then dies. The pod's view (a StreamFeed
 * on a subscriber connection) and a client's StreamStore saw the lost events; what the new
 * master publishes next must reach them under a new epoch, never as reused seqs of the old.
 */
const servers: RedisServerProcess[] = [];
const connections: Redis[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.dispose()));
});

async function server(options: { persistent?: boolean } = {}): Promise<RedisServerProcess> {
  // A replica's first sync without the default 5 s wait for more replicas.
  const started = await RedisServerProcess.start({ persistent: options.persistent ?? false, args: ['--repl-diskless-sync-delay', '0'] });
  servers.push(started);
  return started;
}

function connect(target: RedisServerProcess): Redis {
  const redis = new Redis(target.url, { maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  connections.push(redis);
  return redis;
}

const replid = async (redis: Redis) => /master_replid:(\w+)/.exec(await redis.info('replication'))?.[1];

/** Makes `replica` replicate `master` and waits until it holds everything written so far. */
async function replicate(master: RedisServerProcess, replica: RedisServerProcess): Promise<{ primary: Redis; secondary: Redis }> {
  const primary = connect(master);
  const secondary = connect(replica);
  await secondary.replicaof('127.0.0.1', master.port);
  await waitFor(async () => /master_link_status:up/.test(await secondary.info('replication')), { message: 'replica in sync' });
  return { primary, secondary };
}

const thinking = (i: number): BotEvent => ({ type: 'thinking', payload: { sessionId: 's', runId: 'r', content: `${i}` } });
const session = (i: number): BotEvent => ({ type: 'session_created', payload: { sessionId: `s${i}`, title: `t${i}` } });

/** A pod's feed whose connections can be pointed at another Redis (what a failover does to a pod). */
function podFeed(stream: StreamName, redis: () => Redis) {
  const delivered: Envelope[] = [];
  const feed = new StreamFeed(stream, {
    range: (s, from, to) => new StreamHistory(redis(), DEFAULT_RETENTION).range(s, from, to),
    head: (s) => new StreamHistory(redis(), DEFAULT_RETENTION).head(s),
    deliver: (e) => delivered.push(e),
    onGap: () => undefined,
    onError: (_s, error) => {
      throw error;
    },
  });
  return { feed, delivered };
}

async function subscribe(target: RedisServerProcess, stream: StreamName, feed: StreamFeed): Promise<Redis> {
  const subscriber = connect(target);
  subscriber.on('smessage', (_channel: string, message: string) => feed.receive(JSON.parse(message) as Envelope));
  await subscriber.ssubscribe(streamChannel(stream));
  return subscriber;
}

describe('epochs across a lossy failover', () => {
  it('publishes on the promoted replica under a new epoch that continues the surviving seqs, and live feeds and clients take it', async () => {
    const stream: StreamName = 'bot:failover';
    const [master, replica] = [await server(), await server()];
    const { primary, secondary } = await replicate(master, replica);
    let current = primary;
    const { feed, delivered } = podFeed(stream, () => current);
    await subscribe(master, stream, feed);
    await feed.prime();
    const resyncs: string[] = [];
    const store = new StreamStore<'bot'>(stream, (_s, reason) => resyncs.push(reason));
    store.beginSubscribe();
    const first = await new StreamHistory(primary, DEFAULT_RETENTION).catchUp(stream);
    store.applySubscribeResult({ stream, epoch: first.epoch, seq: first.seq, replayed: 0, snapshot: first.mode === 'snapshot' ? first.state : undefined });

    const onMaster = new StreamPublisher(primary, DEFAULT_RETENTION);
    const drafts: BotEvent[] = [];
    const published: Array<{ seq: number; epoch: string; ts: number }> = [];
    const publish = async (publisher: StreamPublisher, draft: BotEvent) => {
      const event = await publisher.publish(stream, draft);
      drafts.push(draft);
      published.push(event);
      return event;
    };
    for (let i = 1; i <= 5; i++) await publish(onMaster, session(i));
    expect(await primary.wait(1, 5_000)).toBe(1);
    const oldEpoch = published[0].epoch;

    // The replica is promoted before the next writes reach it; the old master acknowledges
    // three more (to the feed and the client too), then dies: 6..8 of the old epoch are lost.
    await secondary.replicaof('NO', 'ONE');
    expect(await replid(secondary)).not.toBe(await replid(primary));
    for (let i = 6; i <= 8; i++) await publish(onMaster, session(i));
    await waitFor(() => delivered.length === 8, { message: 'the feed saw 1..8' });
    for (const event of delivered) store.receive(event);
    expect({ epoch: store.epoch, seq: store.seq }).toEqual({ epoch: oldEpoch, seq: 8 });
    await master.stop(true);

    // The pod reconnects to the new master, resubscribes and resyncs (as BackplaneSubscriber does).
    current = secondary;
    await subscribe(replica, stream, feed);
    await feed.resync();
    const onReplica = new StreamPublisher(secondary, DEFAULT_RETENTION);
    drafts.splice(5, 3);
    published.splice(5, 3);
    const after = [];
    for (let i = 9; i <= 11; i++) after.push(await publish(onReplica, session(i)));

    // A new epoch, its seqs right after the surviving head (5): 6, 7, 8 again, but not under
    // the epoch that carried the lost 6..8.
    expect(after.map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(new Set(after.map((e) => e.epoch)).size).toBe(1);
    expect(after[0].epoch).not.toBe(oldEpoch);
    expect(await secondary.hmget(streamKeys(stream).meta, 'epoch', 'seq', 'base')).toEqual([after[0].epoch, '8', '5']);

    // The feed delivers them (no silent drop as duplicates of 6..8) and nothing of the old epoch after 8.
    await waitFor(() => delivered.length === 11, { message: 'the feed delivered the new events' });
    expect(delivered.map((e) => [e.epoch === oldEpoch ? 'old' : 'new', e.seq])).toEqual([
      ...[1, 2, 3, 4, 5, 6, 7, 8].map((seq) => ['old', seq]),
      ['new', 6],
      ['new', 7],
      ['new', 8],
    ]);
    expect(feed.position).toEqual({ epoch: after[0].epoch, seq: 8 });

    // The client sees an epoch change, not duplicates, and resubscribes from its position:
    // a snapshot (the new epoch), equal to the fold of what survived and what followed.
    for (const event of delivered.slice(8)) store.receive(event);
    expect(resyncs).toEqual(['epoch']);
    expect(store.duplicatesDropped).toBe(0);
    const catchUp = await new StreamHistory(secondary, DEFAULT_RETENTION).catchUp(stream, { sinceSeq: 8, epoch: oldEpoch, lastId: delivered[7].id });
    expect(catchUp).toMatchObject({ mode: 'snapshot', reason: 'epoch', epoch: after[0].epoch, seq: 8 });
    store.beginSubscribe();
    store.applySubscribeResult({
      stream,
      epoch: catchUp.epoch,
      seq: catchUp.seq,
      replayed: 0,
      snapshot: catchUp.mode === 'snapshot' ? catchUp.state : undefined,
    });
    const expected = foldEvents(
      'bot',
      initialState('bot'),
      drafts.map((draft, i) => ({ ...draft, ts: published[i].ts })),
    );
    expect(store.state).toEqual(expected);
    expect(store.state.sessions.map((s) => s.sessionId)).toEqual(['s1', 's2', 's3', 's4', 's5', 's9', 's10', 's11']);
  });

  it('starts the new epoch at the first catch-up on the new master, which later publishes keep', async () => {
    const stream: StreamName = 'bot:failover-catch-up';
    const [master, replica] = [await server(), await server()];
    const { primary, secondary } = await replicate(master, replica);
    const onMaster = new StreamPublisher(primary, DEFAULT_RETENTION);
    const before = [];
    for (let i = 1; i <= 4; i++) before.push(await onMaster.publish(stream, thinking(i)));
    expect(await primary.wait(1, 5_000)).toBe(1);
    await secondary.replicaof('NO', 'ONE');
    await onMaster.publish(stream, thinking(5)); // lost

    const history = new StreamHistory(secondary, DEFAULT_RETENTION);
    // A client at 5 of the old epoch: its position is gone; a snapshot on the new epoch at 4.
    const catchUp = await history.catchUp(stream, { sinceSeq: 5, epoch: before[0].epoch });
    expect(catchUp).toMatchObject({ mode: 'snapshot', reason: 'epoch', seq: 4 });
    expect(catchUp.epoch).not.toBe(before[0].epoch);
    expect(await history.head(stream)).toEqual({ epoch: catchUp.epoch, seq: 4, base: 4 });
    const next = await new StreamPublisher(secondary, DEFAULT_RETENTION).publish(stream, thinking(6));
    expect(next).toMatchObject({ seq: 5, epoch: catchUp.epoch });
    // A replay on the new epoch works as ever.
    expect(await history.catchUp(stream, { sinceSeq: 4, epoch: catchUp.epoch })).toMatchObject({ mode: 'replay', seq: 5, events: [{ seq: 5, id: next.id }] });
  });

  it('starts a new epoch after a Redis restart, keeping the history (AOF) and the snapshot', async () => {
    const stream: StreamName = 'bot:restart-epoch';
    const redisServer = await server({ persistent: true });
    const redis = connect(redisServer);
    const drafts = [session(1), session(2), session(3)];
    const published = [];
    const publisher = new StreamPublisher(redis, { ...DEFAULT_RETENTION, checkpointEvery: 2 });
    for (const draft of drafts) published.push(await publisher.publish(stream, draft));
    await publisher.drain();
    // A checkpoint of the old epoch: the new epoch's snapshots still fold from it.
    expect(Number(await redis.hget(streamKeys(stream).meta, 'checkpointSeq'))).toBeGreaterThanOrEqual(2);
    const before = await replid(redis);
    await redisServer.restart();
    await waitFor(async () => (await redis.ping().catch(() => null)) === 'PONG', { message: 'Redis back' });
    expect(await replid(redis)).not.toBe(before);

    const next = await new StreamPublisher(redis, DEFAULT_RETENTION).publish(stream, session(4));
    expect(next.seq).toBe(4);
    expect(next.epoch).not.toBe(published[0].epoch);
    const snapshot = await new StreamHistory(redis, DEFAULT_RETENTION).catchUp(stream);
    const all = [...drafts, session(4)];
    const ts = [...published, next].map((e) => e.ts);
    expect(snapshot).toMatchObject({
      mode: 'snapshot',
      epoch: next.epoch,
      seq: 4,
      state: foldEvents(
        'bot',
        initialState('bot'),
        all.map((d, i) => ({ ...d, ts: ts[i] })),
      ),
    });
    // The events before the new epoch keep the epoch they were published under.
    expect((await new StreamHistory(redis, DEFAULT_RETENTION).range(stream, 1, 4)).map((e) => e.epoch)).toEqual([
      published[0].epoch,
      published[0].epoch,
      published[0].epoch,
      next.epoch,
    ]);
  });

  it('keeps the epoch while the master stays the same, and binds a stream written before epochs were bound to a master', async () => {
    const stream: StreamName = 'bot:legacy-meta';
    const redis = connect(await server());
    const publisher = new StreamPublisher(redis, DEFAULT_RETENTION);
    const first = await publisher.publish(stream, thinking(1));
    await redis.hdel(streamKeys(stream).meta, 'replid', 'base');
    const second = await publisher.publish(stream, thinking(2));
    expect(second).toMatchObject({ seq: 2, epoch: first.epoch });
    expect(await redis.hget(streamKeys(stream).meta, 'replid')).toBe(await replid(redis));
    const third = await publisher.publish(stream, thinking(3));
    expect(third).toMatchObject({ seq: 3, epoch: first.epoch });
  });

  it('fails a call on a replica whole with READONLY (a connection reconnects on it), writing nothing', async () => {
    const [master, replica] = [await server(), await server()];
    const { primary, secondary } = await replicate(master, replica);
    const streams: StreamName[] = ['bot:readonly-1', 'bot:readonly-2'];
    const onMaster = new StreamPublisher(primary, DEFAULT_RETENTION);
    await Promise.all(streams.map((s) => onMaster.publish(s, thinking(1))));
    await waitFor(async () => (await secondary.exists(streamKeys(streams[1]).meta)) === 1, { message: 'replicated' });
    // Both streams in one call: the error is the call's, not swallowed per stream.
    const onReplica = new StreamPublisher(secondary, DEFAULT_RETENTION);
    const settled = await Promise.allSettled(streams.map((s) => onReplica.publish(s, thinking(2))));
    for (const result of settled) {
      expect(result.status).toBe('rejected');
      expect(String((result as PromiseRejectedResult).reason)).toMatch(/^ReplyError: READONLY/);
    }
    expect(await primary.hget(streamKeys(streams[0]).meta, 'seq')).toBe('1');
  });
});

describe('StreamFeed on an epoch that continues the seqs', () => {
  const envelope = (epoch: string, seq: number): Envelope => ({
    v: 1,
    stream: 'bot:fake',
    seq,
    epoch,
    id: `${epoch}-${seq}`,
    type: 'thinking',
    ts: seq,
    payload: { sessionId: 's', runId: 'r', content: `${seq}` },
  });

  function fakeFeed(head: { epoch: string; seq: number; base: number }, history: Envelope[] = []) {
    const delivered: string[] = [];
    const feed = new StreamFeed('bot:fake', {
      range: async (_s, from, to) => history.filter((e) => e.seq >= from && e.seq <= to),
      head: async () => head,
      deliver: (e) => delivered.push(`${e.epoch}/${e.seq}`),
      onGap: () => undefined,
      onError: (_s, error) => {
        throw error;
      },
    });
    return { feed, delivered };
  }

  it('positions itself at the base the head names, filling what it missed of the new epoch', async () => {
    const head = { epoch: 'e1', seq: 8, base: 0 };
    const history = [1, 2, 3, 4, 5].map((seq) => envelope('e1', seq)).concat([6, 7].map((seq) => envelope('e2', seq)));
    const { feed, delivered } = fakeFeed(head, history);
    await feed.prime();
    expect(feed.position).toEqual({ epoch: 'e1', seq: 8 });
    Object.assign(head, { epoch: 'e2', seq: 7, base: 5 });
    // e2/6 was lost on the way (the subscriber was reconnecting): e2/7 comes first.
    feed.receive(envelope('e2', 7));
    await waitFor(() => delivered.length === 2);
    expect(delivered).toEqual(['e2/6', 'e2/7']);
  });

  it('drops messages of an epoch the stream has already left', async () => {
    const head = { epoch: 'e1', seq: 3, base: 0 };
    const { feed, delivered } = fakeFeed(head);
    await feed.prime();
    Object.assign(head, { epoch: 'e3', seq: 2, base: 2 });
    feed.receive(envelope('e2', 4));
    await waitFor(() => feed.position.epoch === 'e3');
    feed.receive(envelope('e3', 3));
    await waitFor(() => delivered.length === 1);
    expect(delivered).toEqual(['e3/3']);
  });
});
