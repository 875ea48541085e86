import { Inject, Injectable, Logger } from '@nestjs/common';
import { type CatchUp, StreamHistory } from '@app/backplane';
import { type CommandPayload, type CommandResult, type Envelope, ErrorCode, ProtocolError, type StreamName } from '@app/protocol';
import { requireAccess } from '../auth/auth-context';
import type { CommandOutcome } from '../commands/command-outcome';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import type { Connection, ConnectionSubscription } from '../realtime/connection';
import { BackplaneSubscriber } from './backplane-subscriber';
import { PendingSubscription } from './pending-subscription';
import { PresenceService } from './presence.service';
import { SnapshotReads } from './snapshot-reads';

/** A pending subscription still not live after this long makes its feed resync. */
const GO_LIVE_NUDGE_MS = 2_000;

/**
 * Subscribe and unsubscribe (PROTOCOL.md §5) for one socket. The order of a subscribe is
 * what makes it exact under a publish storm:
 *   1. the pod's feed for the stream is subscribed on the backplane (confirmed by Redis);
 *   2. a {@link PendingSubscription} starts collecting what the feed delivers;
 *   3. one atomic read gives the replay or the snapshot at position S (or the feed answers a
 *      resume from the events it holds, at its own position S, without a read);
 *   4. after the ack: replayed events, then the buffered events after S, then the join —
 *      in one tick, so the room's next event is the first one the socket has not seen.
 * A subscription is in `socket.data.subscriptions` from its first line, so an unsubscribe,
 * a newer subscribe or a disconnect during the awaits ends it; each step after an await
 * checks it is still current, and every path releases exactly what it took.
 */
@Injectable()
export class SubscriptionService {
  private readonly logger = new Logger('Subscriptions');
  private readonly snapshots = new SnapshotReads((stream) => this.readSnapshot(stream));

