import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { probeChannel, StreamHistory, streamChannel, streamOfChannel } from '@app/backplane';
import { type Envelope, isEnvelope, isStreamName, type PresenceChange, type StreamName } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { RedisConnections } from '../redis/redis.providers';
import { type RedisClient, withTimeout } from '@app/runtime';
import { StreamFeed } from './stream-feed';

/** A feed that heard nothing for this long is checked against its stream's head. */
const FEED_WATCHDOG_MS = 5_000;

/**
 * How often the pod sends itself a probe through the backplane, and how long it waits for it.
 * A probe that does not come back while Redis answers means the subscriber connection lost
 * subscriptions without knowing (seen once in ~50 whole-cluster restarts: ioredis' sharded
 * subscriber group came back without one shard's channels).
 */
const PATH_CHECK_MS = 3_000;
const PATH_PROBE_TIMEOUT_MS = 2_000;

/** How long a repair's subscribe may take before it counts as failed (and the checks go on). */
const REPAIR_DEADLINE_MS = 5_000;

/** A replaced subscriber connection gets this long to come up and subscribe before another replacement. */
const REPLACE_MIN_INTERVAL_MS = 10_000;

/** Topology events come in bursts; one resync follows the last of them by this much. */
const RESYNC_DEBOUNCE_MS = 250;

/** Where the feeds' in-order events and presence changes go (the Socket.IO fan-out). */
export interface FanOut {
  deliver(envelope: Envelope): void;
  presence(change: PresenceChange): void;
}

/**
 * The pod's end of the backplane. It holds one sharded subscription per stream that has
 * at least one subscriber on this pod — so a pod receives a stream's events only while it
 * needs them — and hands each channel's messages to that stream's {@link StreamFeed}.
 * It resubscribes by itself after a Redis reconnect and then resyncs every feed.
 */
