import { randomBytes } from 'node:crypto';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Envelope, ReadFrom, ServerToClientEvents, StreamName, StreamPosition } from '@app/protocol';
import type { AuthContext } from '../auth/auth-context';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import type { Connection, ConnectionData } from '../realtime/connection';
import { ConnectionCore } from '../realtime/connection-core';
import { BackplaneSubscriber } from '../streams/backplane-subscriber';
import { continuing, pageOf, type ReadPage, relation } from './read-page';
import { StreamReads } from './stream-reads.service';

/**
 * A long-poller comes back within a round trip of its answer: the pod keeps the stream's feed
 * this long after the last one left, instead of unsubscribing and subscribing again per answer.
 */
const FEED_LINGER_MS = 5_000;

/** The events it waited for, or nothing within the timeout (also when the pod drains). */
export type LongPollAnswer = { page: ReadPage } | { timedOut: StreamPosition };

/**
 * `live=long-poll` reads (PROTOCOL.md §12, Durable Streams §5.6). The wait sits on the pod's
 * own delivery: the stream's feed is acquired (from then on every event published reaches
 * this pod) and a waiter joins the stream's plain room of the ConnectionCore before history
 * is read, so an event published after the read wakes it. It answers with the delivered
 * events when they continue its position exactly, and reads history again otherwise (a late
 * or lost delivery, another epoch). Long-pollers are not subscribers: they hold no presence
 * (a poll per event would make a user flap in and out).
 */
@Injectable()
export class LongPolls implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly waiters = new Set<LongPollWaiter>();
  private readonly lingering = new Set<NodeJS.Timeout>();

  constructor(
    private readonly reads: StreamReads,
    private readonly backplane: BackplaneSubscriber,
    private readonly core: ConnectionCore,
    private readonly lifecycle: Lifecycle,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  onApplicationBootstrap(): void {
    // A drain answers every waiting poll at once (204): the client polls again, elsewhere.
    this.lifecycle.attach<LongPollWaiter>({ count: () => this.waiters.size, list: () => [...this.waiters], drain: (waiter) => waiter.stop() });
  }

  onApplicationShutdown(): void {
    for (const timer of this.lingering) clearTimeout(timer);
  }

  /** The events after `from` as soon as there are any, or `timedOut` (also when `signal` aborts). */
  async wait(stream: StreamName, auth: AuthContext, from: ReadFrom, signal: AbortSignal): Promise<LongPollAnswer> {
    const feed = await this.backplane.acquire(stream);
    const waiter = new LongPollWaiter(auth);
    this.core.joinPlain(waiter, stream);
    this.waiters.add(waiter);
    this.metrics.httpReaders.inc({ mode: 'long_poll' });
    const timer = setTimeout(() => waiter.stop(), this.config.longPollTimeoutMs);
    const abort = () => waiter.stop();
    signal.addEventListener('abort', abort);
    if (signal.aborted) waiter.stop();
    try {
      let page = await this.reads.page(stream, from);
      while (page.count === 0) {
        const position = page.next;
        await waiter.next();
        if (waiter.disconnected) return { timedOut: position };
        const delivered = waiter.take();
        const fresh = continuing(position, delivered);
        if (fresh.length > 0) {
          // Up to date as far as this pod knows: nothing after the feed's last delivery yet.
          const known = feed.position.epoch === position.epoch ? feed.position.seq : Infinity;
          page = pageOf(position, fresh, known);
        } else if (delivered.some((event) => relation(position, event) === 'break')) {
          page = await this.reads.page(stream, { kind: 'after', position });
        }
      }
      return { page };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
      waiter.stop();
      this.core.leavePlain(waiter, stream);
      this.waiters.delete(waiter);
      this.metrics.httpReaders.dec({ mode: 'long_poll' });
      this.releaseLater(stream);
    }
  }

  private releaseLater(stream: StreamName): void {
    const timer = setTimeout(() => {
      this.lingering.delete(timer);
      this.backplane.release(stream);
    }, FEED_LINGER_MS);
    timer.unref();
    this.lingering.add(timer);
  }
}

/**
 * A long-poll read in a stream's plain room (a Connection only so that the core's delivery
 * reaches it): it keeps what is delivered until the poll looks, and wakes the poll.
 */
class LongPollWaiter implements Connection {
  readonly id = randomBytes(9).toString('base64url');
  readonly data: ConnectionData;
  /** Stopped: the poll answers with what it has (timeout, drain, the client left, or done). */
  disconnected = false;
  private delivered: Envelope[] = [];
  private wake: (() => void) | null = null;

  constructor(auth: AuthContext) {
    this.data = { auth };
  }

  emit<E extends keyof ServerToClientEvents>(event: E, ...args: Parameters<ServerToClientEvents[E]>): boolean {
    if (event !== 'event' || this.disconnected) return false;
    this.delivered.push(args[0] as Envelope);
    this.wakeUp();
    return true;
  }

  /** Settles at the next delivery or stop — at once when one is already there. */
  next(): Promise<void> {
    if (this.disconnected || this.delivered.length > 0) return Promise.resolve();
    return new Promise((resolve) => (this.wake = resolve));
  }

  /** What was delivered since the last look. */
  take(): Envelope[] {
    const delivered = this.delivered;
    this.delivered = [];
    return delivered;
  }

  stop(): void {
    this.disconnected = true;
    this.wakeUp();
  }

  // The poll puts the waiter in the room itself; the core never moves it.
  join(): void {}
  leave(): void {}

  disconnect(): void {
    this.stop();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
