import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ConfigError, createLogger, exitGracefullyOn, NestPinoLogger, waitForReady } from '@app/runtime';
import { loadWorkerConfig } from './config/worker-config';
import { WorkerHttp } from './ops/worker-http';
import { WorkerRedis } from './ops/worker-redis';
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
  exitGracefullyOn(['SIGTERM', 'SIGINT'], () => app.close(), logger);
  const redis = app.get(WorkerRedis);
  await Promise.all([waitForReady(redis.commands, 30_000), waitForReady(redis.subscriber, 30_000)]);
  const port = await app.get(WorkerHttp).listen();
  logger.info({ workerId: config.workerId, port }, `worker running; health and metrics on port ${port}`);
}

bootstrap().catch((error: unknown) => {
  createLogger('worker').fatal({ err: error }, 'worker failed to start');
  process.exit(1);
});
