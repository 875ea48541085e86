import { Transform } from 'class-transformer';
import {
  IsIn,
  IsInt,
  Matches,
  Max,
  Min,
  Validate,
  ValidateIf,
  type ValidationArguments,
  ValidatorConstraint,
  type ValidatorConstraintInterface,
} from 'class-validator';
import { parseRedisUrl, toInt } from '@app/runtime';
import type { RetentionPolicy } from './retention';
import type { PublisherOptions } from './stream-publisher';

@ValidatorConstraint({ name: 'redisUrl' })
class ParsableRedisUrl implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return redisUrlProblem(value) === null;
  }

  defaultMessage(args: ValidationArguments): string {
    return `REDIS_URL must be a redis://, rediss:// or redis+cluster://host:port,… URL, or set REDIS_CLUSTER_NODES instead (${redisUrlProblem(args.value)})`;
  }
}

function redisUrlProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'unset';
  try {
    parseRedisUrl(value);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

@ValidatorConstraint({ name: 'notWithRedisUrl' })
class NotWithRedisUrl implements ValidatorConstraintInterface {
  validate(_value: unknown, args: ValidationArguments): boolean {
    return (args.object as BackplaneEnv).REDIS_URL === undefined;
  }

  defaultMessage(): string {
    return 'REDIS_CLUSTER_NODES and REDIS_URL name the Redis twice: set one of them';
  }
}

/**
 * Environment variables every process on the backplane reads (gateways and workers both
 * publish, so both apply the retention policy — keep these equal across a deployment).
 * Each app's env DTO extends this class.
 */
export class BackplaneEnv {
  /**
   * One Redis (`redis://`, `rediss://`) or a cluster (`redis+cluster://[user:pass@]host:port,…`).
   * Required unless `REDIS_CLUSTER_NODES` is set; setting both is refused.
   */
  @ValidateIf((env: BackplaneEnv) => !env.REDIS_CLUSTER_NODES || env.REDIS_URL !== undefined)
  @Validate(ParsableRedisUrl)
  REDIS_URL?: string = undefined;

  /** Seed nodes of a Redis Cluster, `host:port,host:port` (instead of REDIS_URL). */
  @ValidateIf((env: BackplaneEnv) => env.REDIS_CLUSTER_NODES !== undefined)
  @Validate(NotWithRedisUrl)
  @Matches(/^\s*[^\s,:]+:\d{1,5}\s*(,\s*[^\s,:]+:\d{1,5}\s*)*$/, { message: 'REDIS_CLUSTER_NODES must be host:port,host:port,…' })
  REDIS_CLUSTER_NODES?: string = undefined;

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

  /**
   * How long a publish that finds no script call in flight waits for others to join its call
   * (ms): more events per call, less Redis CPU per event at moderate rates, as much more
   * latency (see PublisherOptions.lingerMs). 0: the call leaves at the end of the event-loop turn.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000)
  PUBLISH_LINGER_MS = 0;

  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  LOG_LEVEL = 'info';
}

export function publisherOptionsFromEnv(env: BackplaneEnv): PublisherOptions {
  return { lingerMs: env.PUBLISH_LINGER_MS };
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
