import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { type PublisherOptions, publisherOptionsFromEnv, type RetentionPolicy, retentionFromEnv } from '@app/backplane';
import { defaultProcessId, loadConfig, redisUrlFromEnv, toInt } from '@app/runtime';
import { type AgentConfig, agentConfigFromEnv, AgentEnv } from './agent-env';

/** The worker's environment (beyond the shared BackplaneEnv and the agent runtime's {@link AgentEnv}). */
export class WorkerEnv extends AgentEnv {
  /** Port of the worker's health and metrics endpoints. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 9464;

  @IsString()
  HOST = '0.0.0.0';

  @IsOptional()
  @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'WORKER_ID must match [A-Za-z0-9_.-]{1,64}' })
  WORKER_ID?: string;

  /** Agent runs processed at once by this worker. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  AGENT_RUN_CONCURRENCY = 50;

  /** DAG executions (and control jobs) processed at once by this worker. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  DAG_CONCURRENCY = 20;

  /**
   * A run's streamed `message` chunks published within this window go as one delta (fewer
   * events for Redis and the dashboards, up to this much later on screen); 0: one event per chunk.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000)
  MESSAGE_COALESCE_MS = 50;

  /** DAG node jobs processed at once by this worker (each node of an execution is one job). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  DAG_NODE_CONCURRENCY = 50;

  /** Nodes of one execution running at once across all workers, unless its definition sets `maxConcurrency`. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  DAG_EXECUTION_CONCURRENCY = 100;

  /** How long a DAG `task` node works when its config sets no `durationMs` (demo pacing). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600_000)
  ECHO_NODE_MS = 50;

  /**
   * BullMQ's job lock: a worker renews its jobs' locks every half of this, and every worker
   * looks for lapsed ones this often. A job held by a worker that died (SIGKILL, lost host)
   * goes to another worker after one to two of these; shorter recovers sooner, but a worker
   * whose event loop stalls this long loses its jobs to others.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1_000)
  @Max(600_000)
  JOB_LOCK_MS = 30_000;

  /** On SIGTERM, active jobs get this long to finish; the rest are handed back (stalled). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600_000)
  SHUTDOWN_TIMEOUT_MS = 25_000;
}

export interface WorkerConfig {
  port: number;
  host: string;
  redisUrl: string;
  workerId: string;
  agentRunConcurrency: number;
  dagConcurrency: number;
  dagNodeConcurrency: number;
  dagExecutionConcurrency: number;
  agents: AgentConfig;
  echoNodeMs: number;
  messageCoalesceMs: number;
  jobLockMs: number;
  shutdownTimeoutMs: number;
  retention: RetentionPolicy;
  publisher: PublisherOptions;
  logLevel: string;
}

export const WORKER_CONFIG = Symbol('WORKER_CONFIG');

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = loadConfig(WorkerEnv, env);
  return {
    port: e.PORT,
    host: e.HOST,
    redisUrl: redisUrlFromEnv(e),
    workerId: e.WORKER_ID ?? defaultProcessId(),
    agentRunConcurrency: e.AGENT_RUN_CONCURRENCY,
    dagConcurrency: e.DAG_CONCURRENCY,
    dagNodeConcurrency: e.DAG_NODE_CONCURRENCY,
    dagExecutionConcurrency: e.DAG_EXECUTION_CONCURRENCY,
    agents: agentConfigFromEnv(e),
    echoNodeMs: e.ECHO_NODE_MS,
    messageCoalesceMs: e.MESSAGE_COALESCE_MS,
    jobLockMs: e.JOB_LOCK_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    retention: retentionFromEnv(e),
    publisher: publisherOptionsFromEnv(e),
    logLevel: e.LOG_LEVEL,
  };
}
