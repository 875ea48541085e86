import { type PublisherOptions, publisherOptionsFromEnv, type RetentionPolicy, retentionFromEnv } from '@app/backplane';
import { defaultProcessId, loadConfig, redisUrlFromEnv } from '@app/runtime';
import { GatewayEnv } from './gateway.env';

/** The gateway's validated configuration, grouped for the services that use it. */
export interface GatewayConfig {
  port: number;
  host: string;
  redisUrl: string;
  serverId: string;
  jwt: {
    secret?: string;
    publicKeyFile?: string;
    jwksFile?: string;
    algorithms: string[];
    issuer?: string;
    audience?: string;
  };
  apiKeys: string[];
  corsOrigins: string[];
  transports: Array<'websocket' | 'polling'>;
  limits: { maxPayloadBytes: number; commandsPerSecond: number; commandTimeoutMs: number; maxSubscriptions: number };
  heartbeatMs: number;
  /** Unsent bytes after which a plain-WebSocket connection or an SSE reader is closed as a slow reader. */
  wsMaxBufferedBytes: number;
  /** How long a long-poll HTTP read waits before it answers 204. */
  longPollTimeoutMs: number;
  idempotencyTtlSeconds: number;
  retention: RetentionPolicy;
  publisher: PublisherOptions;
  presenceBeatMs: number;
  drain: { batchSize: number; batchIntervalMs: number; timeoutMs: number };
  logLevel: string;
}

export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG');

export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const e = loadConfig(GatewayEnv, env);
  return {
    port: e.PORT,
    host: e.HOST,
    redisUrl: redisUrlFromEnv(e),
    serverId: e.SERVER_ID ?? defaultProcessId(),
    jwt: {
      secret: e.JWT_SECRET,
      publicKeyFile: e.JWT_PUBLIC_KEY_FILE,
      jwksFile: e.JWT_JWKS_FILE,
      algorithms: e.JWT_ALGORITHMS,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
    },
    apiKeys: e.API_KEYS,
    corsOrigins: e.CORS_ORIGINS,
    transports: e.TRANSPORTS as Array<'websocket' | 'polling'>,
    limits: {
      maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
      commandsPerSecond: e.COMMANDS_PER_SECOND,
      commandTimeoutMs: e.COMMAND_TIMEOUT_MS,
      maxSubscriptions: e.MAX_SUBSCRIPTIONS_PER_SOCKET,
    },
    heartbeatMs: e.HEARTBEAT_MS,
    wsMaxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    longPollTimeoutMs: e.LONG_POLL_TIMEOUT_MS,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    retention: retentionFromEnv(e),
    publisher: publisherOptionsFromEnv(e),
    presenceBeatMs: e.PRESENCE_BEAT_MS,
    drain: { batchSize: e.DRAIN_BATCH_SIZE, batchIntervalMs: e.DRAIN_BATCH_INTERVAL_MS, timeoutMs: e.DRAIN_TIMEOUT_MS },
    logLevel: e.LOG_LEVEL,
  };
}
