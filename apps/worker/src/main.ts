import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ConfigError, createLogger, describeListenError, exitGracefullyOn, NestPinoLogger, waitForReady } from '@app/runtime';
import { loadWorkerConfig } from './config/worker-config';
import { QueueWorkers } from './ops/queue-workers';
import { WorkerHttp } from './ops/worker-http';
import { WorkerRedis } from './ops/worker-redis';
import { HAND_BACK_GRACE_MS } from './ops/worker-shutdown';
import { WorkerModule } from './worker.module';

async function bootstrap(): Promise<void> {
  const logger = createLogger('worker');
  let config;
  try {
    config = loadWorkerConfig();
  } catch (error) {
    logger.fatal({ err: error instanceof ConfigError ? undefined : error }, error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  logger.level = config.logLevel;

  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: new NestPinoLogger(logger.child({ workerId: config.workerId })),
  });
  // The shutdown hands jobs back at its deadline; should anything still hang, give up later.
  exitGracefullyOn(['SIGTERM', 'SIGINT'], () => app.close(), logger, { exitAfterMs: config.shutdownTimeoutMs + HAND_BACK_GRACE_MS + 5_000 });
  const redis = app.get(WorkerRedis);
  await Promise.all([waitForReady(redis.commands, 30_000), waitForReady(redis.subscriber, 30_000)]);
  let port: number;
  try {
    port = await app.get(WorkerHttp).listen();
  } catch (error) {
    const problem = describeListenError(error, { port: config.port, host: config.host, portVariable: 'PORT' });
    if (!problem) throw error;
    logger.fatal({ workerId: config.workerId, port: config.port, host: config.host, code: (error as { code?: string }).code }, problem);
    process.exit(1);
  }
  // Only now take jobs: a worker that could not start never held one.
  app.get(QueueWorkers).start();
  logger.info({ workerId: config.workerId, port }, `worker running; health and metrics on port ${port}`);
}

bootstrap().catch((error: unknown) => {
  createLogger('worker').fatal({ err: error }, 'worker failed to start');
  process.exit(1);
});
