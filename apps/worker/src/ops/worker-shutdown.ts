import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { WorkerHost } from '@nestjs/bullmq';
import { WORKER_CONFIG, type WorkerConfig } from '../config/worker-config';
import { EventSink } from './event-sink';
import { WorkerHttp } from './worker-http';

/**
 * SIGTERM: readiness goes red, every BullMQ worker stops taking jobs and gets
 * `SHUTDOWN_TIMEOUT_MS` to finish the active ones. Past that, workers close by force: their
 * jobs' locks lapse and BullMQ hands them to another worker as stalled.
 */
@Injectable()
export class WorkerShutdown implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Shutdown');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly http: WorkerHttp,
    private readonly sink: EventSink,
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
  ) {}

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.http.shuttingDown = true;
    const hosts = this.discovery
      .getProviders()
      .map((wrapper) => wrapper.instance as unknown)
      .filter((instance): instance is WorkerHost => instance instanceof WorkerHost);
    this.logger.log({ msg: 'shutting down', signal, workers: hosts.length });
    const finished = Promise.all(hosts.map((host) => host.worker.close())).then(() => true);
    const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.config.shutdownTimeoutMs).unref());
    if (!(await Promise.race([finished, timedOut]))) {
      this.logger.warn({ msg: 'active jobs did not finish in time; handing them back' });
      await Promise.all(hosts.map((host) => host.worker.close(true)));
    }
    await this.sink.publisher.drain();
  }
}
