import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { WorkerHost } from '@nestjs/bullmq';
import { Queue } from 'bullmq';
import { RedisErrorLog } from '@app/runtime';

/**
 * The worker's BullMQ workers (one per processor) and queues. Every one of them gets an
 * 'error' listener as soon as it exists: BullMQ prints an unlistened error, with its stack,
 * to stderr — a dozen connections, several times a second, while Redis is down.
 *
 * The processors are declared with `autorun: false`: a worker takes no job before `start`,
 * which main calls once the process is fully up (health port bound), so a worker that fails
 * to start never holds a job.
 */
@Injectable()
export class QueueWorkers implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly errors: RedisErrorLog,
  ) {}

  /** Runs after BullMQ's own module created the workers (Nest initialises the root module last). */
  onModuleInit(): void {
    for (const host of this.hosts()) this.errors.watch(`worker:${host.worker.name}`, host.worker);
    for (const queue of this.instances((instance): instance is Queue => instance instanceof Queue)) this.errors.watch(`queue:${queue.name}`, queue);
  }

  hosts(): WorkerHost[] {
    return this.instances((instance): instance is WorkerHost => instance instanceof WorkerHost);
  }

  start(): void {
    for (const { worker } of this.hosts()) {
      if (worker.isRunning()) continue;
      worker.run().catch((error: unknown) => this.errors.report(`worker:${worker.name}`, error instanceof Error ? error : new Error(String(error))));
    }
  }

  private instances<T>(is: (instance: unknown) => instance is T): T[] {
    return this.discovery
      .getProviders()
      .map((wrapper) => wrapper.instance as unknown)
      .filter(is);
  }
}
