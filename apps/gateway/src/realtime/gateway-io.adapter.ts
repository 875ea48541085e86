import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { ServerOptions } from 'socket.io';
import type { GatewayConfig } from '../config/gateway-config';
import { tolerantParser } from './tolerant-parser';

/**
 * Socket.IO server options from the gateway's configuration. The backplane is the pod's
 * own (see docs/architecture.md), so the server keeps Socket.IO's in-memory adapter: rooms
 * are local, and each stream's events reach the pod once, through its feed.
 */
export class GatewayIoAdapter extends IoAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly config: GatewayConfig,
  ) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): unknown {
    const { limits, corsOrigins, transports, heartbeatMs } = this.config;
    return super.createIOServer(port, {
      ...options,
      path: '/socket.io',
      transports,
      pingInterval: heartbeatMs,
      pingTimeout: 20_000,
      // Frames up to twice the payload limit are read and answered PAYLOAD_TOO_LARGE;
      // larger ones close the connection (PROTOCOL.md §3).
      maxHttpBufferSize: limits.maxPayloadBytes * 2 + 16 * 1024,
      perMessageDeflate: false,
      // Tokens travel in the handshake, not in cookies: no credentials mode needed.
      cors: { origin: corsOrigins.includes('*') ? '*' : corsOrigins },
      parser: tolerantParser,
      connectTimeout: 10_000,
    } as ServerOptions);
  }
}
