import { BullModule } from '@nestjs/bullmq';
import { type DynamicModule, Logger, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { WORKER_METADATA } from '@nestjs/bullmq/dist/bull.constants';
import type { WorkerOptions } from 'bullmq';
import { DomainStore, QUEUE_PREFIX, QUEUES } from '@app/backplane';
import { bullConnection, RedisErrorLog } from '@app/runtime';
import { AgentControlProcessor } from './agents/agent-control.processor';
import { AgentRunProcessor } from './agents/agent-run.processor';
import { agentRuntimeProviders } from './agents/agent-runtime.providers';
import { RunCancellation } from './agents/run-cancellation';
import { RunWaker } from './agents/run-waker';
import { WORKER_CONFIG, type WorkerConfig } from './config/worker-config';
import { DagControlProcessor } from './dags/dag-control.processor';
import { DagEngine } from './dags/dag-engine';
import { DagExecutionProcessor } from './dags/dag-execution.processor';
import { DagNodeProcessor } from './dags/dag-node.processor';
import { DemoDags } from './dags/demo-dags';
import { NodeAborts } from './dags/node-aborts';
import { NodeFunctions } from './dags/nodes/node-functions';
import { EventSink } from './ops/event-sink';
import { QueueWorkers } from './ops/queue-workers';
import { WorkerHttp } from './ops/worker-http';
import { WorkerMetrics } from './ops/worker-metrics';
import { WorkerRedis } from './ops/worker-redis';
import { WorkerShutdown } from './ops/worker-shutdown';

/** The worker process: BullMQ processors for every queue, publishing through the backplane. */
@Module({})
export class WorkerModule {
  static forRoot(config: WorkerConfig): DynamicModule {
    configureBullWorkers(config);
    return {
      module: WorkerModule,
      imports: [
        DiscoveryModule,
        BullModule.forRoot({ connection: bullConnection(config.redisUrl, `worker:${config.workerId}:bull`), prefix: QUEUE_PREFIX }),
        BullModule.registerQueue(...Object.values(QUEUES).map((name) => ({ name }))),
      ],
      providers: [
        { provide: WORKER_CONFIG, useValue: config },
        WorkerMetrics,
        {
          provide: RedisErrorLog,
          inject: [WorkerMetrics],
          useFactory: (metrics: WorkerMetrics) => new RedisErrorLog(new Logger('Redis'), { onError: (connection) => metrics.redisErrors.inc({ connection }) }),
        },
        WorkerRedis,
        QueueWorkers,
        { provide: DomainStore, inject: [WorkerRedis], useFactory: (redis: WorkerRedis) => new DomainStore(redis.commands) },
        EventSink,
        WorkerHttp,
        WorkerShutdown,
        RunCancellation,
        RunWaker,
        ...agentRuntimeProviders,
        AgentRunProcessor,
        AgentControlProcessor,
        NodeFunctions,
        NodeAborts,
        DagEngine,
        DemoDags,
        DagExecutionProcessor,
        DagNodeProcessor,
        DagControlProcessor,
      ],
    };
  }
}

/**
 * The BullMQ worker options that come from configuration. Nest builds each processor's worker
 * from its @Processor metadata, which is fixed at import; they are merged into it here, once the
 * configuration is loaded and before the module creates the workers. `name` is stored on every
 * job a worker takes (`processedBy`), so a job can be traced to the worker that ran it.
 */
function configureBullWorkers(config: WorkerConfig): void {
  const options: Partial<WorkerOptions> = { name: config.workerId, lockDuration: config.jobLockMs, stalledInterval: config.jobLockMs };
  for (const processor of [AgentRunProcessor, AgentControlProcessor, DagExecutionProcessor, DagNodeProcessor, DagControlProcessor]) {
    const declared = Reflect.getMetadata(WORKER_METADATA, processor) as Partial<WorkerOptions> | undefined;
    Reflect.defineMetadata(WORKER_METADATA, { ...declared, ...options }, processor);
  }
}
