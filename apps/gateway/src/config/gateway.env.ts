import { Transform } from 'class-transformer';
import { IsArray, IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, ValidateIf } from 'class-validator';
import { BackplaneEnv } from '@app/backplane';
import { toInt, toList } from '@app/runtime';

/**
 * The gateway's environment (beyond the shared {@link BackplaneEnv}): every variable it
 * reads, its default and its bounds. Property
 * names are the variable names; `loadGatewayConfig` validates once at start and names each
 * bad variable. The README's configuration table mirrors this file.
 */
export class GatewayEnv extends BackplaneEnv {
  /** HTTP and Socket.IO port. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 3000;

  @IsString()
  HOST = '0.0.0.0';

  /** Names this pod in `hello.serverId`, logs and presence. Default: host name + pid. */
  @IsOptional()
  @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'SERVER_ID must match [A-Za-z0-9_.-]{1,64}' })
  SERVER_ID?: string;

  /** HS256 shared secret. Required unless a public key or JWKS file is given. */
  @ValidateIf((env: GatewayEnv) => !env.JWT_PUBLIC_KEY_FILE && !env.JWT_JWKS_FILE)
  @IsString()
  @MinLength(16, { message: 'JWT_SECRET must be at least 16 characters (or set JWT_PUBLIC_KEY_FILE / JWT_JWKS_FILE)' })
  JWT_SECRET?: string;

  /** PEM public key (SPKI) for RS256/ES256 tokens. */
  @IsOptional()
  @IsString()
  JWT_PUBLIC_KEY_FILE?: string;

  /** JSON Web Key Set file for RS256/ES256 tokens (keys picked by `kid`). */
  @IsOptional()
  @IsString()
  JWT_JWKS_FILE?: string;

  @Transform(toList)
  @IsArray()
  @IsIn(['HS256', 'RS256', 'ES256'], { each: true })
  JWT_ALGORITHMS: string[] = ['HS256', 'RS256', 'ES256'];

  @IsOptional()
  @IsString()
  JWT_ISSUER?: string;

  @IsOptional()
  @IsString()
  JWT_AUDIENCE?: string;

  /** Keys accepted by the HTTP publish API (`Authorization: Bearer <key>`), comma-separated. */
  @Transform(toList)
  @IsArray()
  @IsString({ each: true })
  @MinLength(16, { each: true, message: 'each of API_KEYS must be at least 16 characters' })
  API_KEYS: string[] = [];

  /** Allowed browser origins for Socket.IO and HTTP (comma-separated, `*` for any). */
  @Transform(toList)
  @IsArray()
  @IsString({ each: true })
  CORS_ORIGINS: string[] = ['*'];

  /** `websocket` needs no sticky sessions; `polling` does (see README). */
  @Transform(toList)
  @IsArray()
  @IsIn(['websocket', 'polling'], { each: true })
  TRANSPORTS: string[] = ['websocket', 'polling'];

  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(16 * 1024 * 1024)
  // Room for a 1,000-node DAG definition (~100 KB) in one start_execution.
  MAX_PAYLOAD_BYTES = 256 * 1024;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  COMMANDS_PER_SECOND = 20;

  /** Streams one connection may subscribe to at once. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100_000)
  MAX_SUBSCRIPTIONS_PER_SOCKET = 200;

  /** Socket.IO ping interval, announced as `hello.heartbeatMs`. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(300_000)
  HEARTBEAT_MS = 25_000;

  /**
   * A connection (Socket.IO, plain WebSocket, compatibility, SSE reader) whose unsent frames
   * pass this many bytes (a reader that stopped reading) is cut off rather than buffered
   * without bound.
   */
  @Transform(toInt)
  @IsInt()
  @Min(64 * 1024)
  @Max(256 * 1024 * 1024)
  WS_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

  /**
   * How long an HTTP read with `live=long-poll` (PROTOCOL.md §12) waits for an event before it
   * answers 204: below the idle timeout of the proxies in front of the pods.
   */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(120_000)
  LONG_POLL_TIMEOUT_MS = 25_000;

  /** A command whose work has not answered by then is acked `TIMEOUT`. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(120_000)
  COMMAND_TIMEOUT_MS = 10_000;

  /** How long a command's first result is kept for retries with the same id. */
  @Transform(toInt)
  @IsInt()
  @Min(60)
  @Max(30 * 24 * 3600)
  IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(60_000)
  PRESENCE_BEAT_MS = 5_000;

  /** On SIGTERM: sockets let go per batch, the pause between batches, and the deadline. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100_000)
  DRAIN_BATCH_SIZE = 500;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(60_000)
  DRAIN_BATCH_INTERVAL_MS = 100;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600_000)
  DRAIN_TIMEOUT_MS = 30_000;
}
