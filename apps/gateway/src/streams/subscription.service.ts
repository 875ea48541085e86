import { Injectable, Logger } from '@nestjs/common';
import { type CatchUp, StreamHistory } from '@app/backplane';
import { type CommandPayload, type CommandResult, type Envelope, ErrorCode, ProtocolError, type StreamName } from '@app/protocol';
import { canAccess } from '../auth/auth-context';
import type { CommandOutcome } from '../commands/command-outcome';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import type { GatewaySocket, SocketSubscription } from '../realtime/socket.types';
import { BackplaneSubscriber } from './backplane-subscriber';
import { PendingSubscription } from './pending-subscription';
import { PresenceService } from './presence.service';

/** A pending subscription still not live after this long makes its feed resync. */
const GO_LIVE_NUDGE_MS = 2_000;

/**
 * Subscribe and unsubscribe (PROTOCOL.md §5) for one socket. The order of a subscribe is
 * what makes it exact under a publish storm:
 *   1. the pod's feed for the stream is subscribed on the backplane (confirmed by Redis);
 *   2. a {@link PendingSubscription} starts collecting what the feed delivers;
 *   3. one atomic read gives the replay or the snapshot at position S;
 *   4. after the ack: replayed events, then the buffered events after S, then the join —
 *      in one tick, so the room's next event is the first one the socket has not seen.
 */
@Injectable()
export class SubscriptionService {
  private readonly logger = new Logger('Subscriptions');

  constructor(
    private readonly backplane: BackplaneSubscriber,
    private readonly history: StreamHistory,
    private readonly presence: PresenceService,
    private readonly metrics: GatewayMetrics,
  ) {}

  async subscribe(socket: GatewaySocket, payload: CommandPayload<'subscribe'>): Promise<CommandOutcome<CommandResult<'subscribe'>>> {
    const { stream } = payload;
    if (!canAccess(socket.data.auth, stream)) throw new ProtocolError(ErrorCode.FORBIDDEN, `token scope does not cover ${stream}`);
    // A subscribe to a stream the socket already has is a resync: start over.
    this.unsubscribe(socket, stream);

    const feed = await this.backplane.acquire(stream);
    if (socket.disconnected) {
      // Gone while the feed was being set up: its disconnect cleanup could not see this one.
      this.backplane.release(stream);
      throw new ProtocolError(ErrorCode.UNAVAILABLE, 'the connection closed');
    }
    const subscription: SocketSubscription = { stream, pending: null, live: false };
    const pending = new PendingSubscription((tail) => this.goLive(socket, subscription, tail));
    subscription.pending = pending;
    feed.attach(pending);
    socket.data.subscriptions.set(stream, subscription);
    this.metrics.subscriptions.inc();

    let catchUp: CatchUp;
    try {
      const resume = payload.sinceSeq !== undefined && payload.epoch !== undefined
        ? { sinceSeq: payload.sinceSeq, epoch: payload.epoch, lastId: payload.lastId }
        : undefined;
      catchUp = await this.history.catchUp(stream, resume);
    } catch (error) {
      this.unsubscribe(socket, stream);
      throw error;
    }
    // The socket left, or re-subscribed, while the read was in flight: nothing to answer into.
    if (socket.data.subscriptions.get(stream) !== subscription) throw new ProtocolError(ErrorCode.CONFLICT, `subscription to ${stream} was replaced`);

    this.metrics.catchUps.inc({ mode: catchUp.mode, reason: catchUp.mode === 'snapshot' ? catchUp.reason : 'resume' });
    const replay: Envelope[] = catchUp.mode === 'replay' ? catchUp.events : [];
    const result: CommandResult<'subscribe'> = {
      stream,
      epoch: catchUp.epoch,
      seq: catchUp.seq,
      replayed: replay.length,
      ...(catchUp.mode === 'snapshot' ? { snapshot: catchUp.state } : {}),
    };
    if (catchUp.mode === 'snapshot' && catchUp.tailLength >= 2 * this.history.retention.checkpointEvery) {
      void this.history.compact(stream).catch((error: unknown) => this.logger.warn({ msg: 'compaction failed', stream, err: String(error) }));
    }

    return {
      result,
      afterAck: () => {
        for (const event of replay) socket.emit('event', event);
        this.metrics.eventsDelivered.inc({ path: 'replay' }, replay.length);
        feed.cover(pending, catchUp.epoch, catchUp.seq);
        if (!subscription.live) this.nudgeIfStuck(socket, subscription);
      },
      abandon: () => {
        if (socket.data.subscriptions.get(stream) === subscription) this.unsubscribe(socket, stream);
      },
    };
  }

  /** Leaves the stream (no-op when not subscribed). Returns whether there was a subscription. */
  unsubscribe(socket: GatewaySocket, stream: StreamName): boolean {
    const subscription = socket.data.subscriptions.get(stream);
    if (!subscription) return false;
    socket.data.subscriptions.delete(stream);
    this.metrics.subscriptions.dec();
    if (subscription.live) {
      void socket.leave(stream);
      this.presence.leave(stream, socket.data.auth.userId);
    }
    subscription.live = false;
    const feed = this.backplane.feed(stream);
    if (subscription.pending && feed) feed.detach(subscription.pending);
    subscription.pending = null;
    this.backplane.release(stream);
    return true;
  }

  unsubscribeAll(socket: GatewaySocket): void {
    for (const stream of [...socket.data.subscriptions.keys()]) this.unsubscribe(socket, stream);
  }

  private goLive(socket: GatewaySocket, subscription: SocketSubscription, tail: Envelope[]): void {
    if (socket.data.subscriptions.get(subscription.stream) !== subscription || socket.disconnected) return;
    for (const event of tail) socket.emit('event', event);
    this.metrics.eventsDelivered.inc({ path: 'catch_up' }, tail.length);
    void socket.join(subscription.stream);
    subscription.pending = null;
    subscription.live = true;
    this.presence.join(subscription.stream, socket.data.auth.userId);
  }

  private nudgeIfStuck(socket: GatewaySocket, subscription: SocketSubscription): void {
    const timer = setTimeout(() => {
      if (subscription.live || socket.data.subscriptions.get(subscription.stream) !== subscription) return;
      this.logger.warn({ msg: 'subscription waiting on its feed; resyncing', stream: subscription.stream });
      void this.backplane.feed(subscription.stream)?.resync();
    }, GO_LIVE_NUDGE_MS);
    timer.unref();
  }
}
