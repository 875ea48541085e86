import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config/gateway-config';
import { Lifecycle } from '../lifecycle/lifecycle.service';
import { GatewayMetrics } from '../metrics/gateway-metrics';
import { RedisConnections } from '../redis/redis.providers';
import { BackplaneSubscriber } from '../streams/backplane-subscriber';

const PROBE_TIMEOUT_MS = 1_000;

/** Liveness, readiness and Prometheus metrics (PROTOCOL.md §7). */
@Controller()
export class HealthController {
  constructor(
    private readonly lifecycle: Lifecycle,
    private readonly redis: RedisConnections,
    private readonly backplane: BackplaneSubscriber,
    private readonly metrics: GatewayMetrics,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  /** The process is alive and its event loop answers. */
  @Get('healthz')
  @HttpCode(200)
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /**
   * Ready to take sockets: not draining, Redis answering, and the backplane subscription
   * proven by a message that went out and came back through it. `serverId` tells which pod
   * answered (the embedded launcher checks it is its own).
   */
  @Get('readyz')
  async ready(@Res() response: Response): Promise<void> {
    const checks = {
      draining: this.lifecycle.draining,
      redis: this.redis.ready,
      backplane: false,
    };
    if (!checks.draining && checks.redis) checks.backplane = await this.backplane.roundTrip(PROBE_TIMEOUT_MS);
    const ok = !checks.draining && checks.redis && checks.backplane;
    response.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not_ready', serverId: this.config.serverId, checks });
  }

  @Get('metrics')
  @Header('Cache-Control', 'no-store')
  async prometheus(@Res() response: Response): Promise<void> {
    response.setHeader('Content-Type', this.metrics.registry.contentType);
    response.send(await this.metrics.registry.metrics());
  }
}
