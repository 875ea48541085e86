import { Transform } from 'class-transformer';
import { IsIn, IsInt, Matches, Max, Min } from 'class-validator';
import { toInt } from '@app/runtime';
import type { RetentionPolicy } from './retention';

/**
 * Environment variables every process on the backplane reads (gateways and workers both
 * publish, so both apply the retention policy — keep these equal across a deployment).
 * Each app's env DTO extends this class.
 */
export class BackplaneEnv {
  @Matches(/^rediss?:\/\/.+/, { message: 'REDIS_URL must be a redis:// or rediss:// URL' })
  REDIS_URL!: string;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  HISTORY_MAX_EVENTS = 10_000;

  /** 0 turns age retention off. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  HISTORY_MAX_AGE_MS = 24 * 3600 * 1000;

  /** 0 keeps idle streams forever. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  STREAM_IDLE_TTL_SECONDS = 7 * 24 * 3600;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  CHECKPOINT_EVERY = 200;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100_000)
  REPLAY_MAX_EVENTS = 2_000;

  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  LOG_LEVEL = 'info';
}

export function retentionFromEnv(env: BackplaneEnv): RetentionPolicy {
  return {
    maxEvents: env.HISTORY_MAX_EVENTS,
    maxAgeMs: env.HISTORY_MAX_AGE_MS,
    idleTtlSeconds: env.STREAM_IDLE_TTL_SECONDS,
    checkpointEvery: env.CHECKPOINT_EVERY,
    maxReplay: env.REPLAY_MAX_EVENTS,
  };
}
