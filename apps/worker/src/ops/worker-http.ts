import { createServer, type Server } from 'node:http';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { WorkerMetrics } from './worker-metrics';
import { WorkerRedis } from './worker-redis';

/**
 * The worker is a standalone Nest application (no HTTP framework); this small server gives
 * it `/healthz`, `/readyz` (Redis reachable, not shutting down) and `/metrics`.
 */
@Injectable()
export class WorkerHttp implements OnApplicationShutdown {
  private readonly logger = new Logger('WorkerHttp');
  private server: Server | null = null;
  shuttingDown = false;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly redis: WorkerRedis,
    private readonly metrics: WorkerMetrics,
  ) {}

  async listen(): Promise<number> {
    this.server = createServer((request, response) => {
      const send = (status: number, body: string, type = 'application/json') => {
        response.writeHead(status, { 'content-type': type });
        response.end(body);
      };
      if (request.url === '/healthz') return send(200, JSON.stringify({ status: 'ok' }));
      if (request.url === '/readyz') {
        const ready = !this.shuttingDown && this.redis.ready;
        return send(
          ready ? 200 : 503,
          JSON.stringify({ status: ready ? 'ready' : 'not_ready', checks: { redis: this.redis.ready, shuttingDown: this.shuttingDown } }),
        );
      }
      if (request.url === '/metrics') {
        this.metrics.registry.metrics().then(
          (text) => send(200, text, this.metrics.registry.contentType),
          () => send(500, '{}'),
        );
        return;
      }
      send(404, JSON.stringify({ code: 'NOT_FOUND', message: 'no such route' }));
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    const port = typeof address === 'object' && address ? address.port : this.config.port;
    this.logger.log({ msg: 'worker http listening', port });
    return port;
  }

  async onApplicationShutdown(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
