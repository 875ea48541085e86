import { DEFAULT_RETENTION, probeChannel, StreamHistory, StreamPublisher, streamChannel } from '@app/backplane';
import type { Envelope, StreamName } from '@app/protocol';
import { acquireRedis, type AcquiredRedis, createRedis, type RedisClient, RedisPair, waitFor } from '@app/runtime';
import type { GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import type { RedisConnections } from '../redis/redis.providers';
import { BackplaneSubscriber, decodeMessage } from './backplane-subscriber';

/**
 * The pod's backplane end against a real Redis: what reaches the fan-out when the channel
 * subscription works, and the watchdog's repair when it silently does not (a sharded
 * subscription a cluster's topology change left behind, here: taken away behind its back).
 */
let server: AcquiredRedis;
let commands: RedisClient;
let pair: RedisPair;
/** The pod's subscriber connection now (the path check may have replaced it). */
const subscriber = () => pair.subscriber;
let backplane: BackplaneSubscriber;
let metrics: GatewayMetrics;
const delivered: Envelope[] = [];

beforeAll(async () => {
  server = await acquireRedis({ ownServer: true, persistent: false });
  commands = createRedis({ url: server.url, role: 'test' });
  // As the gateway makes its connections (RedisConnections): the BackplaneSubscriber resubscribes itself.
  pair = new RedisPair({ url: server.url, owner: 'test', resubscribe: false }, () => undefined);
  metrics = new GatewayMetrics();
  const redis = pair as RedisConnections;
  backplane = new BackplaneSubscriber(redis, new StreamHistory(commands, DEFAULT_RETENTION), metrics, { serverId: 'pod-watchdog' } as GatewayConfig);
  backplane.attach({ deliver: (envelope) => delivered.push(envelope), presence: () => undefined });
  backplane.onModuleInit();
});
afterAll(async () => {
  await backplane.onApplicationShutdown();
  await Promise.all([commands.quit(), pair.close()]);
  await server.release();
});

const seqs = (stream: StreamName) => delivered.filter((e) => e.stream === stream).map((e) => e.seq);
const stalls = async () => (await metrics.feedStalls.get()).values[0]?.value ?? 0;
const repairs = async (action: 'resubscribe' | 'replace') => (await metrics.pathRepairs.get()).values.find((v) => v.labels.action === action)?.value ?? 0;
/** Subscribers Redis counts on a sharded channel (this test's subscriber is the only one). */
const listeners = async (channel: string) => ((await commands.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1];
const thinking = (i: number) => ({ type: 'thinking' as const, payload: { sessionId: 's', runId: 'r', content: `${i}` } });

describe('BackplaneSubscriber', () => {
  it('hands a subscribed stream its events in order, and a quiet feed that lost its channel is caught up and resubscribed by the watchdog', async () => {
    const stream: StreamName = 'bot:watchdog';
    const publisher = new StreamPublisher(commands, DEFAULT_RETENTION);
    await publisher.publish(stream, thinking(0));
    await backplane.acquire(stream);

    await publisher.publish(stream, thinking(1));
    await waitFor(() => seqs(stream).length === 1, { message: 'live event delivered' });
    expect(seqs(stream)).toEqual([2]);

    // The channel subscription goes away without the pod knowing: events stop arriving.
    await subscriber().sunsubscribe(streamChannel(stream));
    const stallsBefore = await stalls();
    for (let i = 2; i <= 4; i++) await publisher.publish(stream, thinking(i));

    // Within a watchdog period or two the feed reads its head, catches up from history, and subscribes again.
    await waitFor(() => seqs(stream).length === 4, { timeoutMs: 15_000, message: 'the quiet feed caught up' });
    expect(seqs(stream)).toEqual([2, 3, 4, 5]);
    expect(await stalls()).toBe(stallsBefore + 1);

    await publisher.publish(stream, thinking(5));
    await waitFor(() => seqs(stream).length === 5, { timeoutMs: 3_000, message: 'live again after the resubscribe' });
    expect(seqs(stream)).toEqual([2, 3, 4, 5, 6]);
    backplane.release(stream);
  });

  it('a subscriber connection that lost every subscription (a quiet stream too) is found by its own probe and subscribed again', async () => {
    const stream: StreamName = 'bot:path-resubscribe';
    const publisher = new StreamPublisher(commands, DEFAULT_RETENTION);
    await backplane.acquire(stream);
    expect(await backplane.roundTrip(2_000)).toBe(true);
    const before = await repairs('resubscribe');

    await subscriber().sunsubscribe(probeChannel('pod-watchdog'), streamChannel(stream));
    expect(await backplane.roundTrip(500)).toBe(false);

    const stallsBefore = await stalls();
    await waitFor(async () => (await repairs('resubscribe')) > before && (await backplane.roundTrip(500)), { timeoutMs: 10_000, message: 'the probe back' });
    // The stream's channel came back with it, though nothing was published on it meanwhile
    // (so the feed watchdog, which acts on feeds found behind their stream, had no part in it).
    expect(await listeners(streamChannel(stream))).toBe(1);
    expect(await stalls()).toBe(stallsBefore);
    await publisher.publish(stream, thinking(1));
    await waitFor(() => seqs(stream).length === 1, { timeoutMs: 3_000, message: 'live event after the repair' });
    backplane.release(stream);
  });

  it('when subscribing again does not bring the probe back, the subscriber connection is replaced', async () => {
    const stream: StreamName = 'bot:path-replace';
    const publisher = new StreamPublisher(commands, DEFAULT_RETENTION);
    await backplane.acquire(stream);
    const before = await repairs('replace');

    // The client library answers SSUBSCRIBE but its connection is subscribed to nothing (its
    // state and the server's disagree), and a reconnect would not mend it: only a new
    // connection does (ioredis 6.0.0's cluster subscriber group can get into such a state).
    const stuck = subscriber();
    const ssubscribe = stuck.ssubscribe.bind(stuck);
    stuck.ssubscribe = (async () => 1) as unknown as typeof stuck.ssubscribe;
    await ssubscribe(probeChannel('pod-watchdog'));
    await stuck.sunsubscribe(probeChannel('pod-watchdog'), streamChannel(stream));

    await waitFor(async () => (await repairs('replace')) > before && (await backplane.roundTrip(500)), { timeoutMs: 15_000, message: 'the probe back' });
    await waitFor(async () => (await listeners(streamChannel(stream))) === 1, { message: "the stream's channel subscribed on the new connection" });
    await publisher.publish(stream, thinking(1));
    await waitFor(() => seqs(stream).length === 1, { timeoutMs: 3_000, message: 'live event after the replacement' });
    expect(subscriber()).not.toBe(stuck);
    expect(stuck.status).toBe('end');
    backplane.release(stream);
  });

  it('a Redis that does not answer in time is not a lost probe: no repair while writes are paused', async () => {
    const before = [await repairs('resubscribe'), await repairs('replace')];
    // Writes (SPUBLISH among them) wait for two path-check periods; the connections stay up.
    await commands.call('CLIENT', 'PAUSE', '6500', 'WRITE');
    expect(await backplane.roundTrip(500)).toBe(false);
    await waitFor(() => backplane.roundTrip(500), { timeoutMs: 15_000, message: 'the probe back after the pause' });
    expect([await repairs('resubscribe'), await repairs('replace')]).toEqual(before);
  });

  it('a Redis outage is not a lost probe either: no repair while Redis is away, and the path works again after', async () => {
    const before = [await repairs('resubscribe'), await repairs('replace')];
    await server.stop?.();
    await waitFor(() => subscriber().status !== 'ready' && commands.status !== 'ready', { message: 'both connections down' });
    // Two path-check periods with Redis away: the absence of a repair can only be shown by letting them pass.
    await new Promise((resolve) => setTimeout(resolve, 6_500));
    await server.start?.();
    await waitFor(() => backplane.roundTrip(500), { timeoutMs: 15_000, message: 'the probe back after the outage' });
    expect([await repairs('resubscribe'), await repairs('replace')]).toEqual(before);
  });

  it('a feed whose channel the client will not subscribe again while Redis answers gets a new subscriber connection (a shard the probe is not on)', async () => {
    const stream: StreamName = 'bot:feed-replace';
    const publisher = new StreamPublisher(commands, DEFAULT_RETENTION);
    await backplane.acquire(stream);
    const before = await repairs('replace');
    const stuck = subscriber();
    const ssubscribe = stuck.ssubscribe.bind(stuck) as (...channels: string[]) => Promise<unknown>;
    // As ioredis 6.0.0 answers for a shard whose subscriber it lost: every other channel works.
    stuck.ssubscribe = (async (...channels: string[]) => {
      if (channels.includes(streamChannel(stream))) throw new Error('No sharded subscriber for slot: 1');
      return ssubscribe(...channels);
    }) as unknown as typeof stuck.ssubscribe;
    await stuck.sunsubscribe(streamChannel(stream));

    // Events the feed does not hear: the watchdog finds it behind, cannot subscribe, replaces.
    let n = 0;
    await waitFor(
      async () => {
        await publisher.publish(stream, thinking(n++));
        return (await repairs('replace')) > before && subscriber() !== stuck;
      },
      { timeoutMs: 30_000, intervalMs: 1_000, message: 'the subscriber replaced' },
    );
    await waitFor(async () => (await listeners(streamChannel(stream))) === 1, { message: "the stream's channel on the new connection" });
    const heard = seqs(stream).length;
    await publisher.publish(stream, thinking(n++));
    await waitFor(() => seqs(stream).length > heard && seqs(stream).at(-1) === n, { timeoutMs: 3_000, message: 'a live event on the new connection' });
    expect(seqs(stream)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
    backplane.release(stream);
  });
});

describe('BackplaneSubscriber on a Redis Cluster', () => {
  let cluster: AcquiredRedis;
  let clusterPair: RedisPair;
  let clusterCommands: RedisClient;
  let pod: BackplaneSubscriber;
  const got: Envelope[] = [];
  beforeAll(async () => {
    cluster = await acquireRedis({ ownServer: true, persistent: false, topology: 'cluster' });
    clusterCommands = createRedis({ url: cluster.url, role: 'test' });
    clusterPair = new RedisPair({ url: cluster.url, owner: 'test', resubscribe: false }, () => undefined);
    pod = new BackplaneSubscriber(clusterPair as RedisConnections, new StreamHistory(clusterCommands, DEFAULT_RETENTION), new GatewayMetrics(), {
      serverId: 'pod-cluster',
    } as GatewayConfig);
    pod.attach({ deliver: (envelope) => got.push(envelope), presence: () => undefined });
    pod.onModuleInit();
  });
  afterAll(async () => {
    await pod.onApplicationShutdown();
    await Promise.all([clusterCommands.quit(), clusterPair.close()]);
    await cluster.release();
  });

  it("replaces a subscriber whose shard subscribers ioredis will never start again (its group stuck 'resetting', as a whole-cluster restart left it once)", async () => {
    const stream: StreamName = 'bot:cluster-stuck';
    await waitFor(() => pod.roundTrip(1_000), { timeoutMs: 15_000, message: 'the probe through the cluster' });
    await pod.acquire(stream);
    const stuck = clusterPair.subscriber;
    // ioredis 6.0.0: ClusterSubscriberGroup.reset() awaits its shard subscribers' connects; one
    // stopped meanwhile (Cluster#disconnect on ClusterAllFailedError does that) never settles,
    // the group stays `isResetting` and every later reset only queues. Made here directly:
    const group = (stuck as unknown as { shardedSubscribers: { isResetting: boolean; stop(): void } }).shardedSubscribers;
    group.isResetting = true;
    group.stop();
    // SSUBSCRIBE now fails with "No sharded subscriber for slot", after a reconnect too.
    await expect(stuck.ssubscribe(probeChannel('pod-cluster'))).rejects.toThrow(/No sharded subscriber/);

    await waitFor(() => pod.roundTrip(1_000), { timeoutMs: 20_000, message: 'the probe back on a new connection' });
    expect(clusterPair.subscriber).not.toBe(stuck);
    await new StreamPublisher(clusterCommands, DEFAULT_RETENTION).publish(stream, thinking(1));
    await waitFor(() => got.some((e) => e.stream === stream), { timeoutMs: 5_000, message: 'a live event on the new connection' });
    pod.release(stream);
  });
});

describe('decodeMessage', () => {
  const envelope: Envelope = {
    v: 1,
    stream: 'bot:d',
    seq: 3,
    epoch: 'e1',
    id: 'id-3',
    type: 'session_created',
    ts: 1,
    payload: { sessionId: 's', title: 't' },
  };

  it('takes an event as its bare envelope (what publishers send) and as the older {kind, envelope} wrapper', () => {
    expect(decodeMessage('bot:d', JSON.stringify(envelope))).toEqual({ kind: 'event', envelope });
    expect(decodeMessage('bot:d', JSON.stringify({ kind: 'event', envelope }))).toEqual({ kind: 'event', envelope });
  });

  it('refuses an envelope of another stream, a malformed one, garbage and unknown kinds', () => {
    expect(decodeMessage('bot:other', JSON.stringify(envelope))).toBeNull();
    expect(decodeMessage('bot:d', JSON.stringify({ ...envelope, seq: 'x' }))).toBeNull();
    expect(decodeMessage('bot:d', '{ nope')).toBeNull();
    expect(decodeMessage('bot:d', JSON.stringify({ kind: 'mystery', envelope }))).toBeNull();
  });

  it('takes a presence change of its stream', () => {
    const change = { stream: 'bot:d', joined: ['u1'] };
    expect(decodeMessage('bot:d', JSON.stringify({ kind: 'presence', change }))).toEqual({ kind: 'presence', change });
  });
});