@Injectable()
export class BackplaneSubscriber implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Backplane');
  private readonly feeds = new Map<StreamName, StreamFeed>();
  private readonly closing = new Map<StreamName, Promise<unknown>>();
  /** Probes on their way back: nonce → what to call when it arrives. */
  private readonly probes = new Map<string, () => void>();
  private readonly probe: string;
  private fanOut: FanOut | null = null;
  private connectedOnce = false;
  private resyncTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private pathCheck: NodeJS.Timeout | null = null;
  private checking = false;
  private checkingPath = false;
  /** Path checks whose probe was lost since a probe last came back (or the subscriber reconnected). */
  private pathFailures = 0;
  /** When the subscriber connection was last replaced (performance.now(); 0: never). */
  private replacedAt = 0;
  private stopped = false;

  constructor(
    private readonly redis: RedisConnections,
    private readonly history: StreamHistory,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
  ) {
    this.probe = probeChannel(config.serverId);
  }

  onModuleInit(): void {
    this.listen(this.redis.subscriber);
    this.watchdog = setInterval(() => void this.checkQuietFeeds(), FEED_WATCHDOG_MS);
    this.watchdog.unref();
    this.pathCheck = setInterval(() => void this.checkPath(), PATH_CHECK_MS);
    this.pathCheck.unref();
  }

  private readonly onSubscriberMessage = (channel: string, message: string) => this.onMessage(channel, message);
  private readonly onSubscriberReady = () => void this.onReady();
  // On a cluster, ioredis moves sharded subscriptions to a slot's new master by itself
  // (a failover, a node back); events published in between never arrive, so resync.
  private readonly onSubscriptionsMoved = () => this.resyncSoon();

  private listen(subscriber: RedisClient): void {
    subscriber.on('smessage', this.onSubscriberMessage);
    subscriber.on('ready', this.onSubscriberReady);
    subscriber.on('subscribersReady', this.onSubscriptionsMoved);
    if (subscriber.status === 'ready') void this.onReady();
  }

  private unlisten(subscriber: RedisClient): void {
    subscriber.off('smessage', this.onSubscriberMessage);
    subscriber.off('ready', this.onSubscriberReady);
    subscriber.off('subscribersReady', this.onSubscriptionsMoved);
  }

  attach(fanOut: FanOut): void {
    this.fanOut = fanOut;
  }

  feed(stream: StreamName): StreamFeed | undefined {
    return this.feeds.get(stream);
  }

  /** Takes a reference on the stream's feed, subscribing the pod to it if it is the first. */
  async acquire(stream: StreamName): Promise<StreamFeed> {
    await this.closing.get(stream);
    let feed = this.feeds.get(stream);
    if (!feed) {
      feed = this.createFeed(stream);
      this.feeds.set(stream, feed);
      feed.ready = this.open(feed);
      this.metrics.feeds.set(this.feeds.size);
    }
    feed.refs++;
    try {
      await feed.ready;
    } catch (error) {
      this.release(stream);
      throw error;
    }
    return feed;
  }

  /** Drops a reference; the last one unsubscribes the pod from the stream. */
  release(stream: StreamName): void {
    const feed = this.feeds.get(stream);
    if (!feed) return;
    feed.refs--;
    if (feed.refs > 0) return;
    this.feeds.delete(stream);
    this.metrics.feeds.set(this.feeds.size);
    const done = this.redis.subscriber
      .sunsubscribe(streamChannel(stream))
      .catch((error: unknown) => this.logger.warn({ msg: 'sunsubscribe failed', stream, err: String(error) }))
      .finally(() => {
        if (this.closing.get(stream) === done) this.closing.delete(stream);
      });
    this.closing.set(stream, done);
  }

  /**
   * Proves the subscription path end to end: publish a nonce on this pod's probe channel and
   * wait for it to come back through the subscriber connection.
   */
  async roundTrip(timeoutMs: number): Promise<boolean> {
    return (await this.probeOnce(timeoutMs)) === 'arrived';
  }

  /**
   * One probe: `arrived`; `lost` when Redis took the SPUBLISH but the probe did not come back
   * (at once when Redis counted no subscriber); `unavailable` when the SPUBLISH failed or got no
   * answer in time (Redis is away: that is not the subscriber's fault).
   */
  private probeOnce(timeoutMs: number): Promise<ProbeResult> {
    const nonce = randomUUID();
    return new Promise<ProbeResult>((resolve) => {
      let published = false;
      let settled = false;
      const settle = (result: ProbeResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.probes.delete(nonce);
        // Any probe that came back (a readiness check's too) proves the path.
        if (result === 'arrived') this.pathFailures = 0;
        resolve(result);
      };
      // A timer that fires late (a busy event loop) runs before the socket reads of the same
      // turn: give a probe that did arrive that poll phase before calling it lost.
      const timer = setTimeout(() => setImmediate(() => settle(published ? 'lost' : 'unavailable')), timeoutMs);
      timer.unref();
      this.probes.set(nonce, () => settle('arrived'));
      this.redis.commands.spublish(this.probe, nonce).then(
        (receivers) => {
          published = true;
          if (receivers === 0) settle('lost');
        },
        () => settle('unavailable'),
      );
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.pathCheck) clearInterval(this.pathCheck);
    this.feeds.clear();
    await Promise.allSettled([...this.closing.values()]);
  }

  private createFeed(stream: StreamName): StreamFeed {
    return new StreamFeed(stream, {
      range: (s, from, to) => this.history.range(s, from, to),
      head: (s) => this.history.head(s),
      deliver: (envelope) => this.fanOut?.deliver(envelope),
      onGap: (s, result, missing) => {
        this.metrics.gapsRepaired.inc({ result });
        this.logger.warn({ msg: 'stream feed gap', stream: s, result, missing });
      },
      onError: (s, error) => this.logger.warn({ msg: 'stream feed could not read history', stream: s, err: String(error) }),
    });
  }

  private async open(feed: StreamFeed): Promise<void> {
    const subscriber = this.redis.subscriber;
    try {
      await subscriber.ssubscribe(streamChannel(feed.stream));
    } catch (error) {
      // Sent on a connection replaced meanwhile (closing it failed the SSUBSCRIBE): the new one
      // serves the feed; anything else is the caller's error.
      if (this.redis.subscriber === subscriber) throw error;
      await this.redis.subscriber.ssubscribe(streamChannel(feed.stream));
    }
    await feed.prime();
  }

  /** First connect: subscribe the probe. After a reconnect: resubscribe everything, then resync. */
  private async onReady(): Promise<void> {
    const reconnect = this.connectedOnce;
    this.connectedOnce = true;
    this.pathFailures = 0;
    try {
      if (!reconnect) await this.redis.subscriber.ssubscribe(this.probe);
      else await this.resubscribeAll('backplane reconnected; resubscribing');
    } catch (error) {
      // The connection dropped again mid-way; the next 'ready' starts over.
      this.logger.warn({ msg: 'resubscribe interrupted', err: String(error) });
    }
  }

  /**
   * Subscribes the probe and every feed's channel again, then reads every feed up to its head.
   * A feed released meanwhile is skipped, and its channel let go again if this subscribed it
   * after the release's SUNSUBSCRIBE (unless a new feed of the stream holds it by now).
   */
  private async resubscribeAll(why: string): Promise<void> {
    const feeds = [...this.feeds.values()];
    this.logger.log({ msg: why, feeds: feeds.length });
    await this.redis.subscriber.ssubscribe(this.probe);
    for (const feed of feeds) {
      if (this.stopped) return;
      if (this.feeds.get(feed.stream) !== feed) continue;
      const channel = streamChannel(feed.stream);
      await this.redis.subscriber.ssubscribe(channel);
      if (!this.feeds.has(feed.stream) && !this.stopped) await this.redis.subscriber.sunsubscribe(channel);
    }
    await Promise.all(
      feeds.map((feed) => feed.resync().catch((error: unknown) => this.logger.warn({ msg: 'resync failed', stream: feed.stream, err: String(error) }))),
    );
  }

  /**
   * The safety net under the whole subscriber connection (the feed watchdog below only sees
   * streams that publish): the pod's probe must come back through it while Redis answers.
   * The first miss subscribes everything again; a second one in a row replaces the
   * subscriber connection with a new one, whose `ready` ends in {@link onReady}.
   * While Redis is down there is nothing to check: the reconnect does the same work. On a
   * cluster the probe's channel lives on one shard: the others' channels are watched by the
   * feed watchdog only (a probe per shard would cover quiet streams there too).
   */
  private async checkPath(): Promise<void> {
    // `ready`, not the connections' status: a cluster connection stays `ready` while a master is down.
    if (this.stopped || this.checkingPath || !this.redis.ready) return;
    this.checkingPath = true;
    try {
      const result = await this.probeOnce(PATH_PROBE_TIMEOUT_MS);
      if (result !== 'lost' || this.stopped || !this.redis.ready) return;
      this.pathFailures++;
      if (this.pathFailures === 1) {
        this.metrics.pathRepairs.inc({ action: 'resubscribe' });
        // Bounded: an SSUBSCRIBE queued on a shard connection that never comes up would
        // otherwise hold `checkingPath` for ever, and no later check could replace it.
        await withTimeout(this.resubscribeAll('backplane probe did not come back; resubscribing'), REPAIR_DEADLINE_MS, 'the resubscribe');
      } else {
        this.replaceSubscriber('backplane probe still does not come back; replacing the subscriber connection');
      }
    } catch (error) {
      this.logger.warn({ msg: 'backplane path repair failed', err: String(error) });
    } finally {
      this.checkingPath = false;
    }
  }

  /**
   * A new subscriber connection, not a reconnect of this one: the client object's state is
   * what went wrong (see RedisPair.renewSubscriber). Its 'ready' subscribes everything again
   * and resyncs the feeds. At most one per {@link REPLACE_MIN_INTERVAL_MS}.
   */
  private replaceSubscriber(why: string): boolean {
    if (this.stopped || (this.replacedAt > 0 && performance.now() - this.replacedAt < REPLACE_MIN_INTERVAL_MS)) return false;
    this.replacedAt = performance.now();
    this.pathFailures = 0;
    this.metrics.pathRepairs.inc({ action: 'replace' });
    this.logger.warn({ msg: why });
    this.unlisten(this.redis.subscriber);
    this.listen(this.redis.renewSubscriber());
    return true;
  }

  /**
   * Reads every feed up to its stream's head shortly after the subscriptions moved: a
   * burst of topology events (a failover emits several) costs one resync, not one each.
   */
  private resyncSoon(): void {
    if (this.resyncTimer) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = null;
      const feeds = [...this.feeds.values()];
      this.logger.log({ msg: 'cluster subscriptions moved; resyncing feeds', feeds: feeds.length });
      for (const feed of feeds)
        void feed.resync().catch((error: unknown) => this.logger.warn({ msg: 'resync failed', stream: feed.stream, err: String(error) }));
    }, RESYNC_DEBOUNCE_MS);
  }

  /**
   * The safety net under the channel subscriptions: a feed that heard nothing for a watchdog
   * period reads its stream's head. A quiet stream costs one read; a feed found behind the
   * head was not hearing its channel (a sharded subscription lost in a cluster's topology
   * change, say), so it catches up from history and its channel is subscribed again.
   */
  private async checkQuietFeeds(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const quietSince = Date.now() - FEED_WATCHDOG_MS;
      for (const feed of [...this.feeds.values()]) {
        if (feed.lastMessageAt > quietSince || this.feeds.get(feed.stream) !== feed) continue;
        const before = feed.position;
        try {
          await feed.resync();
        } catch (error) {
          this.logger.warn({ msg: 'watchdog could not read a stream head', stream: feed.stream, err: String(error) });
          continue;
        }
        const after = feed.position;
        feed.lastMessageAt = Date.now();
        if (after.epoch === before.epoch && after.seq === before.seq) continue;
        this.metrics.feedStalls.inc();
        this.logger.warn({ msg: 'a quiet feed was behind its stream; subscribing its channel again', stream: feed.stream, from: before, to: after });
        try {
          await withTimeout(this.redis.subscriber.ssubscribe(streamChannel(feed.stream)), REPAIR_DEADLINE_MS, 'the SSUBSCRIBE');
        } catch (error) {
          // Redis answered the head read just now: a subscriber that cannot subscribe is broken
          // (on a cluster, possibly on a shard the path check's probe does not live on).
          this.logger.warn({ msg: 'resubscribe failed', stream: feed.stream, err: String(error) });
          // The new connection subscribes every feed and resyncs them: nothing more to check here.
          if (this.redis.ready && this.replaceSubscriber('a feed could not be subscribed again; replacing the subscriber connection')) break;
        }
      }
    } finally {
      this.checking = false;
    }
  }

  private onMessage(channel: string, message: string): void {
    if (channel === this.probe) return this.probes.get(message)?.();
    const stream = streamOfChannel(channel);
    const feed = stream && this.feeds.get(stream);
    if (!feed) return;
    const decoded = decodeMessage(stream, message);
    if (!decoded) {
      this.metrics.invalidMessages.inc();
      this.logger.warn({ msg: 'dropped an invalid backplane message', stream, size: message.length });
      return;
    }
    if (decoded.kind === 'event') {
      this.metrics.eventsReceived.inc();
      feed.receive(decoded.envelope);
    } else {
      this.fanOut?.presence(decoded.change);
    }
  }
}

