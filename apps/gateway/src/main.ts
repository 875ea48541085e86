import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { checkListen, ConfigError, createLogger, describeListenError, exitGracefullyOn, NestPinoLogger, waitForReady } from '@app/runtime';
import { STREAM_READ_HEADERS } from '@app/protocol';
import { AppModule } from './app.module';
import { API_KEY_ROUTES, ApiKeys } from './auth/api-key.guard';
import { TokenVerifier } from './auth/token-verifier';
import { loadGatewayConfig } from './config/gateway-config';
import { ProtocolExceptionFilter } from './http/protocol-exception.filter';
import { GatewayIoAdapter } from './realtime/gateway-io.adapter';
import { RedisConnections } from './redis/redis.providers';

async function bootstrap(): Promise<void> {
  const logger = createLogger('gateway');
  let config;
  try {
    config = loadGatewayConfig();
  } catch (error) {
    logger.fatal({ err: error instanceof ConfigError ? undefined : error }, error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  logger.level = config.logLevel;

  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    logger: new NestPinoLogger(logger.child({ serverId: config.serverId })),
    bodyParser: false,
  });
  // Order matters: on the write routes the API key is checked before any body is read, and
  // bodies beyond the payload limit are refused (413 PAYLOAD_TOO_LARGE) before they are parsed.
  app.use(API_KEY_ROUTES, app.get(ApiKeys).middleware());
  app.useBodyParser('json', { limit: config.limits.maxPayloadBytes + 1024 });
  app.useGlobalFilters(new ProtocolExceptionFilter());
  // Browser readers of §12 must be allowed to read the offset headers.
  app.enableCors({ origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins, exposedHeaders: [...STREAM_READ_HEADERS] });
  app.useWebSocketAdapter(new GatewayIoAdapter(app, config));
  exitGracefullyOn(['SIGTERM', 'SIGINT'], () => app.close(), logger);

  // Fail at start, not at the first connection, when Redis or a key file is unusable.
  await app.get(TokenVerifier).ready();
  const redis = app.get(RedisConnections);
  await Promise.all([waitForReady(redis.commands, 30_000), waitForReady(redis.subscriber, 30_000)]);

  const cannotListen = (error: unknown): never => {
    const problem = describeListenError(error, { port: config.port, host: config.host, portVariable: 'PORT' });
    if (!problem) throw error;
    logger.fatal({ serverId: config.serverId, port: config.port, host: config.host, code: (error as { code?: string }).code }, problem);
    process.exit(1);
  };
  // Probed first: a failed app.listen is logged by Nest too, which would make two lines of one fault.
  await checkListen(config.port, config.host).catch(cannotListen);
  await app.listen(config.port, config.host).catch(cannotListen);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ serverId: config.serverId, port, transports: config.transports }, `gateway listening on port ${port}`);
}

bootstrap().catch((error: unknown) => {
  createLogger('gateway').fatal({ err: error }, 'gateway failed to start');
  process.exit(1);
});
