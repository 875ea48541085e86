import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import type { GatewayServer } from '../realtime/socket.types';

/**
 * Graceful drain on SIGTERM: readiness goes red and new handshakes are refused at once;
 * then sockets are told (`draining`) and let go in batches, so their reconnects spread
 * over the other pods instead of arriving all at once; the process waits until they are
 * gone or the deadline passes, and only then do Nest's shutdown hooks close Redis.
 */
@Injectable()
export class Lifecycle implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Lifecycle');
  private server: GatewayServer | null = null;
  private drainingSince: number | null = null;

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  attach(server: GatewayServer): void {
    this.server = server;
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    await this.drain(signal ?? 'shutdown');
  }

  async drain(reason: string): Promise<void> {
    if (this.draining) return;
    this.drainingSince = Date.now();
    const server = this.server;
    if (!server) return;
    const { batchSize, batchIntervalMs, timeoutMs } = this.config.drain;
    const deadline = Date.now() + timeoutMs;
    const total = server.of('/').sockets.size;
    this.logger.log({ msg: 'draining', reason, sockets: total });

    for (const batch of batches([...server.of('/').sockets.values()], batchSize)) {
      for (const socket of batch) {
        if (socket.disconnected) continue;
        socket.emit('draining', { serverId: this.config.serverId, reconnectInMs: Math.floor(Math.random() * 1000) });
        // Closing the transport (not `disconnect()`) makes plain Socket.IO clients
        // reconnect by themselves; the packet above is flushed before the close.
        socket.conn.close();
      }
      if (Date.now() > deadline) break;
      if (batchIntervalMs > 0) await new Promise((resolve) => setTimeout(resolve, batchIntervalMs));
    }
    while (server.of('/').sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.logger.log({ msg: 'drained', sockets: total, left: server.of('/').sockets.size, ms: Date.now() - this.drainingSince });
  }
}

function* batches<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
