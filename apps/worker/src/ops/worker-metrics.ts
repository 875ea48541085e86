import { Injectable } from '@nestjs/common';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** The worker's Prometheus instruments. */
@Injectable()
export class WorkerMetrics {
  readonly registry = new Registry();

  readonly jobs = new Counter({
    name: 'rtwk_jobs_total',
    help: 'Jobs processed, by queue and outcome',
    labelNames: ['queue', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: 'rtwk_job_duration_seconds',
    help: 'Time spent processing a job, by queue',
    labelNames: ['queue'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [this.registry],
  });
  readonly eventsPublished = new Counter({
    name: 'rtwk_events_published_total',
    help: 'Stream events published by this worker',
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: 'rtwk_redis_errors_total',
    help: 'Errors reported by Redis connections',
    labelNames: ['connection'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'rtwk_' });
  }
}