type ProbeResult = 'arrived' | 'lost' | 'unavailable';

type BackplaneMessage = { kind: 'event'; envelope: Envelope } | { kind: 'presence'; change: PresenceChange };

/**
 * Validates what arrives from Redis before anything acts on it: a malformed message is
 * dropped and counted, never allowed to throw inside the pod.
 */
export function decodeMessage(stream: StreamName, raw: string): BackplaneMessage | null {
  let message: unknown;
  try {
    message = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof message !== 'object' || message === null) return null;
  const m = message as Record<string, unknown>;
  // An event is its envelope as it is (a message with no `kind`); older publishers wrapped it.
  if (m.kind === undefined) return isEnvelope(m) && m.stream === stream ? { kind: 'event', envelope: m } : null;
  if (m.kind === 'event') {
    return isEnvelope(m.envelope) && m.envelope.stream === stream ? { kind: 'event', envelope: m.envelope } : null;
  }
  if (m.kind === 'presence' && typeof m.change === 'object' && m.change !== null) {
    const change = m.change as Record<string, unknown>;
    const userList = (v: unknown) => v === undefined || (Array.isArray(v) && v.every((u) => typeof u === 'string'));
    if (isStreamName(change.stream) && change.stream === stream && userList(change.joined) && userList(change.left)) {
      return { kind: 'presence', change: change as unknown as PresenceChange };
    }
  }
  return null;
}
