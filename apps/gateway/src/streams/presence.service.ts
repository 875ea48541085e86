import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { runScript, streamChannel, streamKeys, type ScriptName } from '@app/backplane';
import type { PresenceMember, StreamName } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { RedisConnections } from '../redis/redis.providers';

/** How long a stream's joins and leaves gather before they are written. */
const PRESENCE_BATCH_MS = 10;

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
 * every flap. All of a pod's presence writes travel on one connection, in order.
 */
@Injectable()
export class PresenceService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Presence');
  /** stream → userId → sockets of this pod subscribed to it. */
  private readonly local = new Map<StreamName, Map<string, number>>();
  /** stream → userId → change of this pod's count not written to Redis yet. */
  private readonly unsent = new Map<StreamName, Map<string, number>>();
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
  }

  join(stream: StreamName, userId: string): void {
    const users = this.local.get(stream) ?? new Map<string, number>();
    users.set(userId, (users.get(userId) ?? 0) + 1);
    this.local.set(stream, users);
    this.queue(stream, userId, 1);
  }

  leave(stream: StreamName, userId: string): void {
    const users = this.local.get(stream);
    const count = users?.get(userId) ?? 0;
    if (!users || count === 0) return;
    if (count === 1) users.delete(userId);
    else users.set(userId, count - 1);
    if (users.size === 0) this.local.delete(stream);
    this.queue(stream, userId, -1);
  }

  async members(stream: StreamName): Promise<PresenceMember[]> {
    // This pod's own changes first: the list is read after them on the same connection.
    this.write(stream);
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
        this.unsent.delete(stream);
        return this.run('rtPresenceBeatV1', stream, [this.config.serverId, ...[...users.entries()].flat()]);
      }),
    );
  }

  private queue(stream: StreamName, userId: string, change: number): void {
    let changes = this.unsent.get(stream);
    if (!changes) {
      changes = new Map();
      this.unsent.set(stream, changes);
      // A write in flight sends them when it ends.
      if (!this.writing.has(stream)) setTimeout(() => this.write(stream), PRESENCE_BATCH_MS);
    }
    changes.set(userId, (changes.get(userId) ?? 0) + change);
  }

  /** Sends the stream's gathered changes now (in order after any write already sent). */
  private write(stream: StreamName): void {
    const changes = this.unsent.get(stream);
    if (!changes) return;
    this.unsent.delete(stream);
    const args: Array<string | number> = [this.config.serverId];
    for (const [userId, change] of changes) if (change !== 0) args.push(userId, change);
    if (args.length === 1) return;
    this.writing.add(stream);
    void this.run('rtPresenceApplyV1', stream, args).finally(() => {
      this.writing.delete(stream);
      this.write(stream);
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