  constructor(
    private readonly backplane: BackplaneSubscriber,
    private readonly history: StreamHistory,
    private readonly presence: PresenceService,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  async subscribe(socket: Connection, payload: CommandPayload<'subscribe'>): Promise<CommandOutcome<CommandResult<'subscribe'>>> {
    const { stream } = payload;
    requireAccess(socket.data.auth, stream);
    const previous = socket.data.subscriptions?.find((s) => s.stream === stream);
    if (!previous && (socket.data.subscriptions?.length ?? 0) >= this.config.limits.maxSubscriptions) {
      throw new ProtocolError(ErrorCode.VALIDATION_FAILED, `at most ${this.config.limits.maxSubscriptions} subscriptions per connection`, [
        { field: 'stream', constraint: 'maxSubscriptions', message: 'unsubscribe from a stream first' },
      ]);
    }
    // A subscribe to a stream the socket already has is a resync: start over, but the user
    // stays present throughout (no left/joined flap).
    const wasPresent = previous?.present ?? false;
    if (previous) this.end(socket, previous, { keepPresence: true });

    const subscription: ConnectionSubscription = { stream, pending: null, live: false, present: wasPresent, feed: false, ended: false };
    // A socket's first list is made with room for exactly one (`[]` then push reserves 17).
    if (socket.data.subscriptions) socket.data.subscriptions.push(subscription);
    else socket.data.subscriptions = [subscription];
    this.metrics.subscriptions.inc();
    const gone = () => new ProtocolError(ErrorCode.CONFLICT, `the subscription to ${stream} ended before it was ready`);

    let feed;
    try {
      feed = await this.backplane.acquire(stream);
    } catch (error) {
      this.endIfCurrent(socket, subscription);
      throw error;
    }
    if (subscription.ended) {
      // Ended while the feed was being set up: the reference is ours to give back.
      this.backplane.release(stream);
      throw gone();
    }
    subscription.feed = true;
    const pending = new PendingSubscription((tail) => this.goLive(socket, subscription, tail));
    subscription.pending = pending;
    feed.attach(pending);

    const resume =
      payload.sinceSeq !== undefined && payload.epoch !== undefined ? { sinceSeq: payload.sinceSeq, epoch: payload.epoch, lastId: payload.lastId } : undefined;
    // Step 3, started only now that the feed collects for this subscription: a resume the
    // feed can answer from the events it holds costs no read; any other, one.
    let catchUp: CatchUp | null = resume ? feed.replayFrom(resume) : null;
    const fromFeed = catchUp !== null;
    try {
      catchUp ??= resume ? await this.history.catchUp(stream, resume) : await this.snapshots.snapshot(feed);
    } catch (error) {
      this.endIfCurrent(socket, subscription);
      throw error;
    }
    if (subscription.ended) throw gone();

    this.metrics.catchUps.inc({ mode: catchUp.mode, reason: catchUp.mode === 'snapshot' ? catchUp.reason : fromFeed ? 'resume_from_feed' : 'resume' });
    const replay: Envelope[] = catchUp.mode === 'replay' ? catchUp.events : [];
    const result: CommandResult<'subscribe'> = {
      stream,
      epoch: catchUp.epoch,
      seq: catchUp.seq,
      replayed: replay.length,
      ...(catchUp.mode === 'snapshot' ? { snapshot: catchUp.state } : {}),
    };
    if (resume && catchUp.mode === 'snapshot') this.compactIfLong(stream, catchUp);

    return {
      result,
      afterAck: () => {
        if (subscription.ended) return;
        for (const event of replay) socket.emit('event', event);
        if (replay.length > 0) this.metrics.eventsDelivered.inc({ path: 'replay' }, replay.length);
        feed.cover(pending, catchUp.epoch, catchUp.seq);
        if (!subscription.live) this.nudgeIfStuck(socket, subscription);
      },
      abandon: () => this.endIfCurrent(socket, subscription),
    };
  }

  /**
   * A snapshot read of the stream (PROTOCOL.md §5): what a subscribe without `sinceSeq`
   * gets, and `GET /v1/streams/:stream/snapshot` (§12). Subscribes share these reads (see
   * SnapshotReads).
   */
  async readSnapshot(stream: StreamName): Promise<CatchUp> {
    const catchUp = await this.history.catchUp(stream);
    if (catchUp.mode === 'snapshot') this.compactIfLong(stream, catchUp);
    return catchUp;
  }

  /** A snapshot that had to fold a long tail makes a new checkpoint, so the next ones need not. */
  private compactIfLong(stream: StreamName, catchUp: Extract<CatchUp, { mode: 'snapshot' }>): void {
    if (catchUp.tailLength < 2 * this.history.retention.checkpointEvery) return;
    void this.history.compact(stream).catch((error: unknown) => this.logger.warn({ msg: 'compaction failed', stream, err: String(error) }));
  }

  /** Leaves the stream (no-op when not subscribed). Returns whether there was a subscription. */
  unsubscribe(socket: Connection, stream: StreamName): boolean {
    const subscription = socket.data.subscriptions?.find((s) => s.stream === stream);
    if (!subscription) return false;
    this.end(socket, subscription);
    return true;
  }

  unsubscribeAll(socket: Connection): void {
    for (const subscription of [...(socket.data.subscriptions ?? [])]) this.end(socket, subscription);
  }

  private endIfCurrent(socket: Connection, subscription: ConnectionSubscription): void {
    if (socket.data.subscriptions?.includes(subscription)) this.end(socket, subscription);
  }

  /** Ends one subscription: out of the socket's list and the room, its pending and feed reference given back. */
  private end(socket: Connection, subscription: ConnectionSubscription, { keepPresence = false } = {}): void {
    if (subscription.ended) return;
    subscription.ended = true;
    const { stream } = subscription;
    const at = socket.data.subscriptions?.indexOf(subscription) ?? -1;
    if (at >= 0) socket.data.subscriptions?.splice(at, 1);
    this.metrics.subscriptions.dec();
    if (subscription.live) void socket.leave(stream);
    if (subscription.present && !keepPresence) this.presence.leave(stream, socket.data.auth.userId);
    subscription.live = false;
    subscription.present = false;
    if (subscription.pending) this.backplane.feed(stream)?.detach(subscription.pending);
    subscription.pending = null;
    if (subscription.feed) this.backplane.release(stream);
    subscription.feed = false;
  }

  private goLive(socket: Connection, subscription: ConnectionSubscription, tail: Envelope[]): void {
    if (subscription.ended || socket.disconnected) return;
    for (const event of tail) socket.emit('event', event);
    if (tail.length > 0) this.metrics.eventsDelivered.inc({ path: 'catch_up' }, tail.length);
    void socket.join(subscription.stream);
    subscription.pending = null;
    subscription.live = true;
    if (!subscription.present) this.presence.join(subscription.stream, socket.data.auth.userId);
    subscription.present = true;
  }

  private nudgeIfStuck(socket: Connection, subscription: ConnectionSubscription): void {
    const timer = setTimeout(() => {
      if (subscription.live || subscription.ended) return;
      this.logger.warn({ msg: 'subscription waiting on its feed; resyncing', stream: subscription.stream });
      void this.backplane
        .feed(subscription.stream)
        ?.resync()
        .catch(() => undefined);
    }, GO_LIVE_NUDGE_MS);
    timer.unref();
  }
}
