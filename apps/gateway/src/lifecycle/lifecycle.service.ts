import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import type { DrainingNotice } from '@app/protocol';

/** The connections one transport holds, as the drain sees them. */
export interface DrainTarget<C extends { readonly disconnected: boolean } = { readonly disconnected: boolean }> {
  /** Open connections now. */
  count(): number;
  list(): C[];
  /** Tells one connection to reconnect elsewhere and lets it go. */
  drain(connection: C, notice: DrainingNotice): void;
}

/**
 * Graceful drain on SIGTERM: readiness goes red and new handshakes are refused at once;
 * then sockets are told (`draining`) and let go in batches, so their reconnects spread
 * over the other pods instead of arriving all at once; the process waits until they are
 * gone or the deadline passes, and only then do Nest's shutdown hooks close Redis.
 */
@Injectable()
export class Lifecycle implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Lifecycle');
  private readonly targets: DrainTarget[] = [];
  private drainingSince: number | null = null;

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  /** Each transport (Socket.IO, plain WebSocket) hands its connections over once. */
  attach<C extends { readonly disconnected: boolean }>(target: DrainTarget<C>): void {
    this.targets.push(target as unknown as DrainTarget);
  }

  private open(): number {
    return this.targets.reduce((sum, target) => sum + target.count(), 0);
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    await this.drain(signal ?? 'shutdown');
  }

  async drain(reason: string): Promise<void> {
    if (this.draining) return;
    this.drainingSince = Date.now();
    const { batchSize, batchIntervalMs, timeoutMs } = this.config.drain;
    const deadline = Date.now() + timeoutMs;
    const total = this.open();
    this.logger.log({ msg: 'draining', reason, sockets: total });

    const all = this.targets.flatMap((target) => target.list().map((connection) => ({ target, connection })));
    for (const batch of batches(all, batchSize)) {
      for (const { target, connection } of batch) {
        if (connection.disconnected) continue;
        target.drain(connection, { serverId: this.config.serverId, reconnectInMs: Math.floor(Math.random() * 1000) });
      }
      if (Date.now() > deadline) break;
      if (batchIntervalMs > 0) await new Promise((resolve) => setTimeout(resolve, batchIntervalMs));
    }
    while (this.open() > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.logger.log({ msg: 'drained', sockets: total, left: this.open(), ms: Date.now() - this.drainingSince });
  }
}

function* batches<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
