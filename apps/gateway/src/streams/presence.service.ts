import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { runScript, streamChannel, streamKeys, type ScriptName } from '@app/backplane';
import type { PresenceMember, StreamName } from '@app/protocol';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { RedisConnections } from '../redis/redis.providers';

/**
 * Presence (PROTOCOL.md §8) for the sockets of this pod. Joins and leaves are counted in
 * Redis per pod and user; every `PRESENCE_BEAT_MS` the pod restates its whole membership
 * of each stream it holds, which keeps it alive there and repairs any drift. A pod that
 * stops beating for three beats is taken out by the next presence script on that stream.
 */
@Injectable()
export class PresenceService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Presence');
  /** stream → userId → sockets of this pod subscribed to it. */
  private readonly local = new Map<StreamName, Map<string, number>>();
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
    void this.run('rtPresenceJoinV1', stream, [this.config.serverId, userId]);
  }

  leave(stream: StreamName, userId: string): void {
    const users = this.local.get(stream);
    const count = users?.get(userId) ?? 0;
    if (!users || count === 0) return;
    if (count === 1) users.delete(userId);
    else users.set(userId, count - 1);
    if (users.size === 0) this.local.delete(stream);
    void this.run('rtPresenceLeaveV1', stream, [this.config.serverId, userId]);
  }

  async members(stream: StreamName): Promise<PresenceMember[]> {
    const flat = (await this.script('rtPresenceListV1', stream, [])) as string[];
    const members: PresenceMember[] = [];
    for (let i = 0; i < flat.length; i += 2) members.push({ userId: flat[i], connections: Number(flat[i + 1]) });
    return members.sort((a, b) => a.userId.localeCompare(b.userId));
  }

  /** Restates this pod's membership of every stream it holds. */
  async beat(): Promise<void> {
    await Promise.all(
      [...this.local.entries()].map(([stream, users]) => this.run('rtPresenceBeatV1', stream, [this.config.serverId, ...[...users.entries()].flat()])),
    );
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
