import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { runScript, streamChannel, streamKeys, type ScriptName } from '@app/backplane';
import type { PresenceMember, StreamName } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { RedisConnections } from '../redis/redis.providers';

/** How long a stream's joins and leaves gather before they are written, when one changes who watches. */
const PRESENCE_BATCH_MS = 10;
/** How long they may gather when they only change how many connections a watching user has. */
const PRESENCE_COUNT_BATCH_MS = 1_000;

/** A stream's changes not written to Redis yet: userId → change of this pod's count, and when they are due. */
interface Unsent {
  changes: Map<string, number>;
  dueAt: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Presence (PROTOCOL.md §8) for the sockets of this pod. Joins and leaves are counted in
 * Redis per pod and user; every `PRESENCE_BEAT_MS` the pod restates its whole membership
 * of each stream it holds, which keeps it alive there and repairs any drift. A pod that
 * stops beating for three beats is taken out by the next presence script on that stream.
 *
 * Joins and leaves are written in batches: what a stream gathers over `PRESENCE_BATCH_MS`,
 * or while its previous write is in flight, goes in one script call as a change per user —
 * so a thousand sockets subscribing at once cost a handful of calls, not a thousand. A join
 * and a leave of the same user in one batch cancel out: presence tells who watches, not
 * every flap. A change that cannot change who watches (a user's second connection on this
 * pod, or any but the last one leaving) may wait `PRESENCE_COUNT_BATCH_MS`, or ride with an
 * earlier write: it only moves a `connections` count, and a reconnect storm of a few users'
 * dashboards then costs a call per stream and second rather than one per 10 ms. A `presence`
 * query on this pod sends what waits first. All of a pod's presence writes travel on one
 * connection, in order.
 */
@Injectable()
export class PresenceService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Presence');
  /** stream → userId → sockets of this pod subscribed to it. */
  private readonly local = new Map<StreamName, Map<string, number>>();
  /** Changes of this pod's counts not written to Redis yet, per stream. */
  private readonly unsent = new Map<StreamName, Unsent>();
  /** Streams with a write in flight: their next changes wait for it, and gather meanwhile. */
  private readonly writing = new Set<StreamName>();
  private timer: NodeJS.Timeout | null = null;
  private readonly staleMs: number;
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: RedisConnections,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {
    this.staleMs = config.presenceBeatMs * 3;
    this.ttlSeconds = Math.max(60, Math.ceil((config.presenceBeatMs * 10) / 1000));
  }

  onModuleInit(): void {
    this.timer = setInterval(() => void this.beat(), this.config.presenceBeatMs);
    this.timer.unref();
  }

  /** Not onModuleDestroy: that runs before the drain, and a pod still draining must keep beating. */
  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
    // What waits (the drain's last leaves) goes now, ahead of the connection's QUIT when this
    // runs first; otherwise the beat-less pod is taken out as stale within three beats anyway.
    for (const stream of [...this.unsent.keys()]) this.write(stream, { evenWhileWriting: true });
  }

  join(stream: StreamName, userId: string): void {
    const users = this.local.get(stream) ?? new Map<string, number>();
    const count = (users.get(userId) ?? 0) + 1;
    users.set(userId, count);
    this.local.set(stream, users);
    this.queue(stream, userId, 1, count === 1);
  }

  leave(stream: StreamName, userId: string): void {
    const users = this.local.get(stream);
    const count = users?.get(userId) ?? 0;
    if (!users || count === 0) return;
    if (count === 1) users.delete(userId);
    else users.set(userId, count - 1);
    if (users.size === 0) this.local.delete(stream);
    this.queue(stream, userId, -1, count === 1);
  }

  async members(stream: StreamName): Promise<PresenceMember[]> {
    // This pod's own changes first: the list is read after them on the same connection.
    this.write(stream, { evenWhileWriting: true });
    const flat = (await this.script('rtPresenceListV1', stream, [])) as string[];
    const members: PresenceMember[] = [];
    for (let i = 0; i < flat.length; i += 2) members.push({ userId: flat[i], connections: Number(flat[i + 1]) });
    return members.sort((a, b) => a.userId.localeCompare(b.userId));
  }

  /** Restates this pod's membership of every stream it holds. */
  async beat(): Promise<void> {
    await Promise.all(
      [...this.local.entries()].map(([stream, users]) => {
        // The beat states the counts these changes lead to: sent after it, they would count twice.
        this.take(stream);
        return this.run('rtPresenceBeatV1', stream, [this.config.serverId, ...[...users.entries()].flat()]);
      }),
    );
  }

  /** `whoWatches`: the change starts or ends this pod's watching by the user (not just a count). */
  private queue(stream: StreamName, userId: string, change: number, whoWatches: boolean): void {
    let unsent = this.unsent.get(stream);
    if (!unsent) {
      unsent = { changes: new Map(), dueAt: Number.POSITIVE_INFINITY, timer: null };
      this.unsent.set(stream, unsent);
    }
    unsent.changes.set(userId, (unsent.changes.get(userId) ?? 0) + change);
    const inMs = whoWatches ? PRESENCE_BATCH_MS : PRESENCE_COUNT_BATCH_MS;
    const dueAt = Date.now() + inMs;
    if (dueAt >= unsent.dueAt) return;
    unsent.dueAt = dueAt;
    if (unsent.timer) clearTimeout(unsent.timer);
    unsent.timer = setTimeout(() => {
      unsent.timer = null;
      this.write(stream);
    }, inMs);
    unsent.timer.unref();
  }

  /** Takes the stream's unsent changes (and cancels their timer). */
  private take(stream: StreamName): Map<string, number> | undefined {
    const unsent = this.unsent.get(stream);
    if (!unsent) return undefined;
    this.unsent.delete(stream);
    if (unsent.timer) clearTimeout(unsent.timer);
    return unsent.changes;
  }

  /**
   * Sends the stream's gathered changes (in order after any write already sent). While a
   * write is in flight they wait for it, and gather meanwhile, unless a query needs them now.
   */
  private write(stream: StreamName, { evenWhileWriting = false } = {}): void {
    if (this.writing.has(stream) && !evenWhileWriting) return;
    const changes = this.take(stream);
    if (!changes) return;
    const args: Array<string | number> = [this.config.serverId];
    for (const [userId, change] of changes) if (change !== 0) args.push(userId, change);
    if (args.length === 1) return;
    this.writing.add(stream);
    void this.run('rtPresenceApplyV1', stream, args).finally(() => {
      this.writing.delete(stream);
      // What came due while this write was out goes now; the rest keeps its timer.
      const next = this.unsent.get(stream);
      if (next && next.timer === null) this.write(stream);
    });
  }

  private async run(name: ScriptName, stream: StreamName, args: Array<string | number>): Promise<void> {
    try {
      await this.script(name, stream, args);
    } catch (error) {
      // Presence is best effort between beats: the next beat restates this pod's truth.
      this.logger.warn({ msg: 'presence update failed', script: name, stream, err: String(error) });
    }
  }

  private script(name: ScriptName, stream: StreamName, args: Array<string | number>): Promise<unknown> {
    const keys = streamKeys(stream);
    return runScript(
      this.redis.commands,
      name,
      [keys.presenceUsers, keys.presenceConns, keys.presencePods],
      [stream, streamChannel(stream), this.staleMs, this.ttlSeconds, ...args],
    );
  }
}
