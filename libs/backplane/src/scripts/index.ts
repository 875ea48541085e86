import type { Cluster, Redis } from 'ioredis';
import { CATCH_UP_LUA } from './catch-up.lua';
import { COMMAND_SETTLE_LUA } from './command-record.lua';
import { DAG_EXPAND_LUA, DAG_INIT_LUA, DAG_PARK_LUA, DAG_SETTLE_LUA, DAG_START_LUA, DAG_STEP_LUA } from './dag-engine.lua';
import { ADMIT_SESSION_RUN_LUA, DECIDE_LUA, TRANSITION_LUA } from './domain.lua';
import { PRESENCE_APPLY_LUA, PRESENCE_BEAT_LUA, PRESENCE_LIST_LUA } from './presence.lua';
import { PRODUCER_FENCE_LUA } from './producer-fence.lua';
import { PUBLISH_LUA } from './publish.lua';
import { WRITE_CHECKPOINT_LUA } from './write-checkpoint.lua';

export type RedisClient = Redis | Cluster;

/**
 * The backplane's Lua scripts, registered under versioned names: a script whose keys or
 * arguments change gets a new version, so old and new pods can run side by side.
 */
const SCRIPTS = {
  // Batches over several streams: 3 keys per stream plus one per producer, so the key count
  // is the first argument. (V4: producer stamps instead of idempotency keys; V5: the channel
  // message is the envelope as it is, no `{kind, envelope}` wrapper.)
  rtPublishV5: { lua: PUBLISH_LUA },
  rtProducerFenceV1: { numberOfKeys: 1, lua: PRODUCER_FENCE_LUA },
  rtCatchUpV2: { numberOfKeys: 3, lua: CATCH_UP_LUA },
  rtWriteCheckpointV1: { numberOfKeys: 3, lua: WRITE_CHECKPOINT_LUA },
  rtPresenceApplyV1: { numberOfKeys: 3, lua: PRESENCE_APPLY_LUA },
  rtPresenceBeatV1: { numberOfKeys: 3, lua: PRESENCE_BEAT_LUA },
  rtPresenceListV1: { numberOfKeys: 3, lua: PRESENCE_LIST_LUA },
  rtCommandSettleV1: { numberOfKeys: 1, lua: COMMAND_SETTLE_LUA },
  rtTransitionV1: { numberOfKeys: 1, lua: TRANSITION_LUA },
  rtDecideV1: { numberOfKeys: 1, lua: DECIDE_LUA },
  rtAdmitSessionRunV1: { numberOfKeys: 1, lua: ADMIT_SESSION_RUN_LUA },
  // The DAG engine: record, engine state, ready line of one execution (see dag-engine.lua.ts).
  rtDagInitV1: { numberOfKeys: 3, lua: DAG_INIT_LUA },
  rtDagStartV2: { numberOfKeys: 3, lua: DAG_START_LUA },
  rtDagSettleV1: { numberOfKeys: 3, lua: DAG_SETTLE_LUA },
  rtDagParkV1: { numberOfKeys: 3, lua: DAG_PARK_LUA },
  rtDagStepV1: { numberOfKeys: 3, lua: DAG_STEP_LUA },
  rtDagExpandV1: { numberOfKeys: 3, lua: DAG_EXPAND_LUA },
} as const;

export type ScriptName = keyof typeof SCRIPTS;
type ScriptArg = string | number;

/** Defines the scripts on a connection (once) and runs them by name, EVALSHA first. */
export function runScript(redis: RedisClient, name: ScriptName, keys: string[], args: ScriptArg[]): Promise<unknown> {
  const commands = redis as unknown as Record<string, ((...a: ScriptArg[]) => Promise<unknown>) | undefined>;
  const script: { lua: string; numberOfKeys?: number } = SCRIPTS[name];
  if (!commands[name]) redis.defineCommand(name, script);
  const command = commands[name] as (...a: ScriptArg[]) => Promise<unknown>;
  return script.numberOfKeys === undefined ? command.call(redis, keys.length, ...keys, ...args) : command.call(redis, ...keys, ...args);
}
